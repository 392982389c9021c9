"""The one settings object: command-line flags, then ``FIRMFORGE_*`` environment variables,
then ``firmforge.toml`` in the working directory, then the defaults below.

Every setting is documented by its ``description``; ``firmforge serve --help`` and the README
list them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = [
    "BRANCH_OFF_REVISIONS",
    "PACKAGE_CHANGES",
    "PACKAGE_RENAMES",
    "DistributionConfig",
    "PackageChange",
    "Settings",
]

@dataclass(frozen=True)
class PackageChange:
    """One entry of the package-changes table that clients apply when they upgrade.

    ``source`` and ``target``: ``source`` was renamed or replaced by ``target``; only ``source``:
    the package is gone (clients drop it); only ``target``: it is new. ``mandatory``: the change
    follows from changed defaults, so clients apply it even to packages the user did not pick.
    A client applies an entry when ``revision`` is not above the revision it upgrades to.
    """

    revision: int
    source: str | None = None
    target: str | None = None
    mandatory: bool = False

    def as_json(self) -> dict[str, object]:
        """Upstream ASU's shape: absent fields are left out, ``mandatory`` only when true."""
        entry: dict[str, object] = {}
        if self.source is not None:
            entry["source"] = self.source
        if self.target is not None:
            entry["target"] = self.target
        entry["revision"] = self.revision
        if self.mandatory:
            entry["mandatory"] = True
        return entry


# OpenWrt's package changes with the main-branch revision (``rNNNNN``) that made them, as the
# OpenWrt project publishes them; a release branch gets those made before it branched off.
PACKAGE_CHANGES: tuple[PackageChange, ...] = (
    PackageChange(18611, "firewall", "firewall4"),
    PackageChange(20282, "kmod-nft-nat6", mandatory=True),
    PackageChange(21994, "libustream-wolfssl", "libustream-mbedtls"),
    PackageChange(21994, "px5g-wolfssl", "px5g-mbedtls"),
    PackageChange(21994, "wpad-basic-wolfssl", "wpad-basic-mbedtls"),
    PackageChange(25984, "luci-app-diag-core", mandatory=True),
    PackageChange(26792, "auc", "owut"),
    PackageChange(27897, "luci-app-opkg", "luci-app-package-manager"),
    PackageChange(27990, "luci-app-wireguard", "luci-proto-wireguard"),
    PackageChange(28056, "opkg", "apk-mbedtls"),
)

# Revision of the main branch at which each release branch was created. A branch missing
# here is published with the revision of its first release instead.
BRANCH_OFF_REVISIONS: dict[str, int] = {
    "25.12": 32295,
    "24.10": 27990,
    "23.05": 23069,
    "22.03": 19160,
    "21.02": 15812,
}


def _renames_by_branch() -> dict[str, dict[str, str]]:
    """Per release branch, the renames made before it branched off (one table, two views)."""
    return {
        branch: {
            c.source: c.target
            for c in PACKAGE_CHANGES
            if c.source and c.target and not c.mandatory and c.revision <= branch_off
        }
        for branch, branch_off in BRANCH_OFF_REVISIONS.items()
    }


# Package renames between branches: an old package list builds on a new release once these
# are applied; unknown-package errors suggest them. Derived from PACKAGE_CHANGES.
PACKAGE_RENAMES: dict[str, dict[str, str]] = _renames_by_branch()

_FEED_PLACEHOLDERS = ("{branch}", "{version}", "{arch}")


class DistributionConfig(BaseModel):
    """One distribution the server builds: OpenWrt's releases and ImageBuilders, plus the
    distribution's own feeds, the keys that sign them and its default packages.

    LibreMesh, for example, is OpenWrt with the lime-* feeds of feed.libremesh.org and a
    package set that adds the lime packages and removes ``dnsmasq``.
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$",
                      description="What requests send as `distro`.")
    title: str = Field("", max_length=64, description="Shown to people; defaults to `name`.")
    upstream_url: str | None = Field(
        None, description="Where the distribution's feeds are published (the feed host); "
        "unset: the server's `upstream_url`.")
    keys: list[Path] = Field(
        default_factory=list,
        description="usign public key files that sign the feeds' `Packages`.")
    branches: list[str] = Field(
        default_factory=list, description="OpenWrt branches offered (`24.10`); empty: all.")
    feeds: dict[str, str] = Field(
        default_factory=dict,
        description="Feed name → path under `upstream_url`, with `{branch}`, `{version}` and "
        "`{arch}` filled in per build.")
    packages: list[str] = Field(
        default_factory=list,
        description="Added to every build's packages; `-name` removes a default package.")

    @field_validator("upstream_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError(f"upstream_url must be an http(s) URL, got {url!r}")
        return url.rstrip("/") if url else None

    @field_validator("feeds")
    @classmethod
    def _feed_paths(cls, feeds: dict[str, str]) -> dict[str, str]:
        for name, path in feeds.items():
            if not name.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"feed name {name!r}: letters, digits, - and _ only")
            rest = path
            for placeholder in _FEED_PLACEHOLDERS:
                rest = rest.replace(placeholder, "x")
            if "{" in rest or "}" in rest or ".." in rest.split("/") or any(
                    c.isspace() for c in rest):
                raise ValueError(f"feed {name}: bad path {path!r} (placeholders: "
                                 f"{', '.join(_FEED_PLACEHOLDERS)})")
        return feeds

    @field_validator("packages")
    @classmethod
    def _package_names(cls, packages: list[str]) -> list[str]:
        for package in packages:
            if not package.removeprefix("-").replace("-", "").replace("_", "").replace(
                    ".", "").replace("+", "").isalnum():
                raise ValueError(f"not a package name: {package!r}")
        return packages


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FIRMFORGE_",
        toml_file="firmforge.toml",
        extra="ignore",
    )

    host: str = Field("127.0.0.1", description="Address the API listens on.")
    port: int = Field(8000, ge=0, le=65535, description="Port the API listens on.")
    data_dir: Path = Field(
        Path("firmforge-data"),
        description="Where the embedded Redis, SQLite database, store and caches live.",
    )
    upstream_url: str = Field(
        "https://downloads.openwrt.org", description="The downloads mirror to build from."
    )
    upstream_key: list[Path] = Field(
        default_factory=list,
        description="usign/signify public key files trusted to sign the mirror's sha256sums. "
        "Without any, signatures are not checked (a warning is logged).",
    )
    workers: int = Field(2, ge=0, le=64, description="Local build worker processes.")
    redis_url: str | None = Field(
        None, description="External Redis/Valkey URL; unset starts an embedded Redis."
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy URL (PostgreSQL in production); unset uses SQLite."
    )
    allow_defaults: bool = Field(False, description="Accept first-boot `defaults` scripts.")
    max_defaults_length: int = Field(20480, description="Longest `defaults` script, characters.")
    max_custom_rootfs_size_mb: int = Field(1024, description="Largest `rootfs_size_mb`.")
    max_pending_jobs: int = Field(200, description="Queue length beyond which POSTs get 529.")
    build_ttl: int = Field(7 * 86400, description="Seconds a build with versions is kept.")
    build_ttl_unversioned: int = Field(86400, description="Seconds a plain build is kept.")
    build_defaults_ttl: int = Field(1800, description="Seconds a build with `defaults` is kept.")
    build_failure_ttl: int = Field(
        300, description="Seconds a failure is answered from cache before a retry builds again."
    )
    job_timeout: int = Field(1800, description="Seconds a whole build may take.")
    stage_timeout: int = Field(900, description="Seconds one ImageBuilder command may take.")
    max_cache_gb: float = Field(20.0, description="Disk budget of the ImageBuilder cache, GiB.")
    store_max_gb: float = Field(
        50.0, gt=0, description="Disk budget of the store, GiB: over it the least downloaded "
        "builds (the oldest first among equals) are removed.")
    store_retention_days: float = Field(
        30.0, gt=0, description="Days a build stays in the store at most.")
    store_gc_interval: float = Field(
        300.0, gt=0, description="Seconds between store collections; a build published or "
        "served within this time is kept.")
    admin_token: SecretStr | None = Field(
        None, description="Bearer token of the admin API (`/api/v1/admin/...`); unset: the "
        "admin API answers 403.")
    store_url: str | None = Field(
        None,
        description="Base URL of a file server or CDN that serves the store: `/store/...` then "
        "answers 302 to `<store_url>/store/<bin_dir>/<file>`. Unset: files are served directly.",
    )
    downloads_flush_interval: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="Seconds between writes of the in-memory download counts to the database "
        "(the most a crash can lose; a clean shutdown writes everything).",
    )
    stats_flush_interval: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="Seconds between writes of the in-memory build-request counts (requests, "
        "cache hits, failures per day, for /stats) to the database.",
    )
    queue_sample_interval: float = Field(
        60.0,
        gt=0,
        le=86400,
        description="Seconds between samples of the queue length kept for /stats "
        "(kept 90 days).",
    )
    report_rate_limit: int = Field(
        20,
        ge=1,
        description="Device reports (`POST /api/v1/report`) one client address may send per "
        "hour; more get 429 with `Retry-After`.",
    )
    channel_min_successes: int = Field(
        5,
        ge=1,
        description="Success reports a release needs on a profile before it is `recommended`.",
    )
    channel_max_failure_rate: float = Field(
        0.1,
        gt=0,
        le=1,
        description="A release is `recommended` on a profile only while its failure reports "
        "are below this share of its reports.",
    )
    catalog_refresh_interval: int = Field(
        300, description="Seconds between re-reads of the mirror's release list."
    )
    signing_key: Path | None = Field(
        None,
        description="usign/signify secret key (unencrypted) the server signs builds with; "
        "unset: `<data_dir>/keys/firmforge.sec`, made on the first start.",
    )
    repository_allow_list: list[str] = Field(
        default_factory=list,
        description="URLs under which a request's extra `repositories` may lie (same scheme, "
        "host and port; path below the entry's path), as a JSON list. Empty refuses every "
        "extra repository.",
    )

    distributions: list[DistributionConfig] = Field(
        default_factory=list,
        description="Distributions offered beside OpenWrt (e.g. LibreMesh), as a JSON list or "
        "`[[distributions]]` tables: `name`, `title`, `upstream_url`, `keys`, `branches`, "
        "`feeds`, `packages` (see Distributions). An entry named `openwrt` sets OpenWrt's "
        "`title`, `branches`, `feeds` and `packages`.",
    )

    @field_validator("store_url")
    @classmethod
    def _store_url(cls, url: str | None) -> str | None:
        if not url:
            return None
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"store_url must be an http(s) URL, got {url!r}")
        return url.rstrip("/")

    @field_validator("repository_allow_list")
    @classmethod
    def _allow_list_urls(cls, entries: list[str]) -> list[str]:
        from firmforge.repositories import check_allow_list_entry  # heavy imports, only here

        return [check_allow_list_entry(entry) for entry in entries]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @field_validator("distributions")
    @classmethod
    def _distinct_names(cls, entries: list[DistributionConfig]) -> list[DistributionConfig]:
        names = [entry.name for entry in entries]
        doubled = sorted({name for name in names if names.count(name) > 1})
        if doubled:
            raise ValueError(f"distributions named twice: {', '.join(doubled)}")
        for entry in entries:
            if entry.feeds and entry.name != "openwrt" and entry.upstream_url is None:
                raise ValueError(f"distribution {entry.name}: feeds need an upstream_url")
        return entries

    @property
    def distribution_configs(self) -> list[DistributionConfig]:
        """OpenWrt first (from ``upstream_url``/``upstream_key``, amended by an ``openwrt``
        entry), then the configured distributions."""
        configured = {entry.name: entry for entry in self.distributions}
        amend = configured.pop("openwrt", None)
        openwrt = DistributionConfig(
            name="openwrt", title="OpenWrt", upstream_url=self.upstream_url,
            keys=list(self.upstream_key),
        )
        if amend is not None:
            openwrt = openwrt.model_copy(update={
                field: getattr(amend, field)
                for field in ("title", "branches", "feeds", "packages")
                if field in amend.model_fields_set
            })
        return [openwrt, *configured.values()]

    # Derived locations under the data dir.
    @property
    def store_dir(self) -> Path:
        return self.data_dir / "store"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "imagebuilders"

    @property
    def signing_key_path(self) -> Path:
        return self.signing_key or self.data_dir / "keys" / "firmforge.sec"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'firmforge.db').resolve()}"
