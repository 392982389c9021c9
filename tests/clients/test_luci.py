"""luci-app-attendedsysupgrade, replayed: the current app (24.10/25.12/master) and the one shipped
in 23.05.0–23.05.5 images (research/asu-clients.md §2, §1).

Both run in the router's web UI, so every call is a cross-origin XHR from the router's origin:
JSON requests are preflighted, every URL carries LuCI's ``?<epoch-ms>``, and the image is
downloaded with XHR too (it needs ``Access-Control-Allow-Origin``). The 23.05-era app still uses
the unversioned ``/api/overview``, builds URLs from a server URL ending in ``/`` (so every path
starts with ``//``), only treats 400/422/500 as errors and knows five progress steps.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from firmforge.api._build import job_response
from firmforge.queue import JobView, Stage
from tests.clients.conftest import (
    LUCI_2305_STEPS,
    LUCI_STEPS,
    Findings,
    download,
    image_problems,
    installed_packages,
    pick_images,
    with_buster,
)
from tests.conftest import MirrorFixture
from tests.server_fixtures import RunningServer

ORIGIN = "http://openwrt.lan"  # the router's web UI; only ever sent as a header
BROWSER = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/138.0.0.0 Safari/537.36")
POLL_SECONDS = 0.5  # LuCI polls every 5 s
BUILD_TIMEOUT = 300
OLD_LUCI_ERRORS = (400, 422, 500)  # anything else leaves the 23.05-era poller running silently


@dataclass
class Router:
    """What ``ubus call system board``, ``fs.stat('/sys/firmware/efi')`` and
    ``rpc-sys packagelist`` tell the app."""

    board_name: str
    target: str
    version: str
    rootfs_type: str
    efi: bool
    packages: list[str] = field(default_factory=list)


def get_branch(version: str) -> str:
    return ".".join(version.replace("-SNAPSHOT", "").split(".")[:2])


def revision_count(revision: str) -> int:
    """``r29087-d9c5716d1d`` → 29087 (LuCI's ``get_revision_count``)."""
    match = re.fullmatch(r"r(\d+)-[0-9a-f]+", revision)
    assert match, f"revision {revision!r} is not rNNNNN-hash"
    return int(match.group(1))


def upgrade_candidates(latest: list[str], installed: str) -> list[str]:
    """``handleCheck``: newest first (lexicographic), stop at the installed version, and after
    the first version of the installed branch."""
    candidates = []
    for version in sorted(latest, reverse=True):
        if version == installed:
            break
        candidates.append(version)
        if get_branch(version) == get_branch(installed):
            break
    return candidates


def apply_package_changes(packages: list[str], changes: list[dict[str, Any]],
                          target_revision: str) -> list[str]:
    """``applyPackageChanges``: changes up to the target's revision replace or drop packages."""
    result = list(packages)
    limit = revision_count(target_revision)
    for change in changes:
        if int(change["revision"]) <= limit and change["source"] in result:
            result.remove(change["source"])
            if change.get("target"):
                result.append(change["target"])
    return sorted(set(result))


class Luci:
    """The app's HTTP side; ``generation`` is ``"current"`` or ``"23.05"``."""

    def __init__(self, http: httpx.Client, server_url: str, generation: str,
                 findings: Findings) -> None:
        self.http = http
        # the 23.05-era app appends paths to the configured URL as is: "…/" + "/api/…"
        self.base = server_url if generation == "23.05" else server_url.rstrip("/")
        self.generation = generation
        self.steps = LUCI_STEPS if generation == "current" else LUCI_2305_STEPS
        self.findings = findings

    def url(self, path: str) -> str:
        return with_buster(self.base + path)

    def get_json(self, path: str) -> Any:
        """A plain ``request.get`` (no body: a CORS "simple" request, no preflight)."""
        response = self.http.get(self.url(path), headers={"Origin": ORIGIN},
                                 follow_redirects=True)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
        self.findings.cors(response, ORIGIN)
        return response.json()

    def post_build(self, body: dict[str, Any]) -> httpx.Response:
        url = self.url("/api/v1/build")
        self.findings.preflight(self.http, url, "POST", ORIGIN)
        response = self.http.post(url, content=json.dumps(body), headers={
            "Origin": ORIGIN, "Content-Type": "application/json"})
        self.findings.cors(response, ORIGIN)
        return response

    def poll(self, response: httpx.Response) -> httpx.Response:
        """``pollFn``: GET the hash every few seconds while 202; show position or step."""
        request_hash = None
        deadline = time.monotonic() + BUILD_TIMEOUT
        while response.status_code == 202:
            assert time.monotonic() < deadline, "build did not finish"
            body = response.json()
            request_hash = body.get("request_hash") or request_hash
            assert request_hash, f"202 without request_hash: {body}"
            if "queue_position" in body:
                self.findings.expect(isinstance(body["queue_position"], int),
                                     f"queue_position is {body['queue_position']!r}")
            else:
                status = body.get("imagebuilder_status")
                self.findings.expect(
                    status in self.steps,
                    f"202 imagebuilder_status {status!r}: no progress text in {self.generation} "
                    f"LuCI (steps[status] is undefined)")
            time.sleep(POLL_SECONDS)
            url = self.url(f"/api/v1/build/{request_hash}")
            # Content-Type: application/json makes it non-simple, and the cache-buster a new
            # URL each time, so the browser preflights every poll
            self.findings.preflight(self.http, url, "GET", ORIGIN)
            response = self.http.get(url, headers={
                "Origin": ORIGIN, "Content-Type": "application/json"})
            self.findings.cors(response, ORIGIN)
        return response

    def select_image(self, result: dict[str, Any], router: Router) -> dict[str, Any]:
        """``selectImage``: the rootfs type of the router, combined(-efi) on x86-like targets,
        else sysupgrade or combined."""
        if router.target.startswith(("armsr", "loongarch", "x86")):
            types = ["combined-efi" if router.efi else "combined"]
        else:
            types = ["sysupgrade", "combined"]
        found = pick_images(result["images"], router.rootfs_type, types)
        assert len(found) == 1, f"no single {router.rootfs_type} {types} image: {result['images']}"
        return found[0]

    def install(self, result: dict[str, Any], image: dict[str, Any]) -> None:
        """``handleInstall``: XHR blob download, then cgi-io's sha256 is compared with
        ``image.sha256``."""
        url = self.url(f"/store/{result['bin_dir']}/{image['name']}")
        response = download(self.http, url, image, headers={
            "Origin": ORIGIN, "Content-Type": "application/x-www-form-urlencoded"})
        self.findings.cors(response, ORIGIN)


def check_result(findings: Findings, result: dict[str, Any], request_hash: str | None,
                 version: str, revision: str, profile: str, target: str) -> None:
    """``handle200``: the fields LuCI shows (advanced mode: id, target, build_at)."""
    findings.expect(result.get("status") == 200, f"body status {result.get('status')!r}")
    for problem in image_problems(result.get("images")):
        findings.expect(False, problem)
    findings.expect(isinstance(result.get("bin_dir"), str) and result["bin_dir"],
                    f"bin_dir {result.get('bin_dir')!r}")
    if request_hash:
        findings.expect(result.get("request_hash") == request_hash, "request_hash changed")
    # forks build the store URL from request_hash (research §1 item 7)
    findings.expect(result.get("bin_dir") == result.get("request_hash"),
                    f"bin_dir {result.get('bin_dir')!r} != request_hash")
    findings.expect(result.get("version_number") == version,
                    f"version_number {result.get('version_number')!r}, want {version}")
    findings.expect(result.get("version_code") == revision,
                    f"version_code {result.get('version_code')!r}, want {revision}")
    findings.expect(result.get("id") == profile, f"id {result.get('id')!r}, want {profile}")
    findings.expect(result.get("target") == target, f"target {result.get('target')!r}")
    findings.expect(isinstance(result.get("build_at"), str), f"build_at {result.get('build_at')!r}")


def stock_profiles(mirror: MirrorFixture, version: str, target: str) -> dict[str, Any]:
    return json.loads((mirror.target_dir(version, target) / "profiles.json").read_text())


# -- what the server may say while building ----------------------------------------------------


def _started_statuses() -> set[str]:
    """``imagebuilder_status`` of the 202 the API renders for a job in each started stage."""
    statuses = set()
    for stage in Stage:
        if stage in (Stage.QUEUED, Stage.DONE, Stage.FAILED):
            continue
        view = JobView(request_hash="0" * 64, status="started", stage=stage.value,
                       queue_position=0, enqueued_at=None, result=None, failure=None,
                       request={})
        response = job_response(view, None)  # type: ignore[arg-type]  # unused unless done
        body = json.loads(bytes(response.body))
        if response.status_code == 202 and "queue_position" not in body:
            statuses.add(str(body.get("imagebuilder_status")))
    return statuses


@pytest.mark.parametrize("generation", ["current", "23.05"])
def test_every_build_stage_has_a_luci_progress_text(generation: str) -> None:
    """Every stage the server can report in a 202 (not queued) is one the app can display.

    Polling every 5 s catches a short stage only by chance, so this is checked on the response
    the API renders for every stage rather than on one build. Pre-Oct-2024 LuCI (23.05.0–.5)
    knows only five steps (research/asu-clients.md §2.4).
    """
    steps = LUCI_STEPS if generation == "current" else LUCI_2305_STEPS
    reported = _started_statuses()
    assert reported <= steps, (
        f"stages {sorted(reported - steps)} make {generation} LuCI throw "
        f"(steps[status] undefined)")


# -- full flows --------------------------------------------------------------------------------


@pytest.mark.slow
def test_current_luci_checks_requests_polls_downloads(
    asu: RunningServer, mirror: MirrorFixture
) -> None:
    """A TP-Link Archer C7 v5 on 24.10.4 upgrades to 24.10.5 through the current app."""
    findings = Findings()
    installed = stock_profiles(mirror, "24.10.4", "ath79/generic")
    router = Router("tplink,archer-c7-v5", "ath79/generic", "24.10.4", "squashfs", False,
                    installed_packages(installed, "tplink_archer-c7-v5",
                                       ["luci", "luci-app-attendedsysupgrade", "tcpdump"]))
    with httpx.Client(timeout=30, headers={"User-Agent": BROWSER}) as http:
        luci = Luci(http, asu.url, "current", findings)

        # handleCheck: a release is installed, so the overview's `latest`
        overview = luci.get_json("/api/v1/overview")
        assert isinstance(overview.get("latest"), list), overview
        candidates = upgrade_candidates(overview["latest"], router.version)
        assert "24.10.5" in candidates, f"latest {overview['latest']} offers {candidates}"
        version = "24.10.5"

        # applyPackageChanges for the selected version
        overview = luci.get_json("/api/v1/overview")
        branch = overview["branches"][get_branch(version)]
        assert isinstance(branch["package_changes"], list), branch
        revision = luci.get_json(f"/api/v1/revision/{version}/{router.target}")["revision"]
        assert revision == stock_profiles(mirror, version, router.target)["version_code"]
        packages = apply_package_changes(router.packages, branch["package_changes"], revision)

        # handleRequest
        firmware = {
            "client": "luci/25.051.13443~aa0c1ec",
            "packages": packages,
            "profile": router.board_name,
            "target": router.target,
            "version": version,
            "diff_packages": True,
            "filesystem": router.rootfs_type,
            "rootfs_size_mb": None,  # no `owut` UCI section on this router
        }
        posted = luci.post_build(firmware)
        assert posted.status_code in (200, 202), f"{posted.status_code} {posted.text}"
        request_hash = posted.json().get("request_hash")
        final = luci.poll(posted)
        assert final.status_code == 200, f"{final.status_code} {final.text[:2000]}"
        result = final.json()
        check_result(findings, result, request_hash, version, revision,
                     "tplink_archer-c7-v5", router.target)
        image = luci.select_image(result, router)
        luci.install(result, image)

        # a rebuilder gets the identical POST and compares sha256_unsigned
        again = luci.post_build(firmware)
        assert again.status_code == 200, f"{again.status_code} {again.text[:500]}"
        rebuilt = luci.select_image(again.json(), router)
        findings.expect(rebuilt["sha256_unsigned"] == image["sha256_unsigned"],
                        "the same request gave another sha256_unsigned")
    findings.check()


@pytest.mark.slow
def test_luci_23_05_upgrades_x86_through_legacy_routes(
    asu: RunningServer, mirror: MirrorFixture
) -> None:
    """An x86/64 EFI machine on 23.05.5 upgrades to 24.10.5 through the app shipped in 23.05.5:
    ``//api/overview``, a board name that is no profile, ext4, and ``auc`` installed (renamed
    to ``owut`` in 24.10: this app applies no package changes itself)."""
    findings = Findings()
    installed = stock_profiles(mirror, "23.05.5", "x86/64")
    router = Router("qemu-standard-pc-q35-ich9-2009", "x86/64", "23.05.5", "ext4", True,
                    installed_packages(installed, "generic",
                                       ["luci", "luci-app-attendedsysupgrade", "auc", "htop"]))
    with httpx.Client(timeout=30, headers={"User-Agent": BROWSER}) as http:
        luci = Luci(http, asu.url + "/", "23.05", findings)
        overview = luci.get_json("/api/overview")
        assert isinstance(overview.get("latest"), list), overview
        candidates = upgrade_candidates(overview["latest"], router.version)
        assert "24.10.5" in candidates, f"latest {overview['latest']} offers {candidates}"
        version = "24.10.5"

        firmware = {
            "client": "luci/git-23.236.53405-fc638c8",
            "packages": router.packages,
            "profile": router.board_name,
            "target": router.target,
            "version": version,
            "diff_packages": True,
            "filesystem": router.rootfs_type,
        }
        posted = luci.post_build(firmware)
        assert posted.status_code in (200, 202), f"{posted.status_code} {posted.text}"
        final = luci.poll(posted)
        assert final.status_code == 200, f"{final.status_code} {final.text[:2000]}"
        result = final.json()
        revision = stock_profiles(mirror, version, router.target)["version_code"]
        check_result(findings, result, posted.json().get("request_hash"), version, revision,
                     "generic", router.target)
        findings.expect("owut" in result.get("manifest", {}) and "auc" not in
                        result.get("manifest", {}), "auc was not replaced by owut")
        image = luci.select_image(result, router)
        luci.install(result, image)
    findings.check()


# -- errors the app must be able to show ---------------------------------------------------------


@pytest.mark.parametrize("generation", ["current", "23.05"])
def test_luci_shows_unknown_package_error(
    asu: RunningServer, mirror: MirrorFixture, generation: str
) -> None:
    """An unknown package is an error with a status the app handles and a string detail."""
    findings = Findings()
    installed = stock_profiles(mirror, "24.10.4", "ath79/generic")
    packages = installed_packages(installed, "tplink_archer-c7-v5", ["luci", "nosuch-package"])
    server_url = asu.url + ("/" if generation == "23.05" else "")
    with httpx.Client(timeout=30, headers={"User-Agent": BROWSER}) as http:
        luci = Luci(http, server_url, generation, findings)
        response = luci.post_build({
            "client": "luci/25.051.13443~aa0c1ec", "packages": packages,
            "profile": "tplink,archer-c7-v5", "target": "ath79/generic", "version": "24.10.5",
            "diff_packages": True, "filesystem": "squashfs", "rootfs_size_mb": None,
        })
    assert response.status_code in OLD_LUCI_ERRORS, f"{response.status_code} {response.text}"
    findings.string_detail(response, "nosuch-package")
    findings.check()


def test_luci_sends_rootfs_size_as_uci_string(asu: RunningServer) -> None:
    """``rootfs_size_mb`` comes from UCI as a string; it passes the schema (the unknown package
    then stops the request before anything is built)."""
    findings = Findings()
    with httpx.Client(timeout=30, headers={"User-Agent": BROWSER}) as http:
        luci = Luci(http, asu.url, "current", findings)
        response = luci.post_build({
            "client": "luci/25.051.13443~aa0c1ec", "packages": ["luci", "nosuch-package"],
            "profile": "tplink,archer-c7-v5", "target": "ath79/generic", "version": "24.10.5",
            "diff_packages": True, "filesystem": "squashfs", "rootfs_size_mb": "256",
        })
    assert response.status_code == 400, f"{response.status_code} {response.text}"
    findings.string_detail(response, "nosuch-package")
    findings.check()


def test_luci_fork_fields_and_headers_pass(asu: RunningServer) -> None:
    """Forks of the app (ImmortalWrt, kwrt, …) add body fields and request headers; neither may
    fail the schema or the preflight (research §1 item 6). The unknown package then stops the
    request with a 400 before anything is built."""
    findings = Findings()
    url = with_buster(f"{asu.url}/api/v1/build")
    with httpx.Client(timeout=30, headers={"User-Agent": BROWSER}) as http:
        findings.preflight(http, url, "POST", ORIGIN,
                           headers="content-type, ng-one-time-verif-value")
        response = http.post(url, content=json.dumps({
            "client": "luci/git-24.339.46112-9a3e4a8", "packages": ["luci", "nosuch-package"],
            "profile": "tplink,archer-c7-v5", "target": "ath79/generic", "version": "24.10.5",
            "diff_packages": True, "filesystem": "squashfs", "efi": None, "partsize": "256",
            "rootfs_size_mb": "256",
        }), headers={"Origin": ORIGIN, "Content-Type": "application/json",
                     "Ng-One-Time-Verif-Value": "0123456789"})
    findings.cors(response, ORIGIN)
    assert response.status_code == 400, f"{response.status_code} {response.text}"
    findings.string_detail(response, "nosuch-package")
    findings.check()
