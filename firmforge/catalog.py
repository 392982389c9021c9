"""The in-memory view of the mirror that build requests are validated against.

    catalog = Catalog(upstream, renames=PACKAGE_RENAMES)
    catalog.check_version("24.10.5")
    catalog.check_target("24.10.5", "ath79/generic")
    profile = catalog.resolve_profile("24.10.5", "ath79/generic", "tplink,archer-c7-v5")
    catalog.check_packages("24.10.5", "ath79/generic", ["luci", "auc"])  # UnknownPackagesError

Refusals are ``UnsupportedError`` with upstream ASU's exact 400 texts (research/asu-upstream.md
§2.3) or ``UnknownPackagesError``. Before refusing an unknown version, target or profile the
catalog re-reads that part of the mirror once (at most every ``miss_reload_interval`` seconds
per part), so a release published a minute ago is accepted without a restart.

Thread-safe: request handlers and a background refresher may call it concurrently. Data is
loaded lazily and each piece by one thread at a time; network reads never hold the main lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from firmforge.errors import UnknownPackagesError, UnsupportedError, UpstreamError
from firmforge.upstream import PackageIndex, Upstream, Versions

__all__ = ["Catalog", "branch_of"]

_T = TypeVar("_T")

log = logging.getLogger(__name__)

DEFAULT_REFRESH_INTERVAL = 300.0
"""Seconds after which ``maybe_refresh`` re-reads the release list and drops per-version data."""

DEFAULT_MISS_RELOAD_INTERVAL = 30.0
"""Seconds between two re-reads of the same part of the mirror caused by unknown input."""

_TARGET_TEXT = (
    "Unsupported target: {}. The requested target was either dropped, is still being built or "
    "is not supported by the selected version. Please check the forums or try again later."
)
_PROFILE_TEXT = (
    "Unsupported profile: {}. The requested profile was either dropped or never existed. "
    "Please check the forums for more information."
)


def branch_of(version: str) -> str:
    """``SNAPSHOT`` → ``SNAPSHOT``; ``24.10-SNAPSHOT`` → ``24.10``; ``24.10.0-rc1`` → ``24.10``."""
    if version == "SNAPSHOT":
        return version
    if version.endswith("-SNAPSHOT"):
        return version.removesuffix("-SNAPSHOT")
    return version.rsplit(".", 1)[0]


def _version_sort_key(version: str) -> str:
    """Upstream's order: descending on this key puts ``-rcN`` below the final release."""
    return version.replace(".0-rc", "-rc")


@dataclass(frozen=True)
class _ProfileTable:
    """Profile lookup for one target: ids first, then ``supported_devices`` entries."""

    ids: frozenset[str]
    by_device: dict[str, str]

    @classmethod
    def build(cls, profiles: dict[str, Any]) -> _ProfileTable:
        # Upstream keeps one flat dict where a later profile silently overwrites an earlier
        # one's entry (openwrt/asu#1525). Here an id always wins over a device entry, and
        # between device entries the one listed earlier in its profile (the primary DT
        # compatible) wins, then the first profile.
        ranked: dict[str, tuple[int, str]] = {}
        for profile_id, profile in profiles.items():
            devices = profile.get("supported_devices") if isinstance(profile, dict) else None
            for position, device in enumerate(devices or []):
                key = str(device).replace(",", "_")
                if key not in ranked or position < ranked[key][0]:
                    ranked[key] = (position, profile_id)
        return cls(
            ids=frozenset(profiles),
            by_device={key: profile_id for key, (_, profile_id) in ranked.items()},
        )

    def lookup(self, wanted: str) -> str | None:
        if wanted in self.ids:
            return wanted
        if wanted in self.by_device:
            return self.by_device[wanted]
        if self.ids == {"generic"}:
            return "generic"  # x86/64, armsr, …: any board name builds the one image
        return None


class Catalog:
    """Versions, targets, profiles and package indexes of one mirror, validated in memory."""

    def __init__(
        self,
        upstream: Upstream,
        renames: dict[str, dict[str, str]] | None = None,
        refresh_interval: float = DEFAULT_REFRESH_INTERVAL,
        miss_reload_interval: float = DEFAULT_MISS_RELOAD_INTERVAL,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.upstream = upstream
        self.renames = renames or {}
        self.refresh_interval = refresh_interval
        self.miss_reload_interval = miss_reload_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._first_load = threading.Lock()
        self._versions: Versions | None = None
        self._loaded_at = 0.0
        self._generation = 0  # bumped by refresh(): loads started before it are not kept
        self._data: dict[Hashable, Any] = {}
        self._key_locks: dict[Hashable, threading.Lock] = {}
        self._misses: dict[Hashable, float] = {}

    # -- refreshing -----------------------------------------------------------------------

    def refresh(self) -> None:
        """Re-read the release list and forget everything loaded per version."""
        self._load_all()

    def _load_all(self) -> Versions:
        self.upstream.invalidate()
        versions = self.upstream.versions()
        with self._lock:
            self._versions = versions
            self._loaded_at = self._clock()
            self._generation += 1
            self._data.clear()
        return versions

    def maybe_refresh(self) -> bool:
        """``refresh()`` when the data is older than ``refresh_interval``; True if it did.

        One caller refreshes while the others go on with the current data; after a failure
        (mirror unreachable) the next attempt waits ``miss_reload_interval``.
        """
        with self._lock:
            now = self._clock()
            if self._versions is not None and now - self._loaded_at < self.refresh_interval:
                return False
            self._loaded_at = now  # claim this refresh
        try:
            self._load_all()
        except Exception:
            with self._lock:
                if self._loaded_at == now:  # retry after miss_reload_interval, not at once
                    self._loaded_at = now + self.miss_reload_interval - self.refresh_interval
            raise
        return True

    def _release_list(self) -> Versions:
        with self._lock:
            versions = self._versions
        if versions is not None:
            return versions
        with self._first_load:  # concurrent first requests share one load
            with self._lock:
                versions = self._versions
            return versions if versions is not None else self._load_all()

    def _reload_on_miss(self, key: Hashable, path: str, reload: Callable[[], None]) -> bool:
        """Re-read ``path`` of the mirror because a request named something unknown.

        At most once per ``miss_reload_interval`` for each part ``key`` (so random input
        cannot hammer the mirror). False when rate-limited or when the mirror failed, in
        which case the data loaded before stays.
        """
        now = self._clock()
        with self._lock:
            last = self._misses.get(key)
            if last is not None and now - last < self.miss_reload_interval:
                return False
            self._misses[key] = now
        self.upstream.invalidate(path)
        try:
            reload()
        except UpstreamError as exc:
            log.warning("Re-reading %s after a miss failed: %s", path, exc.detail)
            return False
        return True

    def _store(self, key: Hashable, value: object, *derived: Hashable) -> None:
        """Replace ``key`` with a freshly loaded value and drop data derived from it."""
        with self._lock:
            self._data[key] = value
            for other in derived:
                self._data.pop(other, None)

    def _set_versions(self, versions: Versions) -> None:
        with self._lock:
            self._versions = versions

    def _cached(self, key: Hashable, load: Callable[[], _T]) -> _T:
        """``load()`` once per key until the next refresh; concurrent callers wait for it."""
        with self._lock:
            if key in self._data:
                found: _T = self._data[key]
                return found
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._data:
                    found = self._data[key]
                    return found
                generation = self._generation
            value = load()
            with self._lock:
                if generation == self._generation:
                    self._data[key] = value
            return value

    # -- the views ------------------------------------------------------------------------

    @property
    def versions(self) -> list[str]:
        """Known versions (``versions_list`` plus ``upcoming``), newest first as upstream."""
        return self._sorted_versions(self._release_list())

    @staticmethod
    def _sorted_versions(release: Versions) -> list[str]:
        known = dict.fromkeys([*release.versions_list, release.upcoming])
        return sorted((v for v in known if v), key=_version_sort_key, reverse=True)

    @property
    def latest(self) -> list[str]:
        """``[upcoming, stable, oldstable]`` without the empty ones."""
        release = self._release_list()
        return [v for v in (release.upcoming, release.stable, release.oldstable) if v]

    @property
    def branches(self) -> list[str]:
        """Branches of the known versions, newest first."""
        return list(dict.fromkeys(branch_of(v) for v in self.versions))

    def targets(self, version: str) -> dict[str, str]:
        """``{target: arch_packages}`` of a known version."""
        self.check_version(version)
        return self._cached(("targets", version), lambda: self.upstream.targets(version))

    def arch_of(self, version: str, target: str) -> str:
        self.check_target(version, target)
        return self.targets(version)[target]

    def profiles(self, version: str, target: str) -> dict[str, Any]:
        """The target's ``profiles.json``."""
        self.check_target(version, target)
        return self._cached(
            ("profiles", version, target), lambda: self.upstream.profiles(version, target)
        )

    def package_index(self, version: str, target: str) -> PackageIndex:
        self.check_target(version, target)
        return self._cached(
            ("index", version, target), lambda: self.upstream.package_index(version, target)
        )

    def target_index(self, version: str, target: str) -> PackageIndex:
        """The target's own packages and kmods (ASU's per-target ``index.json``)."""
        self.check_target(version, target)
        return self._cached(
            ("target-index", version, target),
            lambda: self.upstream.target_index(version, target),
        )

    def arch_index(self, version: str, arch: str) -> PackageIndex:
        """The arch feeds of a package architecture some target of ``version`` uses."""
        if arch not in self.targets(version).values():
            raise UnsupportedError(f"Unsupported architecture: {arch}")
        return self._cached(
            ("arch-index", version, arch), lambda: self.upstream.arch_index(version, arch)
        )

    def renames_for(self, version: str) -> dict[str, str]:
        """The ``{old: new}`` package renames of the version's branch."""
        return dict(self.renames.get(branch_of(version), {}))

    # -- validation (upstream's order: version, target, profile; then packages) ------------

    def check_version(self, version: str) -> None:
        if self._version_known(version) is None:
            return
        self._reload_on_miss(
            "versions", ".versions.json", lambda: self._set_versions(self.upstream.versions())
        )
        problem = self._version_known(version)
        if problem is not None:
            raise UnsupportedError(f"{problem}: {version}")

    def _version_known(self, version: str) -> str | None:
        """None if known, else which of upstream's two refusals applies."""
        known = self.versions
        if version in known:
            return None
        branches = {branch_of(v) for v in known}
        if version not in branches and branch_of(version) not in branches:
            return "Unsupported branch"
        return "Unsupported version"

    def check_target(self, version: str, target: str) -> None:
        self.check_version(version)
        if target in self.targets(version):
            return
        key = ("targets", version)
        path = f"{self.upstream.version_path(version)}/.targets.json"
        if self._reload_on_miss(
            key, path, lambda: self._store(key, self.upstream.targets(version))
        ) and target in self.targets(version):
            return
        raise UnsupportedError(_TARGET_TEXT.format(target))

    def resolve_profile(self, version: str, target: str, profile: str) -> str:
        """The canonical profile id for a profile id or a board name (``vendor,model``)."""
        self.check_target(version, target)
        wanted = profile.replace(",", "_")
        found = self._profile_table(version, target).lookup(wanted)
        key = ("profiles", version, target)
        path = f"{self.upstream.version_path(version)}/targets/{target}/"
        if found is None and self._reload_on_miss(
            key,
            path,
            lambda: self._store(
                key,
                self.upstream.profiles(version, target),
                ("profile-table", version, target),
                ("index", version, target),
                ("target-index", version, target),
            ),
        ):
            found = self._profile_table(version, target).lookup(wanted)
        if found is None:
            raise UnsupportedError(_PROFILE_TEXT.format(wanted))
        return found

    def _profile_table(self, version: str, target: str) -> _ProfileTable:
        return self._cached(
            ("profile-table", version, target),
            lambda: _ProfileTable.build(self.profiles(version, target)["profiles"]),
        )

    def check_packages(self, version: str, target: str, packages: Iterable[str]) -> None:
        """Refuse, naming every one at once, packages no feed of version/target provides.

        Removals (``-name``) are not checked; renames of the version's branch are suggested.
        """
        wanted = [name for name in packages if not name.startswith("-")]
        if not wanted:
            return
        index = self.package_index(version, target)
        unknown = [name for name in dict.fromkeys(wanted) if name not in index]
        if unknown:
            table = self.renames_for(version)
            renames = {name: table[name] for name in unknown if name in table}
            raise UnknownPackagesError(unknown, renames)
