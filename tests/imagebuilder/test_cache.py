"""The ImageBuilder cache: download once, verify, unpack safely, share, evict."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import httpx
import pytest

from firmforge.errors import SignatureError, UpstreamError
from firmforge.imagebuilder import ImageBuilderCache
from firmforge.mirror import OFFICIAL_BASE_URL
from tests.conftest import MirrorFixture, unpack_imagebuilder
from tests.imagebuilder.conftest import (
    Served,
    Source,
    member,
    small_imagebuilder,
    write_archive,
)

REPO = Path(__file__).resolve().parents[2]
GiB = 2**30


def cache_at(
    root: Path, served: Served, client: httpx.Client, max_bytes: int = GiB
) -> ImageBuilderCache:
    return ImageBuilderCache(root, max_bytes=max_bytes, client=client, upstream_url=served.url)


def leftovers(root: Path) -> list[str]:
    """Everything under the cache root but lock files and the empty work directories."""
    found = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if (
            relative in (".tmp", ".work")
            or relative.endswith(".lock")
            or path.parent.name == ".work"
        ):
            continue
        found.append(relative)
    return found


@pytest.mark.parametrize("version", ["24.10.5", "23.05.5"])  # .tar.zst and .tar.xz
def test_miss_downloads_verifies_unpacks_and_points_feeds_at_the_mirror(
    mirror: MirrorFixture, served_mirror: Served, client: httpx.Client, tmp_path: Path, version: str
) -> None:
    tarball = mirror.imagebuilder_tarball(version, "x86/64")
    source = served_mirror.source(tarball, version=version)
    cache = cache_at(tmp_path / "cache", served_mirror, client)

    path = cache.ensure(source)

    assert path == tmp_path / "cache" / tarball.name.rsplit(".tar.", 1)[0]
    assert path == cache.path(source)
    expected = unpack_imagebuilder(tarball, tmp_path / "reference")
    assert sorted(p.relative_to(path) for p in path.rglob("*")) == sorted(
        p.relative_to(expected) for p in expected.rglob("*")
    )
    assert (path / "Makefile").read_bytes() == (expected / "Makefile").read_bytes()
    conf = (path / "repositories.conf").read_text()
    assert OFFICIAL_BASE_URL not in conf
    assert f"src/gz openwrt_core {served_mirror.url}/releases/{version}/targets/x86/64/" in conf
    assert conf == (expected / "repositories.conf").read_text().replace(
        OFFICIAL_BASE_URL, served_mirror.url
    )
    stats = cache.stats()
    assert (stats.entries, stats.hits, stats.misses) == (1, 0, 1)
    assert stats.bytes == sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    assert served_mirror.gets(tarball) == 1
    assert [p for p in leftovers(tmp_path / "cache") if "/" not in p] == [
        path.name,
        path.name + ".json",
    ]
    assert not any((tmp_path / "cache" / ".tmp").iterdir())  # no download or unpack left over


def test_hit_does_not_download_again(
    mirror: MirrorFixture, served_mirror: Served, client: httpx.Client, tmp_path: Path
) -> None:
    tarball = mirror.imagebuilder_tarball("24.10.5", "ath79/generic")
    source = served_mirror.source(tarball)
    cache = cache_at(tmp_path / "cache", served_mirror, client)
    first = cache.ensure(source)
    marker = first / "marker"
    marker.write_text("still the same tree")
    # a second cache object on the same directory, as another worker process would have
    other = cache_at(tmp_path / "cache", served_mirror, client)
    assert other.ensure(source) == first
    assert cache.ensure(source) == first
    assert marker.exists()
    assert served_mirror.gets(tarball) == 1
    assert (cache.stats().hits, cache.stats().misses) == (1, 1)
    assert (other.stats().hits, other.stats().misses) == (1, 0)


def test_official_upstream_keeps_the_feeds(
    www: Served, client: httpx.Client, tmp_path: Path
) -> None:
    name = "openwrt-imagebuilder-24.10.5-x-y.Linux-x86_64.tar.zst"
    archive = write_archive(www.root, name, small_imagebuilder(name.removesuffix(".tar.zst")))
    cache = ImageBuilderCache(tmp_path / "cache", GiB, client, upstream_url=OFFICIAL_BASE_URL + "/")
    source = www.source(archive)
    conf = (cache.ensure(source) / "repositories.conf").read_text()
    assert f"{OFFICIAL_BASE_URL}/releases/24.10.5/" in conf


def test_feed_rewrite_is_exact(www: Served, client: httpx.Client, tmp_path: Path) -> None:
    name = "openwrt-imagebuilder-24.10.5-x-y.Linux-x86_64.tar.zst"
    top = name.removesuffix(".tar.zst")
    members = [
        *small_imagebuilder(top),
        member(f"{top}/repositories", b"https://downloads.openwrt.org/releases/x/packages.adb\n"),
    ]
    archive = write_archive(www.root, name, members)
    cache = ImageBuilderCache(tmp_path / "cache", GiB, client, upstream_url="http://mirror.lan/")
    path = cache.ensure(www.source(archive))
    conf = (path / "repositories.conf").read_text()
    assert "src/gz openwrt_core http://mirror.lan/releases/24.10.5/targets/x/y/packages\n" in conf
    # another host that merely starts with the same name is left alone
    assert "https://downloads.openwrt.org.example.com/feed" in conf
    assert (path / "repositories").read_text() == "http://mirror.lan/releases/x/packages.adb\n"


def test_wrong_sha256_is_refused_and_nothing_kept(
    mirror: MirrorFixture, served_mirror: Served, client: httpx.Client, tmp_path: Path
) -> None:
    tarball = mirror.imagebuilder_tarball("24.10.5", "x86/64")
    source = served_mirror.source(tarball, sha256="ab" * 32)
    cache = cache_at(tmp_path / "cache", served_mirror, client)
    with pytest.raises(
        SignatureError,
        match=r"^Corrupted ImageBuilder download: sha256 [0-9a-f]{64} expected (ab){32}",
    ):
        cache.ensure(source)
    assert leftovers(tmp_path / "cache") == []
    assert cache.stats().entries == 0


def test_tampered_download_is_refused(
    mirror: MirrorFixture, www: Served, client: httpx.Client, tmp_path: Path
) -> None:
    tarball = mirror.imagebuilder_tarball("24.10.5", "x86/64")
    tampered = bytearray(tarball.read_bytes())
    tampered[len(tampered) // 2] ^= 0xFF
    (www.root / tarball.name).write_bytes(bytes(tampered))
    source = www.source(
        www.root / tarball.name, sha256=hashlib.sha256(tarball.read_bytes()).hexdigest()
    )
    cache = cache_at(tmp_path / "cache", www, client)
    with pytest.raises(SignatureError, match="Corrupted ImageBuilder download"):
        cache.ensure(source)
    assert leftovers(tmp_path / "cache") == []


def test_http_errors_are_upstream_errors(www: Served, client: httpx.Client, tmp_path: Path) -> None:
    cache = cache_at(tmp_path / "cache", www, client)
    source = Source(
        "openwrt-imagebuilder-x-y.Linux-x86_64.tar.zst", f"{www.url}/nope.tar.zst", "0" * 64
    )
    with pytest.raises(UpstreamError, match="HTTP 404") as caught:
        cache.ensure(source)
    assert not isinstance(caught.value, SignatureError)
    unreachable = Source(source.name, "http://127.0.0.1:9/x.tar.zst", "0" * 64)
    with pytest.raises(UpstreamError, match="Could not download ImageBuilder"):
        cache.ensure(unreachable)
    assert leftovers(tmp_path / "cache") == []


@pytest.mark.parametrize(
    ("name", "sha256", "error", "message"),
    [
        ("../evil.tar.zst", "0" * 64, UpstreamError, "unusable file name"),
        ("ib.tar.gz", "0" * 64, UpstreamError, "unusable file name"),
        (".hidden.tar.zst", "0" * 64, UpstreamError, "unusable file name"),
        ("ib.tar.zst", "not-a-sha", SignatureError, "No valid sha256"),
    ],
)
def test_unusable_sources(
    www: Served,
    client: httpx.Client,
    tmp_path: Path,
    name: str,
    sha256: str,
    error: type,
    message: str,
) -> None:
    cache = cache_at(tmp_path / "cache", www, client)
    with pytest.raises(error, match=message):
        cache.ensure(Source(name, f"{www.url}/x", sha256))


@pytest.mark.parametrize(
    "hostile",
    [
        [member("../x", b"evil")],
        [member("/etc/evil", b"evil")],
        [member("{top}/etc", kind=tarfile.SYMTYPE, link="/etc")],
        [member("{top}/null", kind=tarfile.CHRTYPE)],
    ],
    ids=["parent", "absolute", "symlink-to-etc", "device"],
)
def test_malicious_tarball_is_refused_and_nothing_kept(
    www: Served, client: httpx.Client, tmp_path: Path, hostile: list
) -> None:
    name = "openwrt-imagebuilder-24.10.5-x-y.Linux-x86_64.tar.xz"
    top = name.removesuffix(".tar.xz")
    members = small_imagebuilder(top)
    for info, content in hostile:
        info.name = info.name.format(top=top)
        members.append((info, content))
    archive = write_archive(www.root, name, members)
    cache = cache_at(tmp_path / "cache", www, client)
    with pytest.raises(UpstreamError, match="Refusing ImageBuilder archive"):
        cache.ensure(www.source(archive))
    assert leftovers(tmp_path / "cache") == []
    assert not (tmp_path / "x").exists()


def test_new_sha256_replaces_the_cached_copy(
    www: Served, client: httpx.Client, tmp_path: Path
) -> None:
    name = "openwrt-imagebuilder-x-y.Linux-x86_64.tar.zst"  # snapshots keep their name
    top = name.removesuffix(".tar.zst")
    archive = write_archive(www.root, name, small_imagebuilder(top))
    cache = cache_at(tmp_path / "cache", www, client)
    old = www.source(archive)
    path = cache.ensure(old)
    assert not (path / "new").exists()
    write_archive(www.root, name, [*small_imagebuilder(top), member(f"{top}/new", b"1")])
    assert cache.ensure(www.source(archive)) == path
    assert (path / "new").read_bytes() == b"1"
    assert www.gets(archive) == 2
    assert cache.stats().entries == 1


def test_threads_share_one_download(
    mirror: MirrorFixture, served_mirror: Served, client: httpx.Client, tmp_path: Path
) -> None:
    tarball = mirror.imagebuilder_tarball("24.10.4", "ramips/mt7621")
    source = served_mirror.source(tarball)
    cache = cache_at(tmp_path / "cache", served_mirror, client)
    barrier = threading.Barrier(6)
    results: list[Path] = []

    def worker() -> None:
        barrier.wait()
        results.append(cache.ensure(source))

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 6 and len(set(results)) == 1
    assert served_mirror.gets(tarball) == 1
    assert (cache.stats().hits, cache.stats().misses) == (5, 1)


CHILD = """
import sys, httpx
from pathlib import Path
from firmforge.imagebuilder import ImageBuilderCache
from tests.imagebuilder.conftest import Source
root, upstream, name, url, sha256 = sys.argv[1:]
sys.stdin.readline()  # start together
with httpx.Client() as client:
    cache = ImageBuilderCache(Path(root), 2**30, client, upstream_url=upstream)
    path = cache.ensure(Source(name, url, sha256))
    stats = cache.stats()
print(path, stats.misses)
"""


def test_processes_share_one_download(
    mirror: MirrorFixture, served_mirror: Served, tmp_path: Path
) -> None:
    tarball = mirror.imagebuilder_tarball("24.10.4", "x86/64")
    source = served_mirror.source(tarball)
    argv = [
        sys.executable,
        "-c",
        CHILD,
        str(tmp_path / "cache"),
        served_mirror.url,
        source.name,
        source.url,
        source.sha256,
    ]
    children = [
        subprocess.Popen(argv, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for child in children:  # all importing done: let them race
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    outputs = [child.communicate(timeout=120)[0].split() for child in children]
    assert all(child.returncode == 0 for child in children)
    assert len({path for path, _ in outputs}) == 1
    assert sorted(int(misses) for _, misses in outputs) == [0, 1]
    assert served_mirror.gets(tarball) == 1


def _tree_size(tarball: Path, scratch: Path) -> int:
    top = unpack_imagebuilder(tarball, scratch)
    return sum(p.stat().st_size for p in top.rglob("*") if p.is_file() and not p.is_symlink())


@pytest.fixture
def three(mirror: MirrorFixture, served_mirror: Served, tmp_path: Path) -> tuple[list[Source], int]:
    """Three IB sources and a budget that fits any two of them but not all three."""
    tarballs = [
        mirror.imagebuilder_tarball("24.10.5", t)
        for t in ("x86/64", "ath79/generic", "ramips/mt7621")
    ]
    sizes = [_tree_size(t, tmp_path / f"size{i}") for i, t in enumerate(tarballs)]
    return [served_mirror.source(t) for t in tarballs], sum(sizes) - min(sizes) // 2


def test_lru_eviction_under_budget(
    three: tuple[list[Source], int], served_mirror: Served, client: httpx.Client, tmp_path: Path
) -> None:
    (a, b, c), budget = three
    cache = cache_at(tmp_path / "cache", served_mirror, client, max_bytes=budget)
    cache.ensure(a)
    cache.ensure(b)
    cache.ensure(a)  # a is now more recent than b
    assert cache.stats().entries == 2
    cache.ensure(c)
    assert cache.path(a).is_dir() and cache.path(c).is_dir()
    assert not cache.path(b).exists()
    assert not (tmp_path / "cache" / (cache.path(b).name + ".json")).exists()
    stats = cache.stats()
    assert stats.entries == 2 and stats.bytes <= budget


def test_in_use_imagebuilder_is_not_evicted(
    three: tuple[list[Source], int], served_mirror: Served, client: httpx.Client, tmp_path: Path
) -> None:
    (a, b, c), budget = three
    cache = cache_at(tmp_path / "cache", served_mirror, client, max_bytes=budget)
    with cache.workspace(b):  # b is in use and, after a is touched, the least recently used
        cache.ensure(a)
        cache.ensure(c)
        assert cache.path(b).is_dir()
        assert not cache.path(a).exists()
    assert cache.path(b).is_dir() and cache.path(c).is_dir()


def test_the_newest_is_kept_even_over_budget(
    www: Served, client: httpx.Client, tmp_path: Path
) -> None:
    cache = cache_at(tmp_path / "cache", www, client, max_bytes=1)
    paths = []
    for index in range(2):
        name = f"openwrt-imagebuilder-{index}-x-y.Linux-x86_64.tar.zst"
        archive = write_archive(www.root, name, small_imagebuilder(name.removesuffix(".tar.zst")))
        paths.append(cache.ensure(www.source(archive)))
    assert not paths[0].exists()
    assert paths[1].is_dir()
    assert cache.stats().entries == 1


def test_incomplete_entry_is_redone(www: Served, client: httpx.Client, tmp_path: Path) -> None:
    name = "openwrt-imagebuilder-x-y.Linux-x86_64.tar.zst"
    archive = write_archive(www.root, name, small_imagebuilder(name.removesuffix(".tar.zst")))
    cache = cache_at(tmp_path / "cache", www, client)
    path = cache.ensure(www.source(archive))
    # a crash between renaming the tree into place and writing its metadata
    (tmp_path / "cache" / f"{path.name}.json").unlink()
    (path / "Makefile").unlink()
    (tmp_path / "cache" / ".tmp" / f"unpack~{path.name}~dead").mkdir()
    assert cache.ensure(www.source(archive)) == path
    assert (path / "Makefile").is_file()
    assert not list((tmp_path / "cache" / ".tmp").iterdir())
    meta = json.loads((tmp_path / "cache" / f"{path.name}.json").read_text())
    assert meta["sha256"] == www.source(archive).sha256


def test_stats_on_an_empty_cache(www: Served, client: httpx.Client, tmp_path: Path) -> None:
    stats = cache_at(tmp_path / "never-created", www, client).stats()
    assert (stats.entries, stats.bytes, stats.hits, stats.misses) == (0, 0, 0, 0)


def test_workspace_counts_no_extra_hit(www: Served, client: httpx.Client, tmp_path: Path) -> None:
    name = "openwrt-imagebuilder-x-y.Linux-x86_64.tar.zst"
    archive = write_archive(www.root, name, small_imagebuilder(name.removesuffix(".tar.zst")))
    source = www.source(archive)
    cache = cache_at(tmp_path / "cache", www, client)
    with cache.workspace(source):  # a workspace downloads what is missing: a miss
        pass
    cache.ensure(source)
    with cache.workspace(source):  # the builder calls ensure() then workspace(): one hit
        pass
    assert (cache.stats().hits, cache.stats().misses) == (1, 1)
    assert www.gets(archive) == 1
