"""Extra repositories: the allow-list, keys, the rendered ImageBuilder files, the feeds' names,
and the API's 400s (research/asu-upstream.md §1.8, §2.3, §6)."""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from fastapi.testclient import TestClient

from firmforge.config import Settings
from firmforge.errors import BuildError, RequestError
from firmforge.mirror._feed import write_feed
from firmforge.mirror._ipk import IpkFile, build_ipk, control_text, tar_gz
from firmforge.mirror._packages import BuiltPackage
from firmforge.repositories import (
    FeedNames,
    check_request_repositories,
    discard_new_downloads,
    feed_failure,
    install_repositories,
    parse_repository_key,
    render_apk_repositories,
    render_opkg_repositories,
    repository_allowed,
)
from firmforge.usign import PublicKey, SecretKey
from tests.conftest import MirrorFixture
from tests.server_fixtures import (
    app_client,
    app_settings,
    mirror_over_http,
    serve_directory,
)

# --- helpers shared with the end-to-end test --------------------------------------------------

EXTRA_PACKAGE = "extra-hello"


@dataclass(frozen=True)
class ExtraFeed:
    directory: Path
    key: SecretKey

    @property
    def public_key_line(self) -> str:
        return self.key.public_key.to_text().splitlines()[1]


def new_key() -> SecretKey:
    return SecretKey.from_seed(os.urandom(32), os.urandom(8))


def make_extra_feed(directory: Path, key: SecretKey | None = None) -> ExtraFeed:
    """One signed opkg feed with one small ``all`` package, ``extra-hello``."""
    key = key or new_key()
    fields = [
        ("Package", EXTRA_PACKAGE),
        ("Version", "1.0-r1"),
        ("Depends", "libc"),
        ("Source", "feeds/extra/hello"),
        ("SourceName", EXTRA_PACKAGE),
        ("License", "MIT"),
        ("Section", "utils"),
        ("SourceDateEpoch", "1700000000"),
        ("Maintainer", "Nobody <nobody@example.org>"),
        ("Architecture", "all"),
        ("Installed-Size", "1"),
        ("Description", "An extra package from a third-party feed."),
    ]
    data = tar_gz({"usr/share/extra-hello/hello.txt": IpkFile(b"hello from the extra feed\n")},
                  mtime=1700000000)
    ipk = build_ipk(control_text(fields), data, mtime=1700000000)
    package = BuiltPackage(name=EXTRA_PACKAGE, version="1.0-r1", architecture="all",
                           fields=fields, ipk=ipk)
    write_feed(directory, [package], "all", 2, key)
    return ExtraFeed(directory=directory, key=key)


def closed_port_url() -> str:
    from tests.server_fixtures import free_port

    return f"http://127.0.0.1:{free_port()}/feed"


# --- the allow-list ---------------------------------------------------------------------------

ALLOW = ["https://allowed.example.com/feed", "http://10.0.0.1:8080/", "https://[::1]/x/"]


@pytest.mark.parametrize(
    "url",
    [
        "https://allowed.example.com/feed",
        "https://allowed.example.com/feed/",
        "https://allowed.example.com/feed/packages/mips_24kc/extra",
        "https://Allowed.Example.COM/feed/x",  # host names are case-insensitive
        "https://allowed.example.com:443/feed/x",  # the default port is the same location
        "http://10.0.0.1:8080/anything/below",
        "https://[::1]/x/y",
        "https://allowed.example.com/feed/a%20b",  # encoded, harmless characters are fine
    ],
)
def test_allowed_urls(url: str) -> None:
    assert repository_allowed(url, ALLOW)


@pytest.mark.parametrize(
    "url",
    [
        # host
        "https://allowed.example.com.evil.org/feed/x",
        "https://evil.allowed.example.com/feed/x",
        "https://evil.org/allowed.example.com/feed/x",
        "https://allowed.example.com./feed/x",
        "https://allowed.example.com%2eevil.org/feed/x",
        # user-info tricks
        "https://allowed.example.com@evil.org/feed/x",
        "https://allowed.example.com:443@evil.org/feed/x",
        "https://user:pass@allowed.example.com/feed/x",
        "https://allowed.example.com\\@evil.org/feed/x",
        # scheme and port
        "http://allowed.example.com/feed/x",
        "https://allowed.example.com:8443/feed/x",
        "https://allowed.example.com:443x/feed/x",
        "http://10.0.0.1/anything",
        "http://10.0.0.1:8081/anything",
        # path prefix
        "https://allowed.example.com/feedx",
        "https://allowed.example.com/feedx/y",
        "https://allowed.example.com/fee",
        "https://allowed.example.com/",
        "https://allowed.example.com//feed/x",
        # dot segments, raw and percent-encoded (once and twice), and their cousins
        "https://allowed.example.com/feed/../evil",
        "https://allowed.example.com/feed/./../evil",
        "https://allowed.example.com/feed/..",
        "https://allowed.example.com/feed/%2e%2e/evil",
        "https://allowed.example.com/feed/%2E%2E/evil",
        "https://allowed.example.com/feed/.%2e/evil",
        "https://allowed.example.com/feed%2f..%2fevil",
        "https://allowed.example.com/feed/%252e%252e/evil",
        "https://allowed.example.com/feed/..;/evil",
        "https://allowed.example.com/feed/..%5cevil",
        "https://allowed.example.com/feed\\..\\evil",
        "https://allowed.example.com/fe%65d/x",  # encodes its way into the prefix: refused
        # line injection and odd characters
        "https://allowed.example.com/feed/x\nsrc/gz evil https://evil.org",
        "https://allowed.example.com/feed/x\rsrc/gz evil https://evil.org",
        "https://allowed.example.com/feed/x\x1csrc/gz\x1fevil\x1fhttps://evil.org",
        "https://allowed.example.com/feed/x\u2028src/gz",
        "https://allowed.example.com/feed/x%0aoption",
        "https://allowed.example.com/feed/x y",
        "https://allowed.example.com/feed/\u00e9",
        # query and fragment
        "https://allowed.example.com/feed/x?a=/../../evil",
        "https://allowed.example.com/feed/x#frag",
        # not http
        "ftp://allowed.example.com/feed/x",
        "file:///feed/x",
        "https:allowed.example.com/feed/x",
    ],
)
def test_bypass_attempts_are_refused(url: str) -> None:
    assert not repository_allowed(url, ALLOW)


def test_empty_allow_list_refuses_everything() -> None:
    assert not repository_allowed("https://allowed.example.com/feed/x", [])


def test_allow_list_settings_are_checked_and_read_from_json_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().repository_allow_list == []
    monkeypatch.setenv("FIRMFORGE_REPOSITORY_ALLOW_LIST", '["https://feed.example.org/openwrt/"]')
    assert Settings().repository_allow_list == ["https://feed.example.org/openwrt/"]
    for bad in ('["https://u@feed.example.org/"]', '["feed.example.org"]',
                '["https://feed.example.org/a/../b"]'):
        monkeypatch.setenv("FIRMFORGE_REPOSITORY_ALLOW_LIST", bad)
        with pytest.raises(ValueError, match="repository_allow_list entry"):
            Settings()


# --- keys -------------------------------------------------------------------------------------


def _pem_key() -> tuple[str, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    secret = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    return public.decode(), secret.decode()


def test_usign_key_as_line_or_file_is_stored_under_its_fingerprint() -> None:
    key = new_key().public_key
    text = key.to_text("my feed")
    for given in (text, text.splitlines()[1], f"  {text.strip()}\r\n"):
        parsed = parse_repository_key(given, 0)
        assert parsed.kind == "usign"
        assert parsed.filename == key.fingerprint_hex
        assert parsed.content == f"untrusted comment: public key {key.fingerprint_hex}\n" \
                                 f"{text.splitlines()[1]}\n"
        assert PublicKey.from_text(parsed.content) == key


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "RWS1BD5w+adc3j2Hqg9+b66CvLR7NlHbsj7wjNVj0XGt/othDgIAOJS",  # one character short
        "not base64 !!!",
        "untrusted comment: x\nRWQ=",
        "untrusted comment: x\n{line}\nsrc/gz evil https://evil.org",  # a third line
        "comment without the prefix\n{line}",
        "{line}\noption check_signature 0",
        "{secret}",  # a usign secret key is not a public key
        "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----",
        "{pem_secret}",  # nor is a PEM private key
    ],
)
def test_bad_keys_are_refused(text: str) -> None:
    secret = new_key()
    line = secret.public_key.to_text().splitlines()[1]
    text = text.format(line=line, secret=secret.to_text(), pem_secret=_pem_key()[1])
    with pytest.raises(ValueError):
        parse_repository_key(text, 0)


def test_pem_public_key_is_stored_canonically_by_position() -> None:
    public, _ = _pem_key()
    parsed = parse_repository_key("\n" + public + "\n", 3)
    assert parsed.kind == "pem" and parsed.filename == "custom-3.pem"
    assert parsed.content == public


def test_request_check_order_and_texts() -> None:
    allow = ["https://allowed.example.com/feed"]
    good_key = new_key().public_key.to_text()
    assert check_request_repositories({}, [], []) == []
    with pytest.raises(RequestError, match=r"^Repository not allowed: https://evil.org/x$"):
        check_request_repositories({"a": "https://evil.org/x"}, ["garbage"], allow)
    with pytest.raises(RequestError, match=r"^Invalid repository key #2: "):
        check_request_repositories({"a": "https://allowed.example.com/feed/a"},
                                   [good_key, "garbage"], allow)
    for name in ("..", ".", "imagebuilder", "caf\u00e9"):
        with pytest.raises(RequestError, match=r"^Repository name not allowed: "):
            check_request_repositories({name: "https://allowed.example.com/feed/a"}, [], allow)
    many = {f"r{i}": f"https://allowed.example.com/feed/{i}" for i in range(17)}
    with pytest.raises(RequestError, match=r"^Too many repositories: 17"):
        check_request_repositories(many, [], allow)
    fingerprint = os.urandom(8)
    other = SecretKey.from_seed(os.urandom(32), fingerprint)
    twin = SecretKey.from_seed(os.urandom(32), fingerprint)
    with pytest.raises(RequestError, match="same fingerprint"):
        check_request_repositories({}, [other.public_key.to_text(),
                                        twin.public_key.to_text()], allow)


# --- the ImageBuilder files -------------------------------------------------------------------

IB_CONF = """\
## Remote package repositories
src/gz openwrt_core https://downloads.openwrt.org/releases/24.10.5/targets/x86/64/packages
src/gz openwrt_base https://downloads.openwrt.org/releases/24.10.5/packages/x86_64/base

## This is the local package repository, do not remove!
src imagebuilder file:packages

option check_signature
"""


def _feed_lines(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line.strip() and line[0] != "#"]


def test_replace_keeps_only_the_request_feeds_and_the_local_one() -> None:
    text = render_opkg_repositories(
        IB_CONF, {"extra": "https://a.example.org/feed", "more": "https://b.example.org/f/"},
        "replace")
    assert _feed_lines(text) == [
        ["src/gz", "extra", "https://a.example.org/feed"],
        ["src/gz", "more", "https://b.example.org/f/"],
        ["src", "imagebuilder", "file:packages"],
        ["option", "check_signature"],
    ]


def test_append_keeps_the_imagebuilder_feeds_and_one_option() -> None:
    text = render_opkg_repositories(IB_CONF, {"extra": "https://a.example.org/feed"}, "append")
    lines = _feed_lines(text)
    assert lines[:2] == _feed_lines(IB_CONF)[:2]
    assert ["src/gz", "extra", "https://a.example.org/feed"] in lines
    assert lines.count(["src", "imagebuilder", "file:packages"]) == 1
    assert lines.count(["option", "check_signature"]) == 1
    assert lines[-1] == ["option", "check_signature"]


def test_append_adds_a_missing_local_feed_and_forces_signature_checks() -> None:
    conf = "src/gz openwrt_base https://x.example.org/base\noption check_signature 0\n" \
           "src imagebuilder file:packages\nsrc imagebuilder file:packages\n"
    text = render_opkg_repositories(conf, {"extra": "https://a.example.org/feed"}, "append")
    lines = _feed_lines(text)
    assert ["option", "check_signature", "0"] not in lines
    assert lines.count(["option", "check_signature"]) == 1
    assert lines.count(["src", "imagebuilder", "file:packages"]) == 1
    bare = render_opkg_repositories("src/gz openwrt_base https://x.example.org/base\n",
                                    {"extra": "https://a.example.org/feed"}, "append")
    assert _feed_lines(bare)[-2:] == [["src", "imagebuilder", "file:packages"],
                                      ["option", "check_signature"]]


def test_append_refuses_a_name_the_imagebuilder_uses() -> None:
    with pytest.raises(BuildError, match="openwrt_base is already used"):
        render_opkg_repositories(IB_CONF, {"openwrt_base": "https://a.example.org/f"}, "append")


@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("ok", "https://a.example.org/f\nsrc/gz evil https://evil.org"),
        ("ok", "https://a.example.org/f\x1csrc/gz"),
        ("ok", "https://a.example.org/f x"),
        ("ok", "ftp://a.example.org/f"),
        ("a\nb", "https://a.example.org/f"),
        ("a b", "https://a.example.org/f"),
        ("..", "https://a.example.org/f"),
        ("imagebuilder", "https://a.example.org/f"),
    ],
)
def test_writer_rechecks_every_line(name: str, url: str) -> None:
    for render in (render_opkg_repositories, render_apk_repositories):
        with pytest.raises(BuildError):
            render(IB_CONF, {name: url}, "append")


def test_apk_repositories_file() -> None:
    ib = "https://x.example.org/core/packages.adb\nhttps://x.example.org/base/packages.adb\n"
    extra = {"extra": "https://a.example.org/feed/packages.adb"}
    assert render_apk_repositories(ib, extra, "append").splitlines() == [
        *ib.splitlines(), "https://a.example.org/feed/packages.adb"]
    assert render_apk_repositories(ib, extra, "replace") == \
        "https://a.example.org/feed/packages.adb\n"


def test_install_writes_conf_and_keys(tmp_path: Path) -> None:
    (tmp_path / "repositories.conf").write_text(IB_CONF)
    (tmp_path / "keys").mkdir()
    usign = new_key().public_key
    pem, _ = _pem_key()
    install_repositories(tmp_path, {"extra": "https://a.example.org/feed"},
                         [usign.to_text().splitlines()[1], pem], "append")
    assert "src/gz extra https://a.example.org/feed" in \
        (tmp_path / "repositories.conf").read_text()
    assert PublicKey.from_text((tmp_path / "keys" / usign.fingerprint_hex).read_text()) == usign
    assert (tmp_path / "keys" / "custom-1.pem").read_text() == pem


def test_install_without_repositories_leaves_the_conf_alone(tmp_path: Path) -> None:
    (tmp_path / "repositories.conf").write_text(IB_CONF)
    install_repositories(tmp_path, {}, [], "replace")
    assert (tmp_path / "repositories.conf").read_text() == IB_CONF
    key = new_key().public_key
    install_repositories(tmp_path, {}, [key.to_text()], "replace")  # keys only
    assert (tmp_path / "repositories.conf").read_text() == IB_CONF
    assert (tmp_path / "keys" / key.fingerprint_hex).is_file()


def test_install_refuses_to_replace_a_trusted_key(tmp_path: Path) -> None:
    trusted = new_key().public_key
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / trusted.fingerprint_hex).write_text(trusted.to_text("OpenWrt key"))
    install_repositories(tmp_path, {}, [trusted.to_text()], "append")  # the same key: fine
    impostor = SecretKey.from_seed(os.urandom(32), trusted.fingerprint).public_key
    with pytest.raises(BuildError, match="clashes"):
        install_repositories(tmp_path, {}, [impostor.to_text()], "append")
    assert PublicKey.from_text((tmp_path / "keys" / trusted.fingerprint_hex).read_text()) == \
        trusted


def test_apk_imagebuilder_gets_its_repositories_file(tmp_path: Path) -> None:
    (tmp_path / "repositories").write_text("https://x.example.org/core/packages.adb\n")
    install_repositories(tmp_path, {"extra": "https://a.example.org/packages.adb"}, [],
                         "append")
    assert (tmp_path / "repositories").read_text().splitlines()[-1] == \
        "https://a.example.org/packages.adb"
    assert not (tmp_path / "repositories.conf").exists()


def test_new_downloads_are_discarded_pooled_ones_kept(tmp_path: Path) -> None:
    pool, downloads = tmp_path / "pool", tmp_path / "dl"
    pool.mkdir()
    downloads.mkdir()
    (pool / "busybox_1.ipk").write_bytes(b"pooled")
    os.link(pool / "busybox_1.ipk", downloads / "busybox_1.ipk")
    (downloads / "extra-hello_1.ipk").write_bytes(b"from the extra feed")
    assert discard_new_downloads(downloads) == 1
    assert sorted(p.name for p in downloads.iterdir()) == ["busybox_1.ipk"]


def test_feed_failure_names_the_request_feed() -> None:
    stderr = (
        "Downloading http://mirror/base/Packages.gz\n"
        "Updated list of available packages in /ib/tmp/opkg-lists/openwrt_base\n"
        "Downloading http://mirror/base/Packages.sig\n"
        "Signature check passed.\n"
        "Downloading http://feeds.example.org/extra/Packages.gz\n"
        "Updated list of available packages in /ib/tmp/opkg-lists/extra\n"
        "Downloading http://feeds.example.org/extra/Packages.sig\n"
        "Signature check failed.\n"
        "Remove wrong Signature file.\n"
        "Downloading http://down.example.org/gone/Packages.gz\n"
        "*** Failed to download the package list from http://down.example.org/gone/Packages.gz\n"
    )
    repositories = {"extra": "http://feeds.example.org/extra/",
                    "gone": "http://down.example.org/gone"}
    assert feed_failure(stderr, repositories) == (
        "Signature check failed for repository extra (http://feeds.example.org/extra): its "
        "Packages.sig is not signed by any key in repository_keys; Could not download the "
        "package list of repository gone (http://down.example.org/gone)"
    )
    assert feed_failure(stderr, {}) is None
    official = stderr.replace("feeds.example.org/extra", "mirror/luci")
    assert "Signature" not in (feed_failure(official, {"gone": "http://down.example.org/gone"})
                               or "")


# --- the extra feeds' names -------------------------------------------------------------------

PACKAGES = b"""Package: libfoo1
ABIVersion: 1
Version: 1.0-r1
Provides: libfoo-any
Architecture: all
Description:  a library

Package: foo-tool
Version: 2.0-r1
Architecture: all
Description:  a tool
"""


def _transport(routes: dict[str, httpx.Response], seen: list[str]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return routes.get(str(request.url), httpx.Response(404))

    return httpx.MockTransport(handler)


def test_feed_names_from_packages_gz_or_packages() -> None:
    allow = ["https://feeds.example.org/"]
    seen: list[str] = []
    routes = {
        "https://feeds.example.org/a/Packages.gz": httpx.Response(200,
                                                                  content=gzip.compress(PACKAGES)),
        "https://feeds.example.org/b/Packages": httpx.Response(200, content=b"Package: bar\n"),
    }
    feeds = FeedNames(transport=_transport(routes, seen))
    names = feeds.names(["https://feeds.example.org/a", "https://feeds.example.org/b/"], allow)
    assert {"libfoo1", "libfoo", "libfoo-any", "foo-tool", "bar"} <= names
    count = len(seen)
    feeds.names(["https://feeds.example.org/a"], allow)  # cached
    assert len(seen) == count


def test_feed_names_refuse_unreachable_unreadable_and_escaping_feeds() -> None:
    allow = ["https://feeds.example.org/ok/"]
    routes = {
        "https://feeds.example.org/ok/bad/Packages.gz": httpx.Response(200, content=b"not gzip"),
        "https://feeds.example.org/ok/moved/Packages.gz": httpx.Response(
            302, headers={"location": "https://evil.org/Packages.gz"}),
        "https://feeds.example.org/ok/moved2/Packages.gz": httpx.Response(
            301, headers={"location": "/ok/a/Packages.gz"}),
        "https://feeds.example.org/ok/a/Packages.gz": httpx.Response(
            200, content=gzip.compress(PACKAGES)),
        "https://feeds.example.org/ok/bomb/Packages.gz": httpx.Response(
            200, content=gzip.compress(b"\n" * (FeedNames.MAX_INDEX + 1))),
    }
    seen: list[str] = []
    feeds = FeedNames(transport=_transport(routes, seen))
    with pytest.raises(RequestError, match=r"^Repository unreachable: https://feeds.example.org/ok/gone$"):
        feeds.names(["https://feeds.example.org/ok/gone"], allow)
    with pytest.raises(RequestError, match=r"^Repository index unreadable: "):
        feeds.names(["https://feeds.example.org/ok/bad"], allow)
    with pytest.raises(RequestError, match=r"^Repository index unreadable: "):
        feeds.names(["https://feeds.example.org/ok/bomb"], allow)
    with pytest.raises(RequestError, match=r"^Repository unreachable: "):
        feeds.names(["https://feeds.example.org/ok/moved"], allow)
    assert not any("evil.org" in url for url in seen)
    assert "foo-tool" in feeds.names(["https://feeds.example.org/ok/moved2"], allow)
    with pytest.raises(RequestError, match=r"^Repository not allowed: "):
        feeds.names(["https://feeds.example.org/other"], allow)


def test_feed_names_over_real_http(tmp_path: Path) -> None:
    make_extra_feed(tmp_path / "feed")
    with serve_directory(tmp_path) as base:
        names = FeedNames().names([f"{base}/feed"], [base])
    assert EXTRA_PACKAGE in names
    dead = closed_port_url()
    with pytest.raises(RequestError, match=r"^Repository unreachable: "):
        FeedNames(timeout=2).names([dead], [dead])


# --- the API ----------------------------------------------------------------------------------

VALID = {"version": "24.10.5", "target": "ath79/generic", "profile": "tplink_archer-c7-v5"}


@pytest.fixture(scope="module")
def feed_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("feeds")
    make_extra_feed(root / "feed")
    with serve_directory(root) as base:
        yield f"{base}/feed"


@pytest.fixture(scope="module")
def dead_url() -> str:
    return closed_port_url()


@pytest.fixture(scope="module")
def settings(
    mirror: MirrorFixture,
    redis_url: str,
    feed_url: str,
    dead_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Settings]:
    with mirror_over_http(mirror.root) as url:
        base = feed_url.rsplit("/", 1)[0]
        yield app_settings(tmp_path_factory.mktemp("data"), url, mirror.public_key, redis_url,
                           repository_allow_list=[f"{base}/feed", dead_url])


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with app_client(settings) as test_client:
        yield test_client


def _post(client: TestClient, **fields: object) -> tuple[int, object]:
    response = client.post("/api/v1/build", json={**VALID, **fields})
    return response.status_code, response.json()["detail"]


def test_api_refuses_repositories_not_allowed(client: TestClient, feed_url: str) -> None:
    base = feed_url.rsplit("/", 1)[0]
    for url in (f"{base}/feedx", f"{base}/feed/../x", "https://evil.org/feed",
                f"{base.replace('127.0.0.1', '127.0.0.1@evil.org')}/feed/x",
                f"{base.replace('http:', 'https:')}/feed"):
        assert _post(client, repositories={"extra": url}) == (
            400, f"Repository not allowed: {url}"), url


def test_api_order_defaults_then_repositories_then_the_rest(client: TestClient) -> None:
    bad = {"repositories": {"extra": "https://evil.org/feed"}}
    assert _post(client, defaults="echo hi", **bad) == (
        400, "Handling `defaults` not enabled on server")
    assert _post(client, distro="lede", version="99.99.99", **bad) == (
        400, "Repository not allowed: https://evil.org/feed")
    assert _post(client, distro="lede", repository_keys=["garbage"])[1].startswith(
        "Invalid repository key #1: ")


def test_api_schema_refuses_injected_lines(client: TestClient, feed_url: str) -> None:
    for repositories in ({"extra": feed_url + "\nsrc/gz evil http://evil.org"},
                         {"ex tra": feed_url}, {"ex\ntra": feed_url}):
        response = client.post("/api/v1/build", json={**VALID, "repositories": repositories})
        assert response.status_code == 422, repositories
    status, detail = _post(client, repositories={"extra": feed_url + "\x1csrc/gz\x1fevil"})
    assert status in (400, 422) and "evil" in str(detail)


def test_api_accepts_packages_of_an_extra_feed(client: TestClient, feed_url: str) -> None:
    # the feed's signature is checked by the build, not here: any well-formed key passes
    status, detail = _post(client, packages=[EXTRA_PACKAGE, "luci"],
                           repositories={"extra": feed_url}, repositories_mode="append",
                           repository_keys=[new_key().public_key.to_text()])
    assert (status, detail) == (202, "queued")
    # without the feed, or with a name neither has, the package is unknown
    status, detail = _post(client, packages=[EXTRA_PACKAGE])
    assert status == 400 and EXTRA_PACKAGE in str(detail)
    status, detail = _post(client, packages=[EXTRA_PACKAGE, "nosuch-x"],
                           repositories={"extra": feed_url})
    assert status == 400 and "nosuch-x" in str(detail) and EXTRA_PACKAGE not in str(detail)


def test_api_unreachable_feed_is_400(client: TestClient, dead_url: str) -> None:
    assert _post(client, packages=["luci"], repositories={"extra": dead_url}) == (
        400, f"Repository unreachable: {dead_url}")
    services = client.app.state.services  # type: ignore[attr-defined]
    assert len(services.queue) == 0
