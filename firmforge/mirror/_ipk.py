"""Writing ``.ipk`` packages the way OpenWrt's ``scripts/ipkg-build`` does (research §3.2).

An ``.ipk`` is a gzip'd tar (not an ``ar`` archive) holding ``./debian-binary``,
``./data.tar.gz`` and ``./control.tar.gz``, in that order, with numeric owners, sorted names
and every mtime clamped to the source date epoch, so the same input gives the same bytes.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["IpkFile", "build_ipk", "control_text", "tar_gz"]


@dataclass(frozen=True)
class IpkFile:
    content: bytes
    mode: int = 0o644
    symlink_to: str | None = None


def control_text(fields: list[tuple[str, str]]) -> str:
    """Control stanza text; ``Description`` gets the two spaces of ``package-ipkg.mk``."""
    lines = []
    for key, value in fields:
        if key == "Description":
            first, *rest = value.split("\n")
            lines.append(f"Description:  {first}")
            lines.extend(f" {line}" for line in rest)
        else:
            lines.append(f"{key}: {value}")
    return "\n".join(lines) + "\n"


def tar_gz(files: Mapping[str, IpkFile], mtime: int) -> bytes:
    """A deterministic ``tar.gz`` of ``files`` (paths relative, written with a ``./`` prefix)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        directories = sorted({p for path in files for p in _parents(path)})
        for directory in directories:
            info = _info(f"./{directory}/", mtime)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for path in sorted(files):
            entry = files[path]
            info = _info(f"./{path}", mtime)
            info.mode = entry.mode
            if entry.symlink_to is not None:
                info.type = tarfile.SYMTYPE
                info.linkname = entry.symlink_to
                tar.addfile(info)
            else:
                info.size = len(entry.content)
                tar.addfile(info, io.BytesIO(entry.content))
    return gzip.compress(raw.getvalue(), compresslevel=6, mtime=0)


def _parents(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _info(name: str, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def build_ipk(
    control: str,
    data_tar_gz: bytes,
    mtime: int,
    scripts: Mapping[str, str] | None = None,
    conffiles: tuple[str, ...] = (),
) -> bytes:
    control_files = {"control": IpkFile(control.encode())}
    for name, text in (scripts or {}).items():
        control_files[name] = IpkFile(text.encode(), mode=0o755)
    if conffiles:
        control_files["conffiles"] = IpkFile("".join(f"{p}\n" for p in conffiles).encode())
    members = {
        "debian-binary": IpkFile(b"2.0\n"),
        "data.tar.gz": IpkFile(data_tar_gz),
        "control.tar.gz": IpkFile(tar_gz(control_files, mtime)),
    }
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name in ("debian-binary", "data.tar.gz", "control.tar.gz"):
            info = _info(f"./{name}", mtime)
            info.size = len(members[name].content)
            tar.addfile(info, io.BytesIO(members[name].content))
    # the members are compressed already: a light outer level costs little and changes nothing
    return gzip.compress(raw.getvalue(), compresslevel=1, mtime=0)
