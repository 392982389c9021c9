"""End to end: ``firmforge serve`` signs what it builds with its own key, and Debian's
``signify-openbsd`` verifies the downloads with the key the server publishes."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from firmforge import fwtool
from firmforge.api._key import FINGERPRINT_HEADER
from firmforge.db import Database
from firmforge.signing import SIGNED_IMAGE_TYPES, strip_signature
from firmforge.usign import PublicKey
from tests.conftest import MirrorFixture
from tests.server_fixtures import firmforge_server, mirror_over_http, poll_build

pytestmark = pytest.mark.slow

REQUESTS = [
    {"version": "24.10.5", "target": "ath79/generic", "profile": "tplink,archer-c7-v5",
     "packages": ["luci"]},
    {"version": "24.10.5", "target": "x86/64", "profile": "generic", "packages": ["luci"]},
]


@pytest.fixture(scope="module")
def mirror_url(mirror: MirrorFixture) -> Iterator[str]:
    with mirror_over_http(mirror.root) as url:
        yield url


def _build(client: httpx.Client, request: dict[str, object]) -> dict[str, object]:
    posted = client.post("/api/v1/build", json=request)
    assert posted.status_code in (200, 202), posted.text
    body = posted.json()
    if posted.status_code == 202:
        body = poll_build(client, body["request_hash"]).json()
    assert body["status"] == 200, body
    return body  # type: ignore[no-any-return]


def _verify(signify: str, key: Path, signature: Path, message: Path) -> None:
    result = subprocess.run(
        [signify, "-V", "-p", str(key), "-x", str(signature), "-m", str(message)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "Signature Verified" in result.stdout + result.stderr


def test_builds_are_signed_with_the_served_key(
    mirror: MirrorFixture, mirror_url: str, tmp_path: Path, signify: str
) -> None:
    data_dir = tmp_path / "serve"
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with firmforge_server(data_dir, mirror_url, mirror.public_key, workers=1) as server, \
            server.client() as client:
        served = client.get("/api/v1/key")
        assert served.status_code == 200
        key = PublicKey.from_text(served.text)
        assert served.headers[FINGERPRINT_HEADER] == key.fingerprint_hex
        overview = client.get("/api/v1/overview").json()
        assert overview["server"]["signing_key_fingerprint"] == key.fingerprint_hex
        assert key.fingerprint_hex != mirror.fingerprint  # ours, not the ImageBuilder's
        key_file = tmp_path / key.fingerprint_hex
        key_file.write_text(served.text)

        for request in REQUESTS:
            body = _build(client, request)
            bin_dir = str(body["bin_dir"])
            store = downloads / bin_dir
            store.mkdir()

            def download(name: str, bin_dir: str = bin_dir, store: Path = store) -> Path:
                answer = client.get(f"/store/{bin_dir}/{name}")
                assert answer.status_code == 200, name
                (store / name).write_bytes(answer.content)
                return store / name

            sums = download("sha256sums")
            _verify(signify, key_file, download("sha256sums.sig"), sums)
            listed = dict(reversed(line.split(" *", 1)) for line in sums.read_text().splitlines())
            signed_types = set()
            for image in body["images"]:  # type: ignore[attr-defined]
                path = download(image["name"])
                data = path.read_bytes()
                assert hashlib.sha256(data).hexdigest() == image["sha256"] == listed[path.name]
                if image["type"] not in SIGNED_IMAGE_TYPES:
                    continue
                signed_types.add(image["type"])
                _verify(signify, key_file, download(f"{image['name']}.sig"), path)
                assert f"{image['name']}.sig" in listed
                chunk = fwtool.read_chunks(data)[0]
                assert chunk.type == fwtool.TYPE_SIGNATURE
                unsigned = strip_signature(data)
                assert hashlib.sha256(unsigned).hexdigest() == image["sha256_unsigned"]
                key.verify(unsigned, chunk.payload.decode())  # the trailer is ours too
            assert signed_types, body["images"]
            profiles = download("profiles.json").read_text()
            for image in body["images"]:  # type: ignore[attr-defined]
                assert image["sha256"] in profiles  # the published profiles.json agrees
            record = Database(f"sqlite:///{data_dir / 'firmforge.db'}").latest_done(bin_dir)
            assert record is not None and "signing_images" in record.stage_timings

    secret = data_dir / "keys" / "firmforge.sec"
    assert secret.stat().st_mode & 0o777 == 0o600
    with firmforge_server(data_dir, mirror_url, mirror.public_key, workers=0) as server, \
            server.client() as client:
        assert client.get("/api/v1/key").text == served.text  # a restart keeps the key
