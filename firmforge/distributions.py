"""The distributions a server builds: OpenWrt, and those built on it such as LibreMesh.

Every distribution builds with OpenWrt's releases and ImageBuilders (one ``Catalog``); what
sets one apart is which branches it offers, its own feeds (signed by its own keys) and its
default packages. A request's ``distro`` picks one:

    distributions = Distributions(settings.distribution_configs, catalog, client)
    libremesh = distributions.get("libremesh")          # UnsupportedError if not offered
    libremesh.check_version("24.10.5")                  # the catalog's checks + its branches
    libremesh.check_packages("24.10.5", "ath79/generic", ["lime-app", "luci"])
    additions = libremesh.build_additions("24.10.5", "ath79/generic")

``build_additions`` resolves the feeds for the target's architecture and travels with the job
(``BuildAdditions.as_json``), so a worker needs no distribution configuration of its own: it
installs the feeds and keys into the ImageBuilder and merges the default packages.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from firmforge.catalog import Catalog, branch_of
from firmforge.config import DistributionConfig
from firmforge.errors import UnsupportedError
from firmforge.request import BuildRequest
from firmforge.upstream import PackageIndex, Upstream
from firmforge.usign import read_public_key

__all__ = ["JOB_KEY", "BuildAdditions", "Distribution", "Distributions", "merge_packages"]

log = logging.getLogger(__name__)

JOB_KEY = "distribution"
"""Where a job's request data carries its ``BuildAdditions``."""


def merge_packages(defaults: Iterable[str], requested: Iterable[str]) -> list[str]:
    """The distribution's defaults, then the request's packages; the request wins.

    A requested ``-x`` drops a default ``x`` (and a requested ``x`` a default ``-x``), so a
    user can always opt out of, or back into, what the distribution chose.
    """
    wanted = list(dict.fromkeys(requested))
    named = {name.removeprefix("-") for name in wanted}
    kept = [name for name in defaults if name.removeprefix("-") not in named]
    return list(dict.fromkeys([*kept, *wanted]))


@dataclass(frozen=True)
class BuildAdditions:
    """What a distribution adds to one build, resolved for its version and architecture."""

    packages: tuple[str, ...] = ()
    repositories: Mapping[str, str] | None = None
    repository_keys: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.packages or self.repositories or self.repository_keys)

    def as_json(self) -> dict[str, Any]:
        return {"packages": list(self.packages), "repositories": dict(self.repositories or {}),
                "repository_keys": list(self.repository_keys)}

    def with_feeds(self, request: BuildRequest) -> BuildRequest:
        """``request`` with the distribution's feeds and keys before its own (a request feed
        of the same name wins). The ImageBuilder's own feeds stay unless the request itself
        names feeds to replace them with."""
        if not self.repositories and not self.repository_keys:
            return request
        return request.model_copy(update={
            "repositories_mode": request.repositories_mode if request.repositories else "append",
            "repositories": {**(self.repositories or {}), **request.repositories},
            "repository_keys": list(dict.fromkeys([*self.repository_keys,
                                                   *request.repository_keys])),
        })

    def packages_for(self, requested: Iterable[str]) -> list[str]:
        """What the ImageBuilder installs: the defaults merged with the request's."""
        return merge_packages(self.packages, requested)

    @classmethod
    def from_job(cls, request_data: Mapping[str, Any]) -> BuildAdditions:
        """The additions a job carries (none for a plain OpenWrt build)."""
        data = request_data.get(JOB_KEY)
        if not isinstance(data, Mapping):
            return cls()
        return cls(
            packages=tuple(str(p) for p in data.get("packages") or ()),
            repositories={str(k): str(v) for k, v in (data.get("repositories") or {}).items()},
            repository_keys=tuple(str(k) for k in data.get("repository_keys") or ()),
        )


class _FeedIndexes:
    """Package indexes of a distribution's own feeds, per (version, arch), re-read after
    ``refresh_interval`` seconds. Each ``Packages`` must carry a valid ``Packages.sig``."""

    def __init__(self, client: httpx.Client, config: DistributionConfig,
                 refresh_interval: float, clock: Callable[[], float]) -> None:
        self.client = client
        self.config = config
        self.keys = [read_public_key(path) for path in config.keys]
        self.refresh_interval = refresh_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._indexes: dict[tuple[str, str], tuple[float, PackageIndex]] = {}

    def urls(self, version: str, arch: str) -> dict[str, str]:
        base = self.config.upstream_url or ""
        values = {"branch": branch_of(version), "version": version, "arch": arch}
        return {name: f"{base}/{path.format(**values)}"
                for name, path in self.config.feeds.items()}

    def index(self, version: str, arch: str) -> PackageIndex:
        key = (version, arch)
        now = self._clock()
        with self._lock:
            cached = self._indexes.get(key)
        if cached is not None and now - cached[0] < self.refresh_interval:
            return cached[1]
        index = PackageIndex(architecture=arch)
        for url in self.urls(version, arch).values():
            # one Upstream per feed: the same fetching, caching and signature checks as the
            # mirror, rooted at the feed
            Upstream(url, self.keys, self.client, cache_ttl=0).read_signed_feed(index)
        with self._lock:
            self._indexes[key] = (now, index)
        return index


class Distribution:
    """One distribution: OpenWrt's catalog narrowed to its branches, plus its feeds."""

    def __init__(
        self,
        config: DistributionConfig,
        catalog: Catalog,
        client: httpx.Client | None = None,
        *,
        refresh_interval: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``client`` reads the distribution's feeds (needed only when it has some)."""
        self.config = config
        self.name = config.name
        self.title = config.title or config.name
        self.catalog = catalog
        self.packages = tuple(config.packages)
        if config.feeds and client is None:
            raise ValueError(f"distribution {config.name}: reading its feeds needs a client")
        self._feeds = (_FeedIndexes(client, config, refresh_interval, clock)
                       if config.feeds and client is not None else None)
        self._key_texts = tuple(path.read_text() for path in config.keys) if config.feeds else ()

    def offers(self, version: str) -> bool:
        return not self.config.branches or branch_of(version) in self.config.branches

    @property
    def versions(self) -> list[str]:
        return [v for v in self.catalog.versions if self.offers(v)]

    @property
    def latest(self) -> list[str]:
        return [v for v in self.catalog.latest if self.offers(v)]

    def check_version(self, version: str) -> None:
        """The catalog's checks; a branch this distribution does not offer is unsupported."""
        if not self.offers(version):
            raise UnsupportedError(f"Unsupported branch: {version}")
        self.catalog.check_version(version)

    def feed_index(self, version: str, target: str) -> PackageIndex:
        """The packages of the distribution's own feeds for the target's architecture."""
        if self._feeds is None:
            return PackageIndex()
        return self._feeds.index(version, self.catalog.arch_of(version, target))

    def check_packages(self, version: str, target: str, packages: Iterable[str]) -> None:
        """Like ``Catalog.check_packages``, with the distribution's feeds as well."""
        wanted = [name for name in packages if not name.startswith("-")]
        own = self.feed_index(version, target) if wanted else PackageIndex()
        self.catalog.check_packages(version, target, [n for n in wanted if n not in own])

    def build_additions(self, version: str, target: str) -> BuildAdditions:
        """The feeds (for the target's architecture), keys and packages a build gets."""
        if self._feeds is None:
            return BuildAdditions(packages=self.packages)
        arch = self.catalog.arch_of(version, target)
        return BuildAdditions(
            packages=self.packages,
            repositories=self._feeds.urls(version, arch),
            repository_keys=self._key_texts,
        )

    def as_json(self) -> dict[str, Any]:
        """The overview's entry: what a client or page needs to offer the distribution."""
        return {
            "name": self.name,
            "title": self.title,
            "versions": self.versions,
            "latest": self.latest,
            "branches": list(dict.fromkeys(branch_of(v) for v in self.versions)),
            "default_packages": list(self.packages),
            "feeds": sorted(self.config.feeds),
        }


class Distributions:
    """The distributions offered, by name; OpenWrt first."""

    def __init__(self, configs: Iterable[DistributionConfig], catalog: Catalog,
                 client: httpx.Client, *, refresh_interval: float = 300.0) -> None:
        self._by_name = {
            config.name: Distribution(config, catalog, client, refresh_interval=refresh_interval)
            for config in configs
        }

    def get(self, name: str) -> Distribution:
        """The distribution a request names (case-insensitive, as clients vary)."""
        found = self._by_name.get(name.lower())
        if found is None:
            raise UnsupportedError(f"Unsupported distro: {name}")
        return found

    def __iter__(self) -> Iterator[Distribution]:
        return iter(self._by_name.values())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._by_name
