"""``POST /api/v1/upgrade-check``: is there a newer release, or newer packages, for a router?

    POST /api/v1/upgrade-check
    {"version": "24.10.4", "target": "ath79/generic", "profile": "tplink,archer-c7-v5",
     "packages": {"dnsmasq": "2.90-r4", "libubox20240329": "2024.03.29~eb9bcb64-r1"}}

    {"status": "upgrade_available", "version": "24.10.4", "branch": "24.10", …,
     "upgrade": {"version": "24.10.5", "branch": "24.10", "package_changes": [],
                 "channel": "recommended"},
     "stable": null, "package_updates": []}

Only the catalog is read (no ImageBuilder, no queue). What depends on the device's version and
target alone (its feed versions, the releases it may upgrade to and their renames) is worked
out once in the thread pool and kept for ``DEFAULT_MEMO_TTL`` seconds; a check is then a few
dictionary look-ups and version comparisons on the event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.concurrency import run_in_threadpool

from firmforge.api._hits import render_json
from firmforge.api._json import DEFAULT_MEMO_TTL, app_services, json_response
from firmforge.api._reports import ReportChannels, report_channels
from firmforge.api._services import Services
from firmforge.catalog import branch_of
from firmforge.distributions import Distribution
from firmforge.errors import FirmforgeError
from firmforge.request import PKG_VERSION, STRING, TARGET
from firmforge.versions import is_newer, release_key

__all__ = ["UpgradeCheck", "UpgradeCheckRequest", "make_router"]

_PROFILE_MEMO_LIMIT = 1024
"""Resolved profile names kept per version/target (any board name resolves on x86)."""

_CONTEXT_LIMIT = 1024
"""Version/target contexts kept at once (bounded anyway by what the catalog knows)."""

Name = Annotated[str, StringConstraints(pattern=STRING, max_length=200)]
PackageVersion = Annotated[str, StringConstraints(pattern=PKG_VERSION, max_length=200)]


class UpgradeCheckRequest(BaseModel):
    """What a router knows about itself. Unknown fields are ignored, as upstream does."""

    model_config = ConfigDict(extra="ignore")

    distro: Name = Field("openwrt", description="Distribution: `openwrt`, or another the "
                         "server offers (overview `distributions`).")
    version: Name = Field(description="The router's release, e.g. `24.10.4`.")
    target: Annotated[str, StringConstraints(pattern=TARGET)] = Field(
        description="Target/subtarget, e.g. `ath79/generic`."
    )
    profile: Name = Field(
        description="Profile id or board name (`ubus call system board`), e.g. "
        "`tplink,archer-c7-v5`."
    )
    packages: dict[Name, PackageVersion] = Field(
        default_factory=dict,
        description="Installed packages as an object `{name: version}`, as `opkg list-installed` "
        "or `apk list --installed` print them; names may carry their ABI suffix "
        "(`libubox20240329`).",
    )


@dataclass(frozen=True)
class _Offer:
    """A release the device may move to, with the renames of that release's branch."""

    version: str
    branch: str
    renames: Mapping[str, str]

    def answer(self, installed: Mapping[str, str], channel: str = "unknown") -> dict[str, Any]:
        changes = [
            {"source": old, "target": new}
            for old, new in self.renames.items()
            if old in installed
        ]
        return {"version": self.version, "branch": self.branch, "package_changes": changes,
                "channel": channel}


@dataclass
class _Context:
    """Everything a check of one version/target needs, read from the catalog once."""

    version: str
    branch: str
    target: str
    feed: Mapping[str, str]  # name without ABI suffix -> version in the feeds
    stripped: Mapping[str, str]  # raw ABI name -> name without ABI suffix
    upgrade: _Offer | None
    stable: _Offer | None
    profiles: dict[str, str] = field(default_factory=dict)  # as sent -> canonical id


class UpgradeCheck:
    """Upgrade checks against one distribution: its branches of the catalog, its feeds."""

    def __init__(self, distribution: Distribution) -> None:
        self.distribution = distribution
        self.catalog = distribution.catalog

    def context(self, version: str, target: str) -> _Context:
        """Validate version and target (upstream's 400s) and read what checks need."""
        catalog = self.catalog
        self.distribution.check_version(version)
        catalog.check_target(version, target)
        index = catalog.package_index(version, target)
        own = self.distribution.feed_index(version, target)
        upgrade, stable = self.offers(version, target)
        return _Context(
            version=version,
            branch=branch_of(version),
            target=target,
            feed={**index.versions, **own.versions},
            stripped={**index.stripped, **own.stripped},
            upgrade=upgrade,
            stable=stable,
        )

    def offers(self, version: str, target: str) -> tuple[_Offer | None, _Offer | None]:
        """The newest newer release of the branch, and the newest newer one of another branch.

        Snapshots are offered nothing (they move daily; package updates are what they get).
        Release candidates are offered only to a device running one, and only releases that
        still build the device's target.
        """
        if version.endswith("SNAPSHOT"):
            return None, None
        current = release_key(version)
        with_rc = "-rc" in version
        candidates = [
            v
            for v in self.distribution.versions
            if not v.endswith("SNAPSHOT")
            and (with_rc or "-rc" not in v)
            and release_key(v) > current
            and self._builds(v, target)
        ]
        branch = branch_of(version)
        same = [v for v in candidates if branch_of(v) == branch]
        newest = max(candidates, key=release_key, default=None)
        upgrade = self._offer(max(same, key=release_key)) if same else None
        stable = self._offer(newest) if newest and branch_of(newest) != branch else None
        return upgrade, stable

    def _builds(self, version: str, target: str) -> bool:
        try:
            return target in self.catalog.targets(version)
        except FirmforgeError:
            return False

    def _offer(self, version: str) -> _Offer:
        return _Offer(version, branch_of(version), self.catalog.renames_for(version))

    @staticmethod
    def answer(
        context: _Context,
        profile: str,
        packages: Mapping[str, str],
        channels: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """The JSON answer for a device with ``packages`` ``{name: installed version}``;
        ``channels`` is the release channel by offered version (``unknown`` when missing)."""
        channels = channels or {}
        stripped, feed = context.stripped, context.feed
        upgrade = stable = None
        if context.upgrade or context.stable:
            installed = {stripped.get(name, name): version for name, version in packages.items()}
            upgrade = stable = None
            if context.upgrade:
                offer = context.upgrade
                upgrade = offer.answer(installed, channels.get(offer.version, "unknown"))
            if context.stable:
                offer = context.stable
                stable = offer.answer(installed, channels.get(offer.version, "unknown"))
        updates: list[dict[str, str]] = []
        if upgrade is None and stable is None:
            for name, version in packages.items():
                available = feed.get(stripped.get(name, name))
                if available is not None and available != version and is_newer(available, version):
                    updates.append({"name": name, "installed": version, "available": available})
            updates.sort(key=itemgetter("name"))
        if upgrade or stable:
            status = "upgrade_available"
        else:
            status = "package_updates" if updates else "up_to_date"
        return {
            "status": status,
            "version": context.version,
            "branch": context.branch,
            "target": context.target,
            "profile": profile,
            "upgrade": upgrade,
            "stable": stable,
            "package_updates": updates,
        }


class _Contexts:
    """``_Context`` by (version, target) for ``ttl`` seconds; only the event loop touches it."""

    def __init__(self, ttl: float = DEFAULT_MEMO_TTL, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[tuple[str, str, str], tuple[float, _Context]] = {}

    async def get(self, check: UpgradeCheck, version: str, target: str) -> _Context:
        key = (check.distribution.name, version, target)
        entry = self._entries.get(key)
        if entry is not None and entry[0] > self._clock():
            return entry[1]
        context = await run_in_threadpool(check.context, version, target)
        if len(self._entries) >= _CONTEXT_LIMIT:
            self._entries.clear()
        self._entries[key] = (self._clock() + self.ttl, context)
        return context


async def _profile(check: UpgradeCheck, context: _Context, profile: str) -> str:
    found = context.profiles.get(profile)
    if found is None:
        found = await run_in_threadpool(
            check.catalog.resolve_profile, context.version, context.target, profile
        )
        if len(context.profiles) < _PROFILE_MEMO_LIMIT:
            context.profiles[profile] = found
    return found


def make_router() -> APIRouter:
    """The route, with its own memory of per-version/target contexts."""
    router = APIRouter(tags=["upgrade"])
    contexts = _Contexts()

    @router.post("/api/v1/upgrade-check", response_model=None)
    async def upgrade_check(
        request: Annotated[UpgradeCheckRequest, Body()],
        svc: Annotated[Services, Depends(app_services)],
        reports: Annotated[ReportChannels, Depends(report_channels)],
    ) -> Response:
        """Whether a router should upgrade, from the catalog alone (no build).

        `packages` is an object `{name: installed version}`. The answer holds `upgrade`, the
        newest release of the router's branch if newer than its version, and `stable`, the
        newest release of a newer branch (release candidates only for a router running
        one), each `{"version", "branch", "package_changes": [{"source", "target"}],
        "channel"}` listing the renames that apply to the installed packages and the release
        channel of that version on the router's profile from device reports (`recommended`,
        `caution` or `unknown`); both `null` when there is none.
        Without either, `package_updates` lists `{"name", "installed", "available"}` for the
        installed packages the feeds of the router's own version/target hold in a newer
        version (opkg/apk order). `status` is `upgrade_available`, `package_updates` or
        `up_to_date`. An unsupported distro, version, target or profile is a 400 with
        upstream's `detail` text.
        """
        check = UpgradeCheck(svc.distributions.get(request.distro))
        context = await contexts.get(check, request.version, request.target)
        profile = await _profile(check, context, request.profile)
        offered = [offer.version for offer in (context.upgrade, context.stable) if offer]
        channels = await reports.channels(svc, context.target, profile, offered)
        answer = check.answer(context, profile, request.packages, channels)
        return json_response(render_json(answer))

    return router
