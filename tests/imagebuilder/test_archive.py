"""Safe unpacking: good archives unpack faithfully, hostile ones are refused whole."""

from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path

import pytest

from firmforge.errors import SignatureError, UpstreamError
from firmforge.imagebuilder._archive import archive_stem, unpack_archive
from tests.imagebuilder.conftest import directory, member, small_imagebuilder, write_archive

TOP = "openwrt-imagebuilder-24.10.5-x86-64.Linux-x86_64"


@pytest.mark.parametrize("suffix", [".tar.xz", ".tar.zst"])
def test_unpacks_tree_modes_times_and_links(tmp_path: Path, suffix: str) -> None:
    members = [
        *small_imagebuilder(TOP),
        member(f"{TOP}/staging_dir/setuid", b"x", mode=0o4755, mtime=1_600_000_000),
        member(f"{TOP}/staging_dir/hard", kind=tarfile.LNKTYPE, link=f"{TOP}/staging_dir/tool"),
        member(f"{TOP}/up", kind=tarfile.SYMTYPE, link="staging_dir/../packages"),
        member(f"./{TOP}/implicit/parent/file", b"made"),
    ]
    archive = write_archive(tmp_path, TOP + suffix, members)
    destination = tmp_path / "out"
    destination.mkdir()
    top = unpack_archive(archive, destination)
    assert top == destination / TOP
    assert (top / "staging_dir" / "tool").read_bytes() == b"#!/bin/sh\n"
    assert os.access(top / "staging_dir" / "tool", os.X_OK)
    assert (top / "staging_dir" / "tool-link").readlink() == Path("tool")
    assert (top / "staging_dir" / "hard").samefile(top / "staging_dir" / "tool")
    assert (top / "up").resolve() == (top / "packages").resolve()
    assert (top / "implicit" / "parent" / "file").read_bytes() == b"made"
    setuid = (top / "staging_dir" / "setuid").stat()
    assert stat.S_IMODE(setuid.st_mode) == 0o755
    assert setuid.st_mtime == 1_600_000_000
    assert top.stat().st_mtime == 1_700_000_000  # directory times are restored last


def test_archive_stem() -> None:
    assert archive_stem(f"{TOP}.tar.zst") == TOP
    assert archive_stem(f"{TOP}.tar.xz") == TOP
    with pytest.raises(UpstreamError, match=r"expected \.tar\.xz or \.tar\.zst"):
        archive_stem(f"{TOP}.zip")


HOSTILE = {
    "parent path": [directory(TOP), member("../escaped", b"x")],
    "parent inside path": [directory(TOP), member(f"{TOP}/../../escaped", b"x")],
    "absolute path": [directory(TOP), member("/tmp/escaped-abs", b"x")],
    "second top directory": [directory(TOP), member("other/file", b"x")],
    "file next to the top directory": [directory(TOP), member("loose", b"x")],
    "symlink to /etc": [directory(TOP), member(f"{TOP}/etc", kind=tarfile.SYMTYPE, link="/etc")],
    "symlink up and out": [
        directory(TOP),
        member(f"{TOP}/etc", kind=tarfile.SYMTYPE, link="../../etc"),
    ],
    "symlink to the destination": [
        directory(TOP),
        member(f"{TOP}/dot", kind=tarfile.SYMTYPE, link=".."),
    ],
    "symlink chain": [  # each link alone stays inside; followed together they leave
        directory(TOP),
        directory(f"{TOP}/d"),
        member(f"{TOP}/d/x", kind=tarfile.SYMTYPE, link=".."),
        member(f"{TOP}/y", kind=tarfile.SYMTYPE, link="d/x/.."),
    ],
    "symlink loop": [
        directory(TOP),
        member(f"{TOP}/a", kind=tarfile.SYMTYPE, link="b"),
        member(f"{TOP}/b", kind=tarfile.SYMTYPE, link="a"),
    ],
    "write through a symlink": [
        directory(TOP),
        directory(f"{TOP}/real"),
        member(f"{TOP}/link", kind=tarfile.SYMTYPE, link="real"),
        member(f"{TOP}/link/file", b"x"),
    ],
    "hard link to /etc/passwd": [
        directory(TOP),
        member(f"{TOP}/passwd", kind=tarfile.LNKTYPE, link="/etc/passwd"),
    ],
    "hard link out": [
        directory(TOP),
        member(f"{TOP}/passwd", kind=tarfile.LNKTYPE, link="../outside"),
    ],
    "hard link to a symlink": [
        directory(TOP),
        member(f"{TOP}/etc", kind=tarfile.SYMTYPE, link="."),
        member(f"{TOP}/hard", kind=tarfile.LNKTYPE, link=f"{TOP}/etc"),
    ],
    "character device": [directory(TOP), member(f"{TOP}/null", kind=tarfile.CHRTYPE)],
    "block device": [directory(TOP), member(f"{TOP}/sda", kind=tarfile.BLKTYPE)],
    "fifo": [directory(TOP), member(f"{TOP}/fifo", kind=tarfile.FIFOTYPE)],
    "directory replaced by a file": [
        directory(TOP),
        directory(f"{TOP}/d"),
        member(f"{TOP}/d", b"x"),
    ],
}


@pytest.mark.parametrize("suffix", [".tar.xz", ".tar.zst"])
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archives_are_refused(tmp_path: Path, case: str, suffix: str) -> None:
    archive = write_archive(tmp_path / "in", TOP + suffix, HOSTILE[case])
    destination = tmp_path / "sandbox" / "out"
    destination.mkdir(parents=True)
    with pytest.raises(UpstreamError, match=f"Refusing ImageBuilder archive {TOP}") as caught:
        unpack_archive(archive, destination)
    assert not isinstance(caught.value, SignatureError)
    # nothing reached outside the destination
    assert sorted(p.name for p in (tmp_path / "sandbox").iterdir()) == ["out"]
    assert not Path("/tmp/escaped-abs").exists()


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"not compressed at all", "unreadable"),
        (None, "empty"),
    ],
)
def test_unreadable_or_empty_archives(tmp_path: Path, content: bytes | None, why: str) -> None:
    if content is None:
        archive = write_archive(tmp_path, TOP + ".tar.zst", [])
    else:
        archive = tmp_path / (TOP + ".tar.xz")
        archive.write_bytes(content)
    destination = tmp_path / "out"
    destination.mkdir()
    with pytest.raises(UpstreamError, match=why):
        unpack_archive(archive, destination)


def test_truncated_archive(tmp_path: Path) -> None:
    whole = write_archive(tmp_path, TOP + ".tar.xz", small_imagebuilder(TOP, filler=100_000))
    whole.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    destination = tmp_path / "out"
    destination.mkdir()
    with pytest.raises(UpstreamError, match="unreadable"):
        unpack_archive(whole, destination)
