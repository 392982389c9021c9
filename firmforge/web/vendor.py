"""Installs the pages' third-party scripts from the npm registry: pinned, integrity-checked.

    python -m firmforge.web.vendor [--force]

Each package is fetched as its registry tarball at a pinned version, its SHA-512 compared
with the pinned ``integrity`` (npm's Subresource-Integrity string, as ``npm view <pkg>@<v>
dist.integrity`` prints it), and only the named files are written to ``static/vendor/``
(git-ignored: nothing fetched is committed). A stamp file records what is installed, so a
second run with the same pins does nothing; ``make`` runs this after bootstrapping ``.venv``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import httpx

__all__ = ["PACKAGES", "REGISTRY", "VENDOR_DIR", "IntegrityError", "VendorPackage", "install"]

REGISTRY = "https://registry.npmjs.org"
VENDOR_DIR = Path(__file__).parent / "static" / "vendor"
_STAMP = ".installed.json"


class IntegrityError(Exception):
    """A downloaded tarball is not the pinned one."""


@dataclass(frozen=True)
class VendorPackage:
    name: str
    version: str
    integrity: str
    """``sha512-<base64>`` of the tarball, from the registry's ``dist.integrity``."""
    files: dict[str, str]
    """Member of the tarball → file name under ``static/vendor/``."""

    @property
    def url(self) -> str:
        return f"{REGISTRY}/{self.name}/-/{self.name.rsplit('/', 1)[-1]}-{self.version}.tgz"


PACKAGES: tuple[VendorPackage, ...] = (
    VendorPackage(
        name="chart.js",
        version="4.6.1",
        integrity="sha512-hJyniucsFmq//EvXYvJ6c6mahPoI3kaxdjVH8awTaJ/"
                  "fDNWeSqqqArixMJWkWNN6fcYvPU3HneSANFNYtRi61g==",
        files={
            "package/dist/chart.umd.min.js": "chart.umd.min.js",
            "package/LICENSE.md": "chart.js-LICENSE.md",
        },
    ),
)


def check_integrity(data: bytes, integrity: str) -> None:
    algorithm, _, expected = integrity.partition("-")
    if algorithm != "sha512":
        raise IntegrityError(f"unsupported integrity algorithm {algorithm!r}")
    actual = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if actual != expected:
        raise IntegrityError(f"integrity mismatch: want sha512-{expected}, got sha512-{actual}")


def _members(data: bytes, wanted: dict[str, str]) -> dict[str, bytes]:
    """The wanted regular files of a ``.tgz``, read in memory (nothing is extracted)."""
    found: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            if member.name in wanted and member.isfile():
                handle = tar.extractfile(member)
                if handle is not None:
                    found[wanted[member.name]] = handle.read()
    missing = sorted(set(wanted.values()) - set(found))
    if missing:
        raise IntegrityError(f"the tarball lacks {', '.join(missing)}")
    return found


def _stamp(packages: tuple[VendorPackage, ...]) -> dict[str, str]:
    return {p.name: f"{p.version} {p.integrity}" for p in packages}


def _installed(directory: Path, packages: tuple[VendorPackage, ...]) -> bool:
    try:
        stamp = json.loads((directory / _STAMP).read_text())
    except (OSError, ValueError):
        return False
    files = (name for p in packages for name in p.files.values())
    return stamp == _stamp(packages) and all((directory / name).is_file() for name in files)


def install(directory: Path = VENDOR_DIR, packages: tuple[VendorPackage, ...] = PACKAGES,
            client: httpx.Client | None = None, force: bool = False) -> bool:
    """Fetch, check and write ``packages``; False when they were installed already."""
    if not force and _installed(directory, packages):
        return False
    directory.mkdir(parents=True, exist_ok=True)
    http = client or httpx.Client(timeout=60, follow_redirects=True)
    try:
        for package in packages:
            response = http.get(package.url)
            response.raise_for_status()
            check_integrity(response.content, package.integrity)
            for name, content in _members(response.content, package.files).items():
                partial = directory / f".{name}.part"
                partial.write_bytes(content)
                partial.replace(directory / name)  # a reader never sees half a file
    finally:
        if client is None:
            http.close()
    (directory / _STAMP).write_text(json.dumps(_stamp(packages), indent=1) + "\n")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--force", action="store_true", help="fetch even if installed")
    args = parser.parse_args(argv)
    try:
        done = install(force=args.force)
    except (httpx.HTTPError, IntegrityError, tarfile.TarError) as exc:
        print(f"vendor install failed: {exc}", file=sys.stderr)
        return 1
    names = ", ".join(f"{p.name} {p.version}" for p in PACKAGES)
    print(f"{'installed' if done else 'already installed'}: {names} in {VENDOR_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
