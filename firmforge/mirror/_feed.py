"""Writing one package directory of the mirror: ``.ipk`` files and their signed indexes.

Per research §2.4: ``Packages.manifest`` (all control fields), ``Packages`` (without the
maintainer/source fields, padded against the old usign SHA-512 bug, §4.6), ``Packages.gz``,
``Packages.sig`` (over the *uncompressed* ``Packages``) and ``index.json`` (v1: one line with
ABI-suffixed names; v2: pretty, names without the ABI suffix, §2.6).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from firmforge.mirror._packages import BuiltPackage
from firmforge.usign import SecretKey

__all__ = ["packages_index_text", "write_feed"]

# Fields ``package/Makefile`` drops when it turns Packages.manifest into Packages.
_MANIFEST_ONLY = (
    "Maintainer", "LicenseFiles", "Source", "SourceName", "Require", "SourceDateEpoch",
)


def _stanza(package: BuiltPackage, manifest: bool) -> str:
    lines = []
    for key, value in package.fields:
        if not manifest and key.startswith(_MANIFEST_ONLY):
            continue
        if key == "Description":
            lines += [
                f"Filename: {package.filename}",
                f"Size: {len(package.ipk)}",
                f"SHA256sum: {hashlib.sha256(package.ipk).hexdigest()}",
                f"Description:  {value}",
            ]
        else:
            lines.append(f"{key}: {value}")
    return "\n".join(lines) + "\n"


def packages_index_text(packages: Iterable[BuiltPackage], manifest: bool = False) -> str:
    """``Packages`` (or ``Packages.manifest``) text: stanzas sorted by path, blank-separated."""
    ordered = sorted(packages, key=lambda p: p.filename)
    text = "\n".join(_stanza(p, manifest) for p in ordered)
    if not manifest and (64 + len(text.encode())) % 128 in (110, 111):
        text += "\n\n"  # the usign SHA-512 work-around of package/Makefile
    return text


def _index_json(packages: list[BuiltPackage], architecture: str, version: int) -> str:
    if version == 1:
        ordered = sorted(packages, key=lambda p: p.name)
        body = ",".join(f'"{p.name}": "{p.version}"' for p in ordered)
        return f'{{"architecture": "{architecture}", "packages":{{{body}}}}}\n'
    names = {}
    for package in packages:
        fields = dict(package.fields)
        abi = fields.get("ABIVersion")
        name = package.name.removesuffix(abi).removesuffix("-") if abi else package.name
        names[name] = package.version
    document = {"version": 2, "architecture": architecture, "packages": dict(sorted(names.items()))}
    return json.dumps(document, indent=2) + "\n"


def write_feed(
    directory: Path,
    packages: list[BuiltPackage],
    architecture: str,
    index_version: int,
    key: SecretKey,
    unindexed: Iterable[BuiltPackage] = (),
) -> None:
    """Write ``packages`` (indexed) and ``unindexed`` (kernel, libc: on disk, in no index)."""
    directory.mkdir(parents=True, exist_ok=True)
    for package in [*packages, *unindexed]:
        (directory / package.filename).write_bytes(package.ipk)
    index = packages_index_text(packages).encode()
    (directory / "Packages").write_bytes(index)
    (directory / "Packages.gz").write_bytes(gzip.compress(index, compresslevel=9, mtime=0))
    (directory / "Packages.sig").write_text(key.sign(index))
    (directory / "Packages.manifest").write_text(packages_index_text(packages, manifest=True))
    (directory / "index.json").write_text(_index_json(packages, architecture, index_version))
