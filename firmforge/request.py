"""The build request: upstream ASU's model (research/asu-upstream.md §2.2) and its hash (§1.6).

The hash is upstream's, byte for byte, so the same request has the same hash on both servers
and clients can poll either.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model

__all__ = [
    "FILESYSTEMS",
    "BuildRequest",
    "manifest_hash",
    "packages_hash",
    "request_hash",
    "request_model",
    "sha256_text",
]

STRING = r"^[\w.,-]*$"
TARGET = r"^[\w]*/[\w]*$"
PKG_VERSION = r"^[\w+.,~-]*$"
REPO_NAME = r"^[\w.-]+$"
REPO_URL = r"^https?://\S+$"

Name = Annotated[str, StringConstraints(pattern=STRING)]
Filesystem = Literal["squashfs", "ext4", "ubifs", "erofs", "jffs2", "jffs2-nand", "targz", "cpiogz"]
FILESYSTEMS: tuple[str, ...] = Filesystem.__args__  # type: ignore[attr-defined]


class BuildRequest(BaseModel):
    """A request for one firmware image. Unknown fields are ignored, as upstream does."""

    model_config = ConfigDict(extra="ignore")

    distro: Name = Field("openwrt", description="Distribution, `openwrt`.")
    version: Name = Field(description="Release, e.g. `24.10.5`, `SNAPSHOT`, `24.10-SNAPSHOT`.")
    version_code: Name = Field("", description="Expected revision, e.g. `r28427-6df0e3d02a`.")
    target: Annotated[str, StringConstraints(pattern=TARGET)] = Field(
        description="Target/subtarget, e.g. `ath79/generic`."
    )
    profile: Name = Field(
        description="Profile id or any `supported_devices` entry (board name, commas allowed)."
    )
    packages: list[Name] = Field(
        default_factory=list, description="Packages to add (`-pkg` removes a default)."
    )
    packages_versions: dict[Name, Annotated[str, StringConstraints(pattern=PKG_VERSION)]] = Field(
        default_factory=dict,
        description="Packages with the exact versions the image must contain; replaces `packages`.",
    )
    diff_packages: bool = Field(
        False, description="Treat the list as absolute: defaults not listed are removed."
    )
    defaults: str | None = Field(None, description="First-boot uci-defaults script.")
    rootfs_size_mb: int | None = Field(None, ge=1, description="Root filesystem size, MiB.")
    filesystem: Filesystem | None = Field(None, description="Root filesystem type.")
    repositories: dict[
        Annotated[str, StringConstraints(pattern=REPO_NAME)],
        Annotated[str, StringConstraints(pattern=REPO_URL)],
    ] = Field(default_factory=dict, description="Extra package feeds {name: url}.")
    repositories_mode: Literal["append", "replace"] = Field(
        "replace", description="Add to or replace the ImageBuilder's feeds."
    )
    repository_keys: list[str] = Field(
        default_factory=list, description="Public keys of the extra feeds."
    )
    client: str | None = Field(None, description="Client name/version, for statistics.")

    @property
    def requested_packages(self) -> list[str]:
        """What to install: the keys of ``packages_versions`` when given, else ``packages``."""
        return [p.removeprefix("+") for p in (self.packages_versions or self.packages)]

    def with_renames(self, renames: dict[str, str]) -> BuildRequest:
        """Old package names replaced by their successors (``auc`` → ``owut``); ``-x`` too."""

        def rename(package: str) -> str:
            prefix = "-" if package.startswith("-") else ""
            name = package.removeprefix("-")
            return prefix + renames.get(name, name)

        return self.model_copy(update={
            "packages": [rename(p) for p in self.packages],
            "packages_versions": {rename(k): v for k, v in self.packages_versions.items()},
        })

    def normalized(self) -> BuildRequest:
        """Board names with commas name the same profile as their underscore form."""
        return self.model_copy(update={"profile": self.profile.replace(",", "_")})


def request_model(max_defaults_length: int, max_rootfs_size_mb: int) -> type[BuildRequest]:
    """``BuildRequest`` with this server's limits, so a violation is a 422 naming the field."""
    return create_model(  # type: ignore[no-any-return, call-overload]
        "BuildRequest",
        __base__=BuildRequest,
        defaults=(
            str | None,
            Field(None, max_length=max_defaults_length,
                  description="First-boot uci-defaults script."),
        ),
        rootfs_size_mb=(
            int | None,
            Field(None, ge=1, le=max_rootfs_size_mb, description="Root filesystem size, MiB."),
        ),
    )


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def packages_hash(packages: list[str]) -> str:
    """Order- and duplicate-insensitive hash of package names (also names images)."""
    return sha256_text(" ".join(sorted({p.removeprefix("+") for p in packages})))


def manifest_hash(packages_versions: dict[str, str]) -> str:
    return sha256_text(json.dumps(packages_versions, sort_keys=True))


def request_hash(request: BuildRequest) -> str:
    """Upstream's request hash: the fields concatenated without separators, hashed.

    ``client`` is not part of it; ``repositories`` insertion order is (Python dict repr).
    """
    request = request.normalized()
    parts = [
        request.distro,
        request.version,
        request.version_code,
        request.target,
        request.profile,
        packages_hash(list(request.packages_versions) or request.packages),
        manifest_hash(request.packages_versions),
        str(request.diff_packages),
        request.filesystem or "",
        sha256_text(request.defaults or ""),
        str(request.rootfs_size_mb),
        str(request.repository_keys),
        str(request.repositories),
        request.repositories_mode,
    ]
    return sha256_text("".join(parts))
