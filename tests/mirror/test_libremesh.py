"""The LibreMesh flavour of the synthetic mirror: feeds laid out and signed as feed.libremesh.org
publishes them, with packages that install into the OpenWrt builds of the same branch."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from pathlib import Path

import pytest

from firmforge.mirror import generate_libremesh_feed
from firmforge.mirror._distribution import TARGETS
from firmforge.mirror._libremesh import DEFAULT_PACKAGES, FEED_PATHS, LIME_PACKAGES
from firmforge.upstream import PackageIndex, _parse_packages
from firmforge.usign import PublicKey
from tests.conftest import MirrorFixture

ARCHES = sorted({t.arch_packages for t in TARGETS})


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_libremesh_feed(tmp_path_factory.mktemp("lm") / "feed").root


def _stanzas(text: str) -> list[dict[str, str]]:
    found = []
    for block in re.split(r"\n\s*\n", text.strip()):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if fields:
            found.append(fields)
    return found


@pytest.mark.parametrize("branch", ["23.05", "24.10"])
@pytest.mark.parametrize("arch", ARCHES)
def test_each_feed_is_signed_by_the_libremesh_key_and_lists_real_ipks(
    feed: Path, branch: str, arch: str
) -> None:
    key = PublicKey.from_text(feed.with_name("feed.pub").read_text())
    for path in FEED_PATHS.values():
        directory = feed / path.format(branch=branch, arch=arch)
        index = (directory / "Packages").read_bytes()
        key.verify(index, (directory / "Packages.sig").read_text())
        assert gzip.decompress((directory / "Packages.gz").read_bytes()) == index
        stanzas = _stanzas(index.decode())
        assert stanzas
        for stanza in stanzas:
            ipk = (directory / stanza["Filename"]).read_bytes()
            assert len(ipk) == int(stanza["Size"])
            assert hashlib.sha256(ipk).hexdigest() == stanza["SHA256sum"]
            assert stanza["Architecture"] in ("all", arch)
        listed = json.loads((directory / "index.json").read_text())["packages"]
        assert set(listed) == {s["Package"] for s in stanzas}


def test_the_key_is_not_the_mirrors(feed: Path, mirror: MirrorFixture) -> None:
    own = PublicKey.from_text(feed.with_name("feed.pub").read_text())
    openwrt = PublicKey.from_text(mirror.public_key.read_text())
    assert own.fingerprint_hex != openwrt.fingerprint_hex


def test_generation_is_deterministic(feed: Path, tmp_path: Path) -> None:
    again = generate_libremesh_feed(tmp_path / "feed").root
    files = sorted(p.relative_to(feed) for p in feed.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for relative in files:
        assert (feed / relative).read_bytes() == (again / relative).read_bytes(), relative


@pytest.mark.parametrize(("version", "branch"), [("23.05.5", "23.05"), ("24.10.5", "24.10")])
def test_every_dependency_is_in_the_openwrt_feeds_or_the_lime_feeds(
    feed: Path, mirror: MirrorFixture, version: str, branch: str
) -> None:
    arch = "mips_24kc"
    index = PackageIndex(architecture=arch)
    release = mirror.root / "releases" / version
    for packages in [*release.glob(f"packages/{arch}/*/Packages"),
                     *release.glob("targets/ath79/generic/packages/Packages"),
                     *release.glob("targets/ath79/generic/kmods/*/Packages")]:
        _parse_packages(packages.read_text(), index)
    lime = []
    for path in FEED_PATHS.values():
        lime += _stanzas((feed / path.format(branch=branch, arch=arch) / "Packages").read_text())
    for stanza in lime:
        _parse_packages("\n".join(f"{k}: {v}" for k, v in stanza.items()) + "\n", index)
    for stanza in lime:
        for dependency in stanza.get("Depends", "").split(","):
            name = dependency.strip().split(" ")[0]
            assert not name or name in index, f"{stanza['Package']} needs {name}"


def test_default_packages_name_lime_packages_or_removals() -> None:
    names = {spec.name for spec in LIME_PACKAGES}
    for package in DEFAULT_PACKAGES:
        assert package.startswith("-") or package in names, package
    # anygw needs dnsmasq-full, which conflicts with OpenWrt's default dnsmasq
    assert "-dnsmasq" in DEFAULT_PACKAGES
