"""A build request for a device, and waiting for it while reporting progress.

    body = build_request(facts, version="24.10.5", add=["tcpdump"], remove=["ppp"])
    state = wait_for_build(api, api.post_build(body), on_progress=print)

The request lists the device's user-chosen packages with ``diff_packages`` set, as LuCI and
owut send them: the image holds exactly what the device has (defaults it removed stay out).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from firmforge.client._api import CLIENT, Api, BuildState
from firmforge.client._check import apply_changes
from firmforge.client._device import DeviceFacts
from firmforge.client._errors import Interrupted, ServerError

__all__ = ["DEFAULT_POLL_INTERVAL", "build_request", "resume_hint", "wait_for_build"]

DEFAULT_POLL_INTERVAL = 2.0
"""Seconds between status polls (owut's default; LuCI polls every 5 s)."""


def build_request(
    facts: DeviceFacts,
    *,
    version: str | None = None,
    add: Iterable[str] = (),
    remove: Iterable[str] = (),
    changes: Iterable[Mapping[str, Any]] = (),
    defaults: str | None = None,
    rootfs_size_mb: int | None = None,
) -> dict[str, Any]:
    """The ``POST /api/v1/build`` body: the device's packages, renamed for the release,
    minus ``remove``, plus ``add``."""
    removed = set(remove)
    names = [n for n in apply_changes(facts.packages, changes) if n not in removed]
    body: dict[str, Any] = {
        "distro": facts.distro,
        "version": version or facts.version,
        "target": facts.target,
        "profile": facts.profile,
        "packages": sorted({*names, *add}),
        "diff_packages": True,
        "client": CLIENT,
    }
    if facts.filesystem:
        body["filesystem"] = facts.filesystem
    if defaults is not None:
        body["defaults"] = defaults
    if rootfs_size_mb is not None:
        body["rootfs_size_mb"] = rootfs_size_mb
    return body


def resume_hint(request_hash: str) -> str:
    return (f"the build keeps running on the server; resume with "
            f"'firmforge client download {request_hash}' or see it with "
            f"'firmforge client info {request_hash}'")


def wait_for_build(
    api: Api,
    state: BuildState,
    *,
    on_progress: Callable[[BuildState], None],
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    timeout: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> BuildState:
    """Poll until the build is done (a failure raises ``BuildFailedError``).

    Ctrl-C stops waiting, not the build: ``Interrupted`` says how to pick it up again.
    """
    request_hash = state.request_hash
    started = time.monotonic()
    try:
        on_progress(state)
        while not state.finished:
            if timeout is not None and time.monotonic() - started > timeout:
                raise ServerError(f"build {request_hash} still not done after {timeout:.0f} s",
                                  hint=resume_hint(request_hash))
            sleep(poll_interval)
            state = api.build_status(request_hash)
            on_progress(state)
    except KeyboardInterrupt as exc:
        raise Interrupted(f"stopped waiting for build {request_hash}",
                          hint=resume_hint(request_hash)) from exc
    return state
