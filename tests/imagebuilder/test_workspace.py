"""Private workspaces: isolated from the pristine tree and each other; downloads pooled."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
import pytest

from firmforge.imagebuilder import (
    ImageBuilderCache,
    image_command,
    manifest_command,
    parse_manifest,
    run_make,
)
from tests.conftest import MirrorFixture
from tests.imagebuilder.conftest import Served, Source

GiB = 2**30


def snapshot(tree: Path) -> dict[str, tuple[int, int, str]]:
    """Every path of ``tree`` with its mode, mtime and content (or link target)."""
    state = {}
    for path in sorted(tree.rglob("*")):
        info = path.lstat()
        if path.is_symlink():
            content = "-> " + str(path.readlink())
        elif path.is_file():
            content = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            content = "dir"
        state[path.relative_to(tree).as_posix()] = (info.st_mode, info.st_mtime_ns, content)
    return state


@pytest.fixture
def x86(
    mirror: MirrorFixture, served_mirror: Served, tmp_path: Path
) -> tuple[ImageBuilderCache, Source]:
    client = httpx.Client(timeout=30)
    cache = ImageBuilderCache(tmp_path / "cache", GiB, client, upstream_url=served_mirror.url)
    source = served_mirror.source(mirror.imagebuilder_tarball("24.10.5", "x86/64"))
    yield cache, source
    client.close()


def test_workspaces_are_isolated_copies(x86: tuple[ImageBuilderCache, Source]) -> None:
    cache, source = x86
    pristine = cache.ensure(source)
    before = snapshot(pristine)
    with cache.workspace(source) as one, cache.workspace(source) as two:
        assert one != two and one.parent == two.parent
        assert snapshot(one).keys() - {"dl"} == before.keys()
        # top-level files and packages/, keys/, build_dir/ are copies; the rest is hard-linked
        for name in ("Makefile", "repositories.conf", ".config"):
            assert not (one / name).samefile(pristine / name)
        for prefix in ("packages/", "keys/", "build_dir/"):
            name = next(p for p in before if p.startswith(prefix) and before[p][2] != "dir")
            assert not (one / name).samefile(pristine / name)
            assert (one / name).read_bytes() == (pristine / name).read_bytes()
        tool = "staging_dir/host/bin/ib-tool"
        assert (one / tool).samefile(pristine / tool)
        assert (one / tool).samefile(two / tool)
        assert os.access(one / tool, os.X_OK)
        # writes in one workspace reach neither the pristine tree nor the other workspace
        with (one / "repositories.conf").open("a") as conf:
            conf.write("# changed\n")
        (one / "packages" / "Packages").write_text("changed\n")
        (one / "target" / "new-file").write_text("new\n")
        result = run_make(one, manifest_command("generic", ["curl"]), 60, "manifest")
        assert result.returncode == 0, result.stderr
        assert "curl" in parse_manifest(result.stdout)
        assert (one / "key-build").exists() and (one / "tmp").is_dir()
        assert "# changed" not in (two / "repositories.conf").read_text()
        assert not (two / "target" / "new-file").exists()
        assert not (two / "key-build").exists()
        kept = one
    assert snapshot(pristine) == before
    assert not kept.exists()
    assert not list((cache.root / ".work" / pristine.name).iterdir())


def test_downloads_are_pooled_between_builds(
    x86: tuple[ImageBuilderCache, Source], served_mirror: Served
) -> None:
    cache, source = x86
    pool = cache.root / (cache.path(source).name + ".dl")
    with cache.workspace(source) as first:
        assert not any((first / "dl").iterdir())
        result = run_make(first, manifest_command("generic", ["curl"]), 60, "manifest")
        assert result.returncode == 0, result.stderr
        downloaded = sorted(p.name for p in (first / "dl").glob("*.ipk"))
        assert any(name.startswith("curl_") for name in downloaded)
    assert sorted(p.name for p in pool.iterdir()) == downloaded
    with cache.workspace(source) as second:
        for name in downloaded:
            assert (second / "dl" / name).samefile(pool / name)
        result = run_make(second, manifest_command("generic", ["curl"]), 60, "manifest")
        assert result.returncode == 0, result.stderr
    curl = next(name for name in downloaded if name.startswith("curl_"))
    fetched = [line for line in served_mirror.log.lines if f"/{curl} " in line]
    assert len(fetched) == 1  # the second build took it from the pool
    assert cache.stats().bytes > sum(p.stat().st_size for p in pool.iterdir())


def test_failed_build_leaves_the_pool_alone(x86: tuple[ImageBuilderCache, Source]) -> None:
    cache, source = x86
    pool = cache.root / (cache.path(source).name + ".dl")
    with pytest.raises(RuntimeError), cache.workspace(source) as workdir:
        (workdir / "dl" / "half-written_1.0_all.ipk").write_bytes(b"trunc")
        raise RuntimeError("build failed")
    assert not pool.exists() or not any(pool.iterdir())
    assert not list((cache.root / ".work" / cache.path(source).name).iterdir())


def test_only_package_files_are_pooled(x86: tuple[ImageBuilderCache, Source]) -> None:
    cache, source = x86
    pool = cache.root / (cache.path(source).name + ".dl")
    with cache.workspace(source) as workdir:
        (workdir / "dl" / "a_1.0_all.ipk").write_bytes(b"ipk")
        (workdir / "dl" / "b-1.0-r1.apk").write_bytes(b"apk")
        (workdir / "dl" / "APKINDEX.0123.tar.gz").write_bytes(b"index")
        (workdir / "dl" / "link.ipk").symlink_to("a_1.0_all.ipk")
    assert sorted(p.name for p in pool.iterdir()) == ["a_1.0_all.ipk", "b-1.0-r1.apk"]
    with cache.workspace(source) as workdir:  # a replaced file replaces the pooled one
        (workdir / "dl" / "a_1.0_all.ipk").unlink()
        (workdir / "dl" / "a_1.0_all.ipk").write_bytes(b"fixed")
    assert (pool / "a_1.0_all.ipk").read_bytes() == b"fixed"
    assert not [p for p in pool.iterdir() if p.name.startswith(".")]


def test_workspace_of_read_only_build_output_is_removed(
    x86: tuple[ImageBuilderCache, Source],
) -> None:
    cache, source = x86
    with cache.workspace(source) as workdir:
        locked = workdir / "build_dir" / "root" / "proc"
        locked.mkdir(parents=True)
        (locked / "file").write_text("x")
        locked.chmod(0o555)
        locked.parent.chmod(0o555)
    assert not workdir.exists()


@pytest.mark.slow
def test_a_full_image_build_leaves_the_pristine_tree_untouched(
    x86: tuple[ImageBuilderCache, Source],
) -> None:
    cache, source = x86
    pristine = cache.ensure(source)
    before = snapshot(pristine)
    with cache.workspace(source) as workdir:
        command = image_command("generic", ["curl"], "firmforge-bin/x", "0123456789ab")
        result = run_make(workdir, command, 120, "building_image")
        assert result.returncode == 0, result.stderr
        assert (workdir / "firmforge-bin" / "x" / "profiles.json").is_file()
    assert snapshot(pristine) == before
