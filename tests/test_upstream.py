"""firmforge.upstream against the generated mirror: over real HTTP end to end, and through an
``httpx.MockTransport`` over the same files to tamper with single responses."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from firmforge.errors import SignatureError, UpstreamError
from firmforge.mirror import make_mirror_server, mirror_key
from firmforge.upstream import ImageBuilderSource, PackageIndex, Upstream, Versions, strip_abi
from firmforge.usign import PublicKey, SecretKey
from tests.conftest import SEED, MirrorFixture

BASE = "http://mirror.test"
ATH79 = "releases/24.10.5/targets/ath79/generic"
MIPS = "releases/24.10.5/packages/mips_24kc"


class FileTransport(httpx.MockTransport):
    """Answers from a mirror tree; ``overrides`` replace single paths with bytes, an HTTP
    status or an exception. ``requests`` records every path asked for."""

    def __init__(
        self, root: Path, overrides: dict[str, bytes | int | Exception] | None = None
    ) -> None:
        self.root = root
        self.overrides = overrides if overrides is not None else {}
        self.requests: list[str] = []
        self._lock = threading.Lock()
        super().__init__(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.lstrip("/")
        with self._lock:
            self.requests.append(path)
        override = self.overrides.get(path)
        if isinstance(override, Exception):
            raise override
        if isinstance(override, int):
            return httpx.Response(override)
        if isinstance(override, bytes):
            return httpx.Response(200, content=override)
        file = self.root / path
        if file.is_file():
            return httpx.Response(200, content=file.read_bytes())
        return httpx.Response(404)

    def count(self, path: str) -> int:
        return self.requests.count(path)


def trusted_key(mirror: MirrorFixture) -> PublicKey:
    return PublicKey.from_text(mirror.public_key.read_text())


def signing_key(mirror: MirrorFixture) -> SecretKey:
    key = mirror_key(SEED)
    assert key.fingerprint.hex() == mirror.fingerprint
    return key


def resigned_sums(mirror: MirrorFixture, directory: str, edit: dict[str, str | None]) -> dict:
    """Overrides publishing ``directory/sha256sums`` with lines changed (new hash) or removed
    (None), properly signed by the mirror key: a mirror that is consistent but different."""
    lines = (mirror.root / directory / "sha256sums").read_text().splitlines()
    out = []
    for line in lines:
        digest, name = line.split(" *", 1)
        if name in edit:
            if edit[name] is None:
                continue
            digest = edit[name]
        out.append(f"{digest} *{name}\n")
    text = "".join(out).encode()
    return {
        f"{directory}/sha256sums": text,
        f"{directory}/sha256sums.sig": signing_key(mirror).sign(text).encode(),
    }


@pytest.fixture
def make_upstream(mirror: MirrorFixture) -> Iterator:
    """``(overrides=None, keys=None, **kw) -> (Upstream, FileTransport)`` without network."""
    clients: list[httpx.Client] = []

    def factory(
        overrides: dict[str, bytes | int | Exception] | None = None,
        keys: list[PublicKey] | None = None,
        **kwargs: float,
    ) -> tuple[Upstream, FileTransport]:
        transport = FileTransport(mirror.root, overrides)
        client = httpx.Client(transport=transport)
        clients.append(client)
        keys = [trusted_key(mirror)] if keys is None else keys
        return Upstream(BASE, keys, client, **kwargs), transport

    yield factory
    for client in clients:
        client.close()


@pytest.fixture(scope="module")
def mirror_url(mirror: MirrorFixture) -> Iterator[str]:
    server = make_mirror_server(mirror.root, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def http_upstream(mirror: MirrorFixture, mirror_url: str) -> Iterator[Upstream]:
    with httpx.Client(timeout=10) as client:
        yield Upstream(mirror_url + "/", [trusted_key(mirror)], client)


# -- end to end over HTTP ------------------------------------------------------------------


def test_version_path() -> None:
    assert Upstream.version_path("SNAPSHOT") == "snapshots"
    assert Upstream.version_path("24.10.5") == "releases/24.10.5"
    assert Upstream.version_path("24.10-SNAPSHOT") == "releases/24.10-SNAPSHOT"


def test_versions_targets_and_profiles_load(http_upstream: Upstream) -> None:
    assert http_upstream.versions() == Versions(
        stable="24.10.5",
        oldstable="23.05.5",
        upcoming="",
        versions_list=("24.10.5", "24.10.4", "23.05.5"),
    )
    assert http_upstream.targets("24.10.5") == {
        "x86/64": "x86_64",
        "ath79/generic": "mips_24kc",
        "ramips/mt7621": "mipsel_24kc",
    }
    profiles = http_upstream.profiles("24.10.5", "ath79/generic")
    assert profiles["version_number"] == "24.10.5"
    assert "tplink_archer-c7-v5" in profiles["profiles"]
    assert profiles["linux_kernel"]["version"] == "6.6.119"
    assert list(http_upstream.profiles("23.05.5", "x86/64")["profiles"]) == ["generic"]


@pytest.mark.parametrize(
    ("version", "target", "name"),
    [
        (
            "24.10.5",
            "ath79/generic",
            "openwrt-imagebuilder-24.10.5-ath79-generic.Linux-x86_64.tar.zst",
        ),
        ("23.05.5", "x86/64", "openwrt-imagebuilder-23.05.5-x86-64.Linux-x86_64.tar.xz"),
    ],
)
def test_imagebuilder_is_found_in_the_signed_sums(
    http_upstream: Upstream, mirror: MirrorFixture, version: str, target: str, name: str
) -> None:
    source = http_upstream.imagebuilder(version, target)
    file = mirror.root / "releases" / version / "targets" / target / name
    assert source == ImageBuilderSource(
        name=name,
        url=f"{http_upstream.base_url}/releases/{version}/targets/{target}/{name}",
        sha256=hashlib.sha256(file.read_bytes()).hexdigest(),
        version=version,
        target=target,
    )
    with httpx.stream("GET", source.url) as response:
        digest = hashlib.sha256()
        for chunk in response.iter_bytes():
            digest.update(chunk)
    assert digest.hexdigest() == source.sha256


def test_package_index_24_10_has_target_kmods_and_feeds(http_upstream: Upstream) -> None:
    index = http_upstream.package_index("24.10.5", "ath79/generic")
    assert index.architecture == "mips_24kc"
    for name in (
        "base-files",  # target packages/
        "libubox",  # ABI-stripped
        "libubox20240329",  # raw ABI name
        "kmod-ath9k",  # kmods/<kernel>/
        "luci",  # luci feed
        "owut",  # packages feed
        "babeld",  # routing feed
        "siproxd",  # telephony feed
        "luci-app-opkg",  # Provides:
        "libc",
        "kernel",
    ):
        assert name in index, name
    assert "auc" not in index
    assert index.versions["libubox"] == "2024.03.29~eb9bcb64-r1"
    assert "libubox20240329" not in index.versions
    assert index.versions["kmod-ath9k"].startswith("6.6.119")


def test_package_index_23_05_has_kmods_in_the_target_dir(http_upstream: Upstream) -> None:
    index = http_upstream.package_index("23.05.5", "ath79/generic")
    assert {"auc", "kmod-ath9k", "libubox", "libubox20230523", "luci"} <= index.provides
    assert "owut" not in index
    assert index.versions["libubox"] == "2024.03.29~eb9bcb64-1"


# -- index formats ---------------------------------------------------------------------------


def _without_packages_files(mirror: MirrorFixture, version: str) -> dict[str, int]:
    base = mirror.root / "releases" / version
    return {
        path.relative_to(mirror.root).as_posix(): 404
        for path in base.rglob("Packages")
        if "ath79" in path.as_posix() or "mips_24kc" in path.as_posix()
    }


def test_index_json_v2_fallback_gives_names_without_abi(make_upstream, mirror) -> None:
    upstream, transport = make_upstream(_without_packages_files(mirror, "24.10.5"))
    index = upstream.package_index("24.10.5", "ath79/generic")
    assert {"libubox", "kmod-ath9k", "owut", "luci"} <= index.provides
    assert "libubox20240329" not in index
    assert f"{MIPS}/luci/index.json" in transport.requests


def test_index_json_v1_fallback_keeps_raw_names(make_upstream, mirror) -> None:
    upstream, _ = make_upstream(_without_packages_files(mirror, "23.05.5"))
    index = upstream.package_index("23.05.5", "ath79/generic")
    assert "libubox20230523" in index.versions
    assert "libubox" not in index.versions


def test_abi_suffix_stripping() -> None:
    assert strip_abi("libubox20240329", "20240329") == "libubox"
    assert strip_abi("libfoo2-1", "1") == "libfoo2"
    assert strip_abi("libjson-c5", "5") == "libjson-c"
    assert strip_abi("busybox", "") == "busybox"
    assert strip_abi("7", "7") == "7"


def test_package_index_contains_and_defaults() -> None:
    assert "libc" in PackageIndex() and "kernel" in PackageIndex()
    assert "busybox" not in PackageIndex()


# -- signatures ------------------------------------------------------------------------------


def test_tampered_sha256sums_is_a_bad_signature(make_upstream, mirror) -> None:
    sums = (mirror.root / ATH79 / "sha256sums").read_bytes()
    upstream, _ = make_upstream({f"{ATH79}/sha256sums": sums.replace(b"0", b"1", 1)})
    with pytest.raises(SignatureError) as caught:
        upstream.imagebuilder("24.10.5", "ath79/generic")
    assert caught.value.detail == (
        f"Bad signature {BASE}/{ATH79}/sha256sums.sig: signature does not match the signed data"
    )


def test_tampered_profiles_json_is_a_checksum_mismatch(make_upstream, mirror) -> None:
    upstream, _ = make_upstream({f"{ATH79}/profiles.json": b'{"profiles": {}}'})
    with pytest.raises(
        SignatureError,
        match=r"SHA256 mismatch for http://mirror\.test/.*/ath79/generic/profiles\.json",
    ):
        upstream.profiles("24.10.5", "ath79/generic")


def test_wrong_key_names_the_fingerprint_and_url(make_upstream, mirror) -> None:
    other = SecretKey.from_seed(bytes(32), bytes.fromhex("a1b2c3d4e5f60718")).public_key
    upstream, _ = make_upstream(keys=[other])
    with pytest.raises(SignatureError) as caught:
        upstream.signed_sums("24.10.5", "ath79/generic")
    assert caught.value.detail == (
        f"No trusted key {mirror.fingerprint} for {BASE}/{ATH79}/sha256sums.sig "
        "(trusted keys: a1b2c3d4e5f60718)"
    )


def test_any_trusted_key_may_sign(make_upstream, mirror) -> None:
    other = SecretKey.from_seed(bytes(32), bytes(8)).public_key
    upstream, _ = make_upstream(keys=[other, trusted_key(mirror)])
    assert "profiles.json" in upstream.signed_sums("24.10.5", "ath79/generic")


def test_a_key_with_the_right_fingerprint_but_wrong_bytes_fails(make_upstream, mirror) -> None:
    impostor = PublicKey(fingerprint=bytes.fromhex(mirror.fingerprint), key=bytes(32))
    upstream, _ = make_upstream(keys=[impostor])
    with pytest.raises(SignatureError, match=r"^Bad signature "):
        upstream.signed_sums("24.10.5", "ath79/generic")


def test_missing_signature(make_upstream) -> None:
    upstream, _ = make_upstream({f"{ATH79}/sha256sums.sig": 404})
    with pytest.raises(SignatureError) as caught:
        upstream.imagebuilder("24.10.5", "ath79/generic")
    assert caught.value.detail == f"Missing signature: {BASE}/{ATH79}/sha256sums.sig does not exist"


def test_malformed_signature(make_upstream) -> None:
    upstream, _ = make_upstream({f"{ATH79}/sha256sums.sig": b"untrusted comment: x\nAAAA\n"})
    with pytest.raises(SignatureError, match=r"^Malformed signature http://mirror\.test/"):
        upstream.signed_sums("24.10.5", "ath79/generic")


def test_arch_sums_are_verified_too(make_upstream, mirror) -> None:
    upstream, _ = make_upstream({f"{MIPS}/sha256sums.sig": 404})
    with pytest.raises(SignatureError, match=f"{MIPS}/sha256sums.sig"):
        upstream.package_index("24.10.5", "ath79/generic")


def test_tampered_feed_index_is_refused(make_upstream, mirror) -> None:
    packages = (mirror.root / MIPS / "packages" / "Packages").read_bytes()
    upstream, _ = make_upstream({f"{MIPS}/packages/Packages": packages + b"\nPackage: evil\n"})
    with pytest.raises(SignatureError, match=r"SHA256 mismatch for .*/mips_24kc/packages/Packages"):
        upstream.package_index("24.10.5", "ath79/generic")


def test_unlisted_feed_index_needs_its_own_signature(make_upstream, mirror) -> None:
    overrides: dict = resigned_sums(mirror, MIPS, {"luci/Packages": None})
    upstream, transport = make_upstream(overrides)
    assert "luci" in upstream.package_index("24.10.5", "ath79/generic")
    assert f"{MIPS}/luci/Packages.sig" in transport.requests

    overrides[f"{MIPS}/luci/Packages.sig"] = 404
    upstream, _ = make_upstream(overrides)
    with pytest.raises(SignatureError, match=r"is neither listed in the signed .* nor signed"):
        upstream.package_index("24.10.5", "ath79/generic")


def test_without_keys_nothing_is_verified_and_one_warning_is_logged(
    make_upstream, mirror, caplog: pytest.LogCaptureFixture
) -> None:
    upstream, _ = make_upstream(
        {f"{ATH79}/sha256sums.sig": 404, f"{MIPS}/sha256sums.sig": 404}, keys=[]
    )
    with caplog.at_level(logging.WARNING, logger="firmforge.upstream"):
        assert upstream.signed_sums("24.10.5", "ath79/generic")
        upstream.package_index("24.10.5", "ath79/generic")
    warnings = [r for r in caplog.records if "NOT checked" in r.getMessage()]
    assert len(warnings) == 1
    # checksums are still compared with the (unsigned) list
    upstream, _ = make_upstream({f"{ATH79}/profiles.json": b"{}"}, keys=[])
    with pytest.raises(SignatureError, match="SHA256 mismatch"):
        upstream.profiles("24.10.5", "ath79/generic")


# -- failures and the ImageBuilder lookup ----------------------------------------------------


def test_no_imagebuilder_in_the_sums(make_upstream, mirror) -> None:
    name = "openwrt-imagebuilder-24.10.5-ath79-generic.Linux-x86_64.tar.zst"
    upstream, _ = make_upstream(resigned_sums(mirror, ATH79, {name: None}))
    with pytest.raises(UpstreamError) as caught:
        upstream.imagebuilder("24.10.5", "ath79/generic")
    assert caught.value.detail.startswith(f"No ImageBuilder for 24.10.5 ath79/generic on {BASE}")
    assert not isinstance(caught.value, SignatureError)


def test_network_error_is_an_upstream_error(make_upstream) -> None:
    upstream, _ = make_upstream({".versions.json": httpx.ConnectError("connection refused")})
    with pytest.raises(UpstreamError, match=rf"Cannot reach the mirror at {BASE}/\.versions\.json"):
        upstream.versions()


def test_unreachable_mirror_over_real_http(mirror) -> None:
    server = make_mirror_server(mirror.root, "127.0.0.1", 0)
    port = server.server_address[1]
    server.server_close()  # nothing listens there any more
    with httpx.Client(timeout=5) as client:
        upstream = Upstream(f"http://127.0.0.1:{port}", [], client)
        with pytest.raises(UpstreamError, match=f"127.0.0.1:{port}/.versions.json"):
            upstream.versions()


@pytest.mark.parametrize("status", [403, 500, 503])
def test_non_200_names_url_and_status(make_upstream, status: int) -> None:
    upstream, _ = make_upstream({"releases/24.10.5/.targets.json": status})
    with pytest.raises(UpstreamError) as caught:
        upstream.targets("24.10.5")
    assert caught.value.detail == (
        f"The mirror answered HTTP {status} for {BASE}/releases/24.10.5/.targets.json"
    )


def test_missing_file_and_bad_json(make_upstream) -> None:
    upstream, _ = make_upstream({".versions.json": b"<html>"})
    with pytest.raises(UpstreamError, match="is not valid JSON"):
        upstream.versions()
    with pytest.raises(UpstreamError, match=r"no http://mirror\.test/releases/9\.9\.9/\.targets"):
        upstream.targets("9.9.9")


def test_unsafe_path_segments_are_refused(make_upstream) -> None:
    upstream, transport = make_upstream()
    for version, target in [("../etc", "x86/64"), ("24.10.5", "x86/../64"), ("24.10.5", "x86")]:
        with pytest.raises(ValueError, match="unsafe mirror path"):
            upstream.profiles(version, target)
    assert transport.requests == []


def test_targets_skip_dot_keys(make_upstream) -> None:
    upstream, _ = make_upstream(
        {"releases/24.10.5/.targets.json": b'{".meta": "x", "x86/64": "x86_64"}'}
    )
    assert upstream.targets("24.10.5") == {"x86/64": "x86_64"}


# -- caching ---------------------------------------------------------------------------------


def test_responses_are_cached_until_invalidated(make_upstream) -> None:
    upstream, transport = make_upstream()
    upstream.versions()
    upstream.versions()
    upstream.package_index("24.10.5", "ath79/generic")
    upstream.package_index("24.10.5", "ath79/generic")
    assert transport.count(".versions.json") == 1
    assert transport.count(f"{ATH79}/sha256sums") == 1
    assert transport.count(f"{MIPS}/base/Packages") == 1

    upstream.invalidate("releases/24.10.5/targets/")
    upstream.versions()
    upstream.signed_sums("24.10.5", "ath79/generic")
    assert transport.count(".versions.json") == 1
    assert transport.count(f"{ATH79}/sha256sums") == 2

    upstream.invalidate()
    upstream.versions()
    assert transport.count(".versions.json") == 2


def test_expired_responses_are_fetched_again(make_upstream) -> None:
    upstream, transport = make_upstream(cache_ttl=0)
    upstream.versions()
    upstream.versions()
    assert transport.count(".versions.json") == 2


def test_errors_are_not_cached(make_upstream) -> None:
    overrides: dict = {".versions.json": 503}
    upstream, transport = make_upstream(overrides)
    with pytest.raises(UpstreamError):
        upstream.versions()
    del overrides[".versions.json"]
    assert upstream.versions().stable == "24.10.5"
    assert transport.count(".versions.json") == 2
