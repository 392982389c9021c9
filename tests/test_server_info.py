"""End to end: a real build through ``firmforge serve``, then its info document and page."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from firmforge.usign import PublicKey
from tests.conftest import MirrorFixture
from tests.server_fixtures import firmforge_server, mirror_over_http, poll_build

pytestmark = pytest.mark.slow

REQUEST = {"version": "24.10.5", "target": "ath79/generic", "profile": "glinet_gl-ar150",
           "packages": ["htop"], "client": "<script>alert(1)</script>/1.0"}


def test_info_describes_a_real_build(mirror: MirrorFixture, tmp_path: Path) -> None:
    with mirror_over_http(mirror.root) as mirror_url, \
            firmforge_server(tmp_path / "serve", mirror_url, mirror.public_key) as server, \
            server.client() as client:
        posted = client.post("/api/v1/build", json=REQUEST)
        assert posted.status_code in (200, 202), posted.text
        body = posted.json()
        if posted.status_code == 202:
            body = poll_build(client, body["request_hash"]).json()
        assert body["status"] == 200, body
        request_hash = body["request_hash"]

        response = client.get(f"/api/v1/build/{request_hash}/info")
        assert response.status_code == 200, response.text
        info = response.json()
        assert info["request_hash"] == request_hash
        assert info["request"]["packages"] == ["htop"]
        assert info["request"]["client"] == REQUEST["client"]
        assert (info["status"], info["detail"]) == ("done", "done")
        assert (info["target"], info["profile"]) == ("ath79/generic", "glinet_gl-ar150")
        assert info["worker"]
        assert info["enqueued_at"] <= info["started_at"] <= info["finished_at"]
        assert info["duration_seconds"] > 0
        assert "building_image" in info["stage_timings"]

        imagebuilder = info["imagebuilder"]
        tarball = mirror.imagebuilder_tarball("24.10.5", "ath79/generic")
        assert imagebuilder["name"] == tarball.name
        assert imagebuilder["sha256"] == hashlib.sha256(tarball.read_bytes()).hexdigest()
        assert imagebuilder["revision"] == body["version_code"]
        assert client.get(imagebuilder["url"]).content == tarball.read_bytes()

        assert "htop" in info["manifest"]
        assert info["manifest"] == body["manifest"]
        assert info["build_cmd"] == body["build_cmd"]
        assert info["bin_dir"] == body["bin_dir"]

        artifacts = {a["name"]: a for a in info["artifacts"]}
        for image in body["images"]:
            assert image["name"] in artifacts
        assert {"sha256sums", "sha256sums.sig", "profiles.json"} <= set(artifacts)
        for name, artifact in artifacts.items():
            downloaded = client.get(artifact["url"])
            assert downloaded.status_code == 200, name
            assert len(downloaded.content) == artifact["size"], name
            assert hashlib.sha256(downloaded.content).hexdigest() == artifact["sha256"], name

        # the signed sha256sums agrees with every artifact, and the served key verifies it
        sums = client.get(artifacts["sha256sums"]["url"]).text
        for line in sums.splitlines():
            digest, name = line.split(" *", 1)
            assert artifacts[name]["sha256"] == digest
        signature = info["signature"]
        key = PublicKey.from_text(client.get("/api/v1/key").text)
        assert signature["key_fingerprint"] == key.fingerprint_hex
        key.verify(sums.encode(), signature["sha256sums_sig"])
        assert signature["verified"] is True

        page = client.get(f"/builds/{request_hash}")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "<script>alert(1)</script>" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
        assert imagebuilder["sha256"] in page.text
        for artifact in info["artifacts"]:
            assert artifact["sha256"] in page.text

        assert client.get(f"/api/v1/build/{'f' * 64}/info").status_code == 404
        assert client.get("/builds/not-a-hash").status_code == 404
