"""Shared fixtures: one generated synthetic mirror per test run, the LibreMesh feed host, and
unpacked ImageBuilders."""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import lzma
import os
import shutil
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard

import firmforge
from firmforge.embedded_redis import EmbeddedRedis
from firmforge.mirror import (
    OFFICIAL_BASE_URL,
    generate_libremesh_feed,
    generate_mirror,
    imagebuilder_name,
)
from firmforge.mirror._distribution import RELEASES, TARGETS
from firmforge.mirror._libremesh import DEFAULT_PACKAGES, FEED_PATHS

SEED = 0


@dataclass(frozen=True)
class MirrorFixture:
    root: Path
    public_key: Path
    fingerprint: str

    def target_dir(self, version: str, target: str) -> Path:
        return self.root / "releases" / version / "targets" / target

    def imagebuilder_tarball(self, version: str, target: str) -> Path:
        release = next(r for r in RELEASES if r.version == version)
        target_spec = next(t for t in TARGETS if t.name == target)
        return self.target_dir(version, target) / imagebuilder_name(release, target_spec)


# What the mirror is made from: the generator and IB runtime, and the modules they ship or use.
_MIRROR_SOURCES = ("mirror", "usign.py", "fwtool.py")


def _source_digest() -> str:
    """Regenerate the cached mirror whenever the generator or the IB runtime changes."""
    package = Path(firmforge.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*")):
        if (path.is_file() and "__pycache__" not in path.parts
                and path.relative_to(package).parts[0] in _MIRROR_SOURCES):
            digest.update(path.relative_to(package).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> MirrorFixture:
    """The mirror for SEED, generated once and shared by the xdist workers of this run."""
    shared = tmp_path_factory.getbasetemp().parent / f"mirror-{_source_digest()}"
    shared.mkdir(parents=True, exist_ok=True)
    root = shared / "tree"
    with (shared / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        marker = shared / "done.json"
        if not marker.exists():
            result = generate_mirror(root, seed=SEED)
            marker.write_text(json.dumps({"fingerprint": result.fingerprint}))
        fingerprint = json.loads(marker.read_text())["fingerprint"]
    return MirrorFixture(root=root, public_key=shared / "tree.pub", fingerprint=fingerprint)


@dataclass(frozen=True)
class LibremeshFeed:
    root: Path
    public_key: Path

    def distribution(self, url: str, **overrides: object) -> dict[str, object]:
        """The `distributions` entry of a server whose LibreMesh feeds are served at ``url``."""
        return {"name": "libremesh", "title": "LibreMesh", "upstream_url": url,
                "keys": [str(self.public_key)], "feeds": dict(FEED_PATHS),
                "packages": list(DEFAULT_PACKAGES), **overrides}


@pytest.fixture(scope="session")
def libremesh_feed(tmp_path_factory: pytest.TempPathFactory) -> LibremeshFeed:
    """The synthetic LibreMesh feed host (a fraction of a second to write)."""
    result = generate_libremesh_feed(tmp_path_factory.mktemp("libremesh") / "feed", seed=SEED)
    return LibremeshFeed(root=result.root, public_key=result.public_key)


def unpack_imagebuilder(tarball: Path, destination: Path) -> Path:
    """Unpack an IB tarball (``.tar.xz`` or ``.tar.zst``) and return its top directory."""
    raw = tarball.read_bytes()
    if tarball.name.endswith(".zst"):
        data = zstandard.ZstdDecompressor().decompressobj().decompress(raw)
    else:
        data = lzma.decompress(raw)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(destination, filter="data")
    return destination / tarball.name.rsplit(".tar.", 1)[0]


def point_repositories_at(ib_dir: Path, base_url: str) -> None:
    """Rewrite the official mirror URL in ``repositories.conf``, as a server must."""
    conf = ib_dir / "repositories.conf"
    conf.write_text(conf.read_text().replace(OFFICIAL_BASE_URL, base_url))


@pytest.fixture
def imagebuilder(mirror: MirrorFixture, tmp_path: Path) -> Callable[[str, str], Path]:
    """``(version, target) -> IB dir``: a fresh unpacked IB whose feeds are the local mirror."""

    def factory(version: str, target: str) -> Path:
        destination = tmp_path / f"ib-{version}-{target.replace('/', '-')}"
        ib_dir = unpack_imagebuilder(mirror.imagebuilder_tarball(version, target), destination)
        point_repositories_at(ib_dir, mirror.root.as_uri())
        return ib_dir

    return factory


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis (embedded) for the tests of one module."""
    embedded = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    yield embedded.start()
    embedded.stop()


@pytest.fixture
def signify() -> Iterator[str]:
    """Path of Debian's ``signify-openbsd``; CI installs it, so only a laptop may skip."""
    path = shutil.which("signify-openbsd")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("signify-openbsd is missing in CI: .ci/run must install it")
        pytest.skip("signify-openbsd is not installed (apt-get install signify-openbsd)")
    yield path
