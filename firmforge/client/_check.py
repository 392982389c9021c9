"""Is there something newer for a device: firmforge's upgrade check, or upstream's overview.

    result = check_device(api, facts)
    result["status"]            # "upgrade_available" | "package_updates" | "up_to_date"
    pick_version(result, None)  # the release ``upgrade`` builds: same branch first

The answer has the shape of firmforge's ``POST /api/v1/upgrade-check`` (README API table) plus
``source``: ``upgrade-check``, or ``overview`` when the server lacks that route (upstream ASU)
and the newest releases were read from ``/api/v1/overview`` instead — then every offer's
``channel`` is ``unknown`` and package updates are not known.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from firmforge.catalog import branch_of
from firmforge.client._api import Api
from firmforge.client._device import DeviceFacts
from firmforge.client._errors import ExitCode
from firmforge.versions import release_key

__all__ = ["CHANNEL_ADVICE", "apply_changes", "check_device", "exit_code", "pick_version"]

CHANNEL_ADVICE = {
    "recommended": "other devices like this one report this release working",
    "caution": "devices like this one reported failures with this release: read the reports "
               "(GET /api/v1/stats/reports) before upgrading",
    "unknown": "no device like this one has reported on this release yet",
}


def check_body(facts: DeviceFacts) -> dict[str, Any]:
    return {"distro": facts.distro, "version": facts.version, "target": facts.target,
            "profile": facts.profile, "packages": dict(sorted(facts.packages.items()))}


def _offer(version: str, changes: Iterable[Mapping[str, Any]],
           installed: Mapping[str, str]) -> dict[str, Any]:
    applying = [{"source": c["source"], "target": c.get("target")}
                for c in changes if isinstance(c, Mapping) and c.get("source") in installed]
    return {"version": version, "branch": branch_of(version), "package_changes": applying,
            "channel": "unknown"}


def overview_check(overview: Mapping[str, Any], facts: DeviceFacts) -> dict[str, Any]:
    """What the overview's ``latest`` offers a device (LuCI's own logic, newest per branch)."""
    version = facts.version
    latest = [v for v in overview.get("latest") or [] if isinstance(v, str)]
    upgrade = stable = None
    if not version.endswith("SNAPSHOT"):
        current = release_key(version)
        with_rc = "-rc" in version
        newer = [v for v in latest if not v.endswith("SNAPSHOT")
                 and (with_rc or "-rc" not in v) and release_key(v) > current]
        branches = overview.get("branches") if isinstance(overview.get("branches"), dict) else {}

        def changes(v: str) -> list[Any]:
            branch = branches.get(branch_of(v))
            listed = branch.get("package_changes") if isinstance(branch, dict) else None
            return listed if isinstance(listed, list) else []

        same = [v for v in newer if branch_of(v) == branch_of(version)]
        if same:
            best = max(same, key=release_key)
            upgrade = _offer(best, changes(best), facts.packages)
        other = [v for v in newer if branch_of(v) != branch_of(version)]
        if other:
            best = max(other, key=release_key)
            stable = _offer(best, changes(best), facts.packages)
    return {
        "status": "upgrade_available" if upgrade or stable else "up_to_date",
        "version": version, "branch": branch_of(version), "target": facts.target,
        "profile": facts.profile, "upgrade": upgrade, "stable": stable,
        "package_updates": [], "source": "overview",
    }


def check_device(api: Api, facts: DeviceFacts) -> dict[str, Any]:
    answer = api.upgrade_check(check_body(facts))
    if answer is None:
        return overview_check(api.overview(), facts)
    return {**answer, "source": "upgrade-check"}


def exit_code(result: Mapping[str, Any]) -> ExitCode:
    """``check``'s exit code: 0 up to date, 10 a newer release, 11 newer packages only."""
    status = result.get("status")
    if status == "upgrade_available":
        return ExitCode.UPGRADE_AVAILABLE
    if status == "package_updates":
        return ExitCode.PACKAGE_UPDATES
    return ExitCode.OK


def pick_version(result: Mapping[str, Any], requested: str | None) -> dict[str, Any] | None:
    """The offer to build: ``requested`` if given (any offer or not), else the newest release
    of the device's branch, else the newest of a newer branch; ``None`` if nothing is newer."""
    offers = [o for o in (result.get("upgrade"), result.get("stable")) if isinstance(o, dict)]
    if requested:
        found = next((o for o in offers if o.get("version") == requested), None)
        return found or {"version": requested, "branch": branch_of(requested),
                         "package_changes": [], "channel": "unknown"}
    return offers[0] if offers else None


def apply_changes(packages: Iterable[str], changes: Iterable[Mapping[str, Any]]) -> list[str]:
    """Package names after a release's renames (``source`` → ``target``, or dropped)."""
    renamed = {c["source"]: c.get("target") for c in changes if c.get("source")}
    result: dict[str, None] = {}
    for name in packages:
        new = renamed.get(name, name)
        if new:
            result[new] = None
    return sorted(result)
