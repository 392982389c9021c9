"""``GET /api/v1/build/{hash}/info`` and ``/builds/{hash}`` on records and files made here."""

from __future__ import annotations

import hashlib
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from firmforge.api._info import ArtifactDigests
from firmforge.api._services import Services
from firmforge.signing import ensure_key, write_sha256sums
from firmforge.store import LocalStore
from firmforge.web import filesize

EVIL = "<script>alert('x')</script>"
MANIFEST = {"base-files": "1.0-r1", "htop": "3.3.0-r1", "busybox": "1.36.1-r2"}
BUILD_CMD = ["make", "image", "PROFILE=glinet_gl-ar150", "PACKAGES=htop <b>"]
IB = {"name": "openwrt-imagebuilder-24.10.5-ath79-generic.Linux-x86_64.tar.zst",
      "sha256": "ab" * 32}


def _services(client: TestClient) -> Services:
    return client.app.state.services  # type: ignore[attr-defined,no-any-return]


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _done_build(client: TestClient, tmp_path: Path, name: str) -> tuple[str, dict[str, bytes]]:
    """A finished build record with signed files in the store, as a worker leaves it."""
    svc = _services(client)
    request_hash = _hash(name)
    request = {"version": "24.10.5", "target": "ath79/generic", "profile": "glinet_gl-ar150",
               "packages": ["htop"], "client": EVIL}
    build_id = svc.database.record_queued(request_hash, request, "openwrt", "24.10.5",
                                          "ath79/generic", "glinet_gl-ar150", ["htop"])
    svc.database.record_started(build_id, f"worker-{EVIL}")
    svc.database.record_stage(build_id, "building_image", 1.25)
    svc.database.record_stage(build_id, "signing_images", 0.5)
    images = [{"name": "sysupgrade.bin", "type": "sysupgrade", "sha256": "00" * 32}]
    svc.database.record_done(build_id, manifest={**MANIFEST, EVIL: "1"}, images=images,
                             bin_dir=request_hash, imagebuilder=IB, build_cmd=BUILD_CMD)
    source = tmp_path / name
    source.mkdir()
    files = {
        "sysupgrade.bin": bytes(range(256)) * 9,
        "profiles.json": json.dumps({"version_code": "r28427-6df0e3d02a",
                                     "profiles": {}}).encode(),
        "x.manifest": b"htop - 3.3.0-r1\n",
    }
    for file_name, data in files.items():
        (source / file_name).write_bytes(data)
    write_sha256sums(source, ensure_key(svc.settings.signing_key_path))
    for file_name in ("sha256sums", "sha256sums.sig"):
        files[file_name] = (source / file_name).read_bytes()
    svc.store.publish(request_hash, source)
    return request_hash, files


def test_info_of_a_finished_build(client: TestClient, tmp_path: Path) -> None:
    request_hash, files = _done_build(client, tmp_path, "finished")
    response = client.get(f"/api/v1/build/{request_hash}/info")
    assert response.status_code == 200, response.text
    info = response.json()
    assert info["request_hash"] == request_hash
    assert info["request"]["client"] == EVIL
    assert (info["status"], info["detail"]) == ("done", "done")
    assert (info["version"], info["target"], info["profile"]) == (
        "24.10.5", "ath79/generic", "glinet_gl-ar150")
    assert info["imagebuilder"]["name"] == IB["name"]
    assert info["imagebuilder"]["sha256"] == IB["sha256"]
    assert info["imagebuilder"]["revision"] == "r28427-6df0e3d02a"
    assert info["imagebuilder"]["url"].endswith(
        f"/releases/24.10.5/targets/ath79/generic/{IB['name']}")
    assert info["manifest"]["htop"] == "3.3.0-r1"
    assert info["build_cmd"] == BUILD_CMD
    assert info["build_cmd_shell"] == "make image PROFILE=glinet_gl-ar150 'PACKAGES=htop <b>'"
    assert info["stage_timings"] == {"building_image": 1.25, "signing_images": 0.5}
    assert info["worker"] == f"worker-{EVIL}"
    for field in ("enqueued_at", "started_at", "finished_at"):
        assert info[field]
    assert info["duration_seconds"] is not None

    artifacts = {a["name"]: a for a in info["artifacts"]}
    assert set(artifacts) == set(files)
    assert [a["name"] for a in info["artifacts"]] == sorted(files)
    for name, data in files.items():
        assert artifacts[name]["size"] == len(data)
        assert artifacts[name]["sha256"] == hashlib.sha256(data).hexdigest()
        assert artifacts[name]["url"] == f"/store/{request_hash}/{name}"
        downloaded = client.get(artifacts[name]["url"])
        assert hashlib.sha256(downloaded.content).hexdigest() == artifacts[name]["sha256"]

    signature = info["signature"]
    key = client.get("/api/v1/key")
    assert signature["key_fingerprint"] == key.headers["X-Key-Fingerprint"]
    assert signature["sha256sums_sig"] == files["sha256sums.sig"].decode()
    assert signature["sha256sums"] == files["sha256sums"].decode()
    assert signature["verified"] is True


@pytest.mark.parametrize("path", [
    "/api/v1/build/{}/info",
    "/builds/{}",
])
@pytest.mark.parametrize("request_hash", [
    "0" * 64,  # well formed, unknown
    "0" * 63,
    "G" * 64,
    "A" * 64,  # hashes are lower case
    "..",
    "%2e%2e%2fetc",
    "x" * 300,
])
def test_unknown_and_malformed_hashes_are_404(
    client: TestClient, path: str, request_hash: str
) -> None:
    response = client.get(path.format(request_hash))
    if response.url.path == "/":
        return  # the client resolved `..` away: /builds/.. is the home page, not a build
    assert response.status_code == 404
    if path.startswith("/api/"):
        assert isinstance(response.json()["detail"], str)
    elif request_hash.isalnum():  # dots and slashes leave the route: no page to render
        assert response.headers["content-type"].startswith("text/html")
    assert "<script" not in response.text


def test_a_queued_build_has_no_artifacts(client: TestClient) -> None:
    svc = _services(client)
    request_hash = _hash("queued")
    svc.database.record_queued(request_hash, {"profile": EVIL}, "openwrt", "24.10.5",
                               "ath79/generic", "glinet_gl-ar150", [])
    info = client.get(f"/api/v1/build/{request_hash}/info").json()
    assert info["status"] == "queued"
    assert info["artifacts"] == []
    assert info["manifest"] is None
    assert info["build_cmd"] is None
    assert info["signature"]["sha256sums_sig"] is None
    page = client.get(f"/builds/{request_hash}")
    assert page.status_code == 200
    assert "no command to reproduce" in page.text
    assert EVIL not in page.text


class _Page(HTMLParser):
    """Collects what the accessibility checks need."""

    def __init__(self) -> None:
        super().__init__()
        self.lang: str | None = None
        self.scripts = 0
        self.external: list[str] = []
        self.headers = 0
        self.tables = 0
        self.links: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "html":
            self.lang = attributes.get("lang")
        self.scripts += tag == "script"
        self.headers += tag == "th"
        self.tables += tag == "table"
        for name in ("src", "href"):
            value = attributes.get(name) or ""
            if name == "href" and tag == "a":
                self.links.append(value)
            elif value:
                self.external.append(value)
        if tag == "link":
            self.external.append(attributes.get("href") or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_page_is_escaped_readable_and_self_contained(client: TestClient, tmp_path: Path) -> None:
    request_hash, files = _done_build(client, tmp_path, "page")
    response = client.get(f"/builds/{request_hash}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src" not in response.headers["content-security-policy"]
    assert "default-src 'none'" in response.headers["content-security-policy"]
    html = response.text
    assert EVIL not in html
    assert "&lt;script&gt;alert(" in html
    assert "<b>" not in html
    page = _Page()
    page.feed(html)
    assert page.lang == "en"
    assert page.scripts == 0
    assert page.external == []
    assert page.tables >= 4 and page.headers >= 10
    text = "".join(page.text)
    assert EVIL in text  # shown, as text
    for name, data in files.items():
        assert f"/store/{request_hash}/{name}" in page.links
        assert hashlib.sha256(data).hexdigest() in text
    assert IB["name"] in text and IB["sha256"] in text
    assert "make image PROFILE=glinet_gl-ar150 'PACKAGES=htop <b>'" in text
    assert "r28427-6df0e3d02a" in text
    assert "building_image" in text
    assert "3.3.0-r1" in text
    assert "sha256sum" in text


def test_digests_are_computed_once_per_directory(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    source = tmp_path / "source"
    source.mkdir()
    (source / "a.bin").write_bytes(b"a")
    bin_dir = "1" * 64
    store.publish(bin_dir, source)
    digests = ArtifactDigests(store)
    first = digests.of(bin_dir)
    assert [(a.name, a.size) for a in first] == [("a.bin", 1)]
    assert digests.of(bin_dir) is first
    (source / "b.bin").write_bytes(b"bb")
    store.publish(bin_dir, source)  # a rebuild: a new directory, read afresh
    assert [a.name for a in digests.of(bin_dir)] == ["a.bin", "b.bin"]
    assert digests.of("2" * 64) == ()
    assert digests.of("../etc") == ()


@pytest.mark.parametrize(("size", "text"), [
    (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (5 * 1024**2, "5.0 MiB"),
    (3 * 1024**3, "3.0 GiB"),
])
def test_filesize(size: int, text: str) -> None:
    assert filesize(size) == text
