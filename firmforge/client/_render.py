"""What the user reads: device, check, build, download and build-info summaries.

Text goes through ``Output.text`` (stdout); the JSON documents are built here too where a
command reports something the server did not say in that shape (``build_summary``, and
``status_document`` for ``info`` on servers without ``/api/v1/build/{hash}/info``).
"""

from __future__ import annotations

from typing import Any

from firmforge.client._api import Api, BuildState
from firmforge.client._check import CHANNEL_ADVICE
from firmforge.client._device import DeviceFacts
from firmforge.client._download import Downloaded
from firmforge.client._errors import BuildFailedError
from firmforge.client._output import Output

__all__ = [
    "build_summary",
    "device_line",
    "offer_lines",
    "print_check",
    "print_download",
    "print_info",
    "status_document",
]


def device_line(facts: DeviceFacts) -> str:
    revision = f" {facts.revision}" if facts.revision else ""
    return (f"Device: {facts.board_name} ({facts.target}), {facts.distro} {facts.version}"
            f"{revision}, {facts.package_manager}, {len(facts.packages)} user packages")


def offer_lines(label: str, offer: dict[str, Any]) -> list[str]:
    channel = str(offer.get("channel") or "unknown")
    lines = [f"{label}: {offer.get('version')} (branch {offer.get('branch')}), channel "
             f"{channel}: {CHANNEL_ADVICE.get(channel, channel)}"]
    for change in offer.get("package_changes") or []:
        target = change.get("target") or "(removed)"
        lines.append(f"  package change: {change.get('source')} -> {target}")
    return lines


def print_check(output: Output, facts: DeviceFacts, result: dict[str, Any]) -> None:
    output.text(device_line(facts))
    if result.get("source") == "overview":
        output.text("(this server has no upgrade check; compared with its overview, "
                    "package updates not checked)")
    if result.get("upgrade"):
        for line in offer_lines("Newer release", result["upgrade"]):
            output.text(line)
    if result.get("stable"):
        for line in offer_lines("Newer branch", result["stable"]):
            output.text(line)
    updates = result.get("package_updates") or []
    if updates:
        output.text(f"Package updates ({len(updates)}):")
        for update in updates:
            output.text(f"  {update.get('name')}: {update.get('installed')} -> "
                        f"{update.get('available')}")
    if result.get("status") == "up_to_date":
        output.text("Up to date.")


def build_summary(state: BuildState) -> dict[str, Any]:
    body = state.body
    return {
        "request_hash": state.request_hash,
        "status": "done",
        "version_number": body.get("version_number"),
        "version_code": body.get("version_code"),
        "bin_dir": body.get("bin_dir"),
        "images": body.get("images") or [],
    }


def print_download(output: Output, done: Downloaded) -> None:
    if done.signature == "verified":
        signed = f"signature verified (key {done.key_fingerprint})"
    elif done.signature == "unsigned":
        signed = "not signed"
    else:
        signed = "signature NOT verified"
    output.text(f"{done.path}: SHA256 {done.sha256} ok, {signed}")


def print_info(doc: dict[str, Any], output: Output) -> None:
    request = doc.get("request") or {}
    stage = doc.get("stage") if doc.get("status") != "done" else None
    output.text(f"Build {doc.get('request_hash')}: {doc.get('status')}"
                + (f" (stage {stage})" if stage and stage != doc.get("status") else ""))
    if doc.get("detail") and doc.get("status") != "done":
        output.text(f"  detail: {doc.get('detail')}")
    output.text(f"  {doc.get('distro') or request.get('distro') or 'openwrt'} "
                f"{doc.get('version')} {doc.get('target')} {doc.get('profile')}, "
                f"{len(doc.get('packages') or request.get('packages') or [])} packages requested")
    builder = doc.get("imagebuilder") or {}
    if builder.get("name"):
        output.text(f"  ImageBuilder: {builder.get('name')} (sha256 {builder.get('sha256')}, "
                    f"revision {builder.get('revision')})")
    if doc.get("manifest"):
        output.text(f"  manifest: {len(doc['manifest'])} packages")
    signature = doc.get("signature") or {}
    if signature.get("key_fingerprint"):
        state = {True: "verified", False: "DOES NOT VERIFY", None: "not checked"}
        output.text(f"  sha256sums signature by key {signature['key_fingerprint']}: "
                    f"{state.get(signature.get('verified'), 'unknown')}")
    for artifact in doc.get("artifacts") or []:
        output.text(f"  {artifact.get('name')} ({artifact.get('size')} bytes, "
                    f"sha256 {artifact.get('sha256')})")
    if doc.get("duration_seconds") is not None:
        output.text(f"  built in {doc['duration_seconds']:.1f} s by {doc.get('worker')}")
    if doc.get("build_cmd_shell"):
        output.text(f"  command: {doc['build_cmd_shell']}")


def status_document(digest: str, api: Api) -> dict[str, Any]:
    """What the plain v1 build status says, shaped like a (smaller) info document."""
    try:
        state = api.build_status(digest)
    except BuildFailedError as failed:
        return {"request_hash": digest, "status": "failed", "stage": failed.failed_stage,
                "detail": failed.message, "source": "build"}
    body = state.body
    request = body.get("request") or {}
    return {
        "request_hash": digest, "status": "done" if state.finished else state.stage,
        "stage": None if state.finished else state.stage, "detail": body.get("detail"),
        "version": body.get("version_number") or request.get("version"),
        "target": body.get("target") or request.get("target"),
        "profile": body.get("id") or request.get("profile"),
        "packages": request.get("packages"), "manifest": body.get("manifest"),
        "images": body.get("images"), "bin_dir": body.get("bin_dir"),
        "artifacts": [{"name": i.get("name"), "size": None, "sha256": i.get("sha256")}
                      for i in body.get("images") or []],
        "build_cmd_shell": " ".join(body["build_cmd"]) if body.get("build_cmd") else None,
        "source": "build",
    }
