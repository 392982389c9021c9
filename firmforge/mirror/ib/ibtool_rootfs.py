"""The rootfs staging directory: safe unpacking, the FILES overlay, services, a reproducible tar.

Every write goes through :func:`_resolve`, which follows symlinks the way they will be followed
on the device (``chroot`` semantics: absolute targets start at the rootfs, ``..`` stops at its
top), so nothing a package or a FILES directory contains can write outside the rootfs.
Archive members with absolute names, ``..`` components, hard links pointing outside, or
relative symlinks climbing above the rootfs are refused. Standard library only.
"""

from __future__ import annotations

import io
import os
import re
import stat
import tarfile
from pathlib import Path
from typing import TextIO

__all__ = [
    "UnsafeArchiveError",
    "apply_services",
    "copy_overlay",
    "extract_data",
    "resolve_in_root",
    "rootfs_tar",
]

_MAX_LINK_HOPS = 40
_RC_COMMON = "#!/bin/sh /etc/rc.common"
BLOCK = 4096


class UnsafeArchiveError(ValueError):
    """A member would land outside the rootfs, or collides with what is there."""


def _member_parts(name: str) -> list[str]:
    if name.startswith("/"):
        raise UnsafeArchiveError(f"absolute path {name!r}")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"path with '..' {name!r}")
    return parts


def _resolve(root: Path, parts: list[str], follow_last: bool) -> list[str]:
    pending = list(parts)
    resolved: list[str] = []
    hops = 0
    while pending:
        component = pending.pop(0)
        if component in ("", "."):
            continue
        if component == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, component)
        if candidate.is_symlink() and (pending or follow_last):
            hops += 1
            if hops > _MAX_LINK_HOPS:
                raise UnsafeArchiveError(f"too many levels of symbolic links at {candidate}")
            target = str(candidate.readlink())
            if target.startswith("/"):
                resolved = []
            pending = target.split("/") + pending
            continue
        resolved.append(component)
    return resolved


def resolve_in_root(root: Path, path: str, follow_last: bool = True) -> Path:
    """``path`` (as seen on the device) mapped into ``root``, never outside it."""
    return root.joinpath(*_resolve(root, path.split("/"), follow_last))


def _ensure_dir(root: Path, parts: list[str]) -> Path:
    directory = root.joinpath(*_resolve(root, parts, follow_last=True))
    if not directory.is_dir():
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise UnsafeArchiveError(f"{'/'.join(parts)} is not a directory") from exc
    return directory


def _clear(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        raise UnsafeArchiveError(f"{path.name} exists and is a directory")


def _write_file(root: Path, parts: list[str], content: bytes, mode: int) -> None:
    target = _ensure_dir(root, parts[:-1]) / parts[-1]
    _clear(target)
    with target.open("xb") as handle:
        handle.write(content)
    target.chmod(mode & 0o777)


def _write_symlink(root: Path, parts: list[str], link_target: str) -> None:
    target = _ensure_dir(root, parts[:-1]) / parts[-1]
    _clear(target)
    target.symlink_to(link_target)


def _escapes(parts: list[str], link_target: str) -> bool:
    if link_target.startswith("/"):
        return False
    depth = len(parts) - 1
    for component in link_target.split("/"):
        if component == "..":
            depth -= 1
            if depth < 0:
                return True
        elif component not in ("", "."):
            depth += 1
    return False


def extract_data(data: bytes, root: Path) -> list[str]:
    """Unpack a package's ``data.tar.gz`` into ``root``; return the device paths of non-dirs."""
    installed: list[str] = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        for member in tar:
            parts = _member_parts(member.name)
            if not parts:
                continue
            if member.isdir():
                _ensure_dir(root, parts)
                continue
            if member.issym():
                if _escapes(parts, member.linkname):
                    raise UnsafeArchiveError(f"symlink {member.name} escapes the rootfs")
                _write_symlink(root, parts, member.linkname)
            elif member.islnk():
                source = root.joinpath(*_resolve(root, _member_parts(member.linkname), True))
                if not source.is_file():
                    raise UnsafeArchiveError(f"hard link {member.name} has no target in the rootfs")
                _write_file(root, parts, source.read_bytes(), source.stat().st_mode)
            elif member.isfile():
                handle = tar.extractfile(member)
                content = handle.read() if handle is not None else b""
                _write_file(root, parts, content, member.mode)
            else:
                continue  # device nodes and fifos need privileges; real IBs do not ship them
            installed.append("/" + "/".join(parts))
    return installed


def copy_overlay(source: Path, root: Path) -> None:
    """``cp -fpR <FILES>/. <rootfs>``: symlinks stay symlinks, modes are kept."""
    for directory, dirnames, filenames in os.walk(source):
        base = Path(directory)
        rel = base.relative_to(source).parts
        for name in sorted(dirnames):
            entry = base / name
            if entry.is_symlink():
                _write_symlink(root, [*rel, name], str(entry.readlink()))
            else:
                _ensure_dir(root, [*rel, name])
        dirnames[:] = sorted(d for d in dirnames if not (base / d).is_symlink())
        for name in sorted(filenames):
            entry = base / name
            if entry.is_symlink():
                _write_symlink(root, [*rel, name], str(entry.readlink()))
            elif entry.is_file():
                _write_file(root, [*rel, name], entry.read_bytes(), entry.stat().st_mode)


def _variable(text: str, name: str) -> str | None:
    match = re.search(rf"^\s*{name}=[\"']?(\d+)", text, re.MULTILINE)
    return match.group(1) if match else None


def apply_services(root: Path, disabled: set[str], out: TextIO) -> None:
    """Enable every ``/etc/rc.common`` init script (``/etc/rc.d/S<NN><name>``, ``K<NN>``)
    except the ``disabled`` ones, as ``include/rootfs.mk`` ``prepare_rootfs`` does."""
    rc_d = _ensure_dir(root, ["etc", "rc.d"])
    init_d = resolve_in_root(root, "etc/init.d")
    if not init_d.is_dir():
        return
    for script in sorted(init_d.iterdir(), key=lambda p: os.fsencode(p.name)):
        real = resolve_in_root(root, f"etc/init.d/{script.name}")
        if not real.is_file():
            continue
        text = real.read_bytes().decode("utf-8", "replace")
        if _RC_COMMON not in text:
            continue
        name = script.name
        for link in rc_d.iterdir():
            if len(link.name) == len(name) + 3 and link.name[0] in "SK" and link.name[3:] == name:
                link.unlink()
        if name in disabled:
            out.write(f"Disabling {name}\n")
            continue
        for prefix, value in (("S", _variable(text, "START")), ("K", _variable(text, "STOP"))):
            if value is not None:
                (rc_d / f"{prefix}{value}{name}").symlink_to(f"../init.d/{name}")
        out.write(f"Enabling {name}\n")


def rootfs_tar(root: Path, mtime: int) -> tuple[bytes, int]:
    """A reproducible tar of ``root`` (sorted, numeric owner 0, clamped mtime) and the number
    of 4 KiB blocks an ext4 filesystem would need for it."""
    raw = io.BytesIO()
    blocks = 1
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:

        def entry(path: Path, name: str) -> tarfile.TarInfo:
            st = path.lstat()
            info = tarfile.TarInfo(name)
            info.mode = stat.S_IMODE(st.st_mode)
            info.mtime = mtime
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            return info

        def visit(directory: Path, prefix: str) -> None:
            nonlocal blocks
            children = sorted(directory.iterdir(), key=lambda p: os.fsencode(p.name))
            for child in children:
                name = f"{prefix}{child.name}"
                info = entry(child, name)
                if child.is_symlink():
                    info.type = tarfile.SYMTYPE
                    info.linkname = str(child.readlink())
                    tar.addfile(info)
                elif child.is_dir():
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                    blocks += 1
                    visit(child, f"{name}/")
                elif child.is_file():
                    content = child.read_bytes()
                    info.size = len(content)
                    tar.addfile(info, io.BytesIO(content))
                    blocks += max(1, -(-len(content) // BLOCK))

        top = entry(root, "./")
        top.type = tarfile.DIRTYPE
        tar.addfile(top)
        visit(root, "./")
    return raw.getvalue(), blocks
