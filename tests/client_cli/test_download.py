"""Download, resume and verification against a server answered by ``httpx.MockTransport``
(a seam, not a patch), plus image choice and the upstream fallbacks of the API client."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from firmforge.client import Api, LocalReader, read_device
from firmforge.client._check import check_device, pick_version
from firmforge.client._download import choose_image, download_image
from firmforge.client._errors import RefusedError, ServerError, VerificationError
from firmforge.usign import SecretKey
from tests.client_cli.conftest import ROOTS

KEY = SecretKey.from_seed(bytes(range(32)), b"fingerpr")
OTHER_KEY = SecretKey.from_seed(bytes(32), b"stranger")
BIN_DIR = "a" * 64
NAME = "openwrt-24.10.5-ath79-generic-tplink_archer-c7-v5-squashfs-sysupgrade.bin"
DATA = bytes(range(256)) * 400
IMAGE = {"name": NAME, "type": "sysupgrade", "filesystem": "squashfs",
         "sha256": hashlib.sha256(DATA).hexdigest()}


class Quiet:
    def start(self, name: str, total: int | None, offset: int) -> None:
        self.total, self.offset = total, offset

    def advance(self, size: int) -> None:
        pass

    def finish(self) -> None:
        pass


def server(*, data: bytes = DATA, key: SecretKey | None = KEY, honour_range: bool = True,
           signature: str | None = None, seen: list[httpx.Request] | None = None,
           ) -> Callable[[httpx.Request], httpx.Response]:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        path = request.url.path
        if path == "/api/v1/key":
            return (httpx.Response(200, text=key.public_key.to_text()) if key
                    else httpx.Response(404, json={"detail": "Not Found"}))
        if path == f"/store/{BIN_DIR}/{NAME}.sig":
            if key is None:
                return httpx.Response(404)
            return httpx.Response(200, text=signature or key.sign(DATA))
        if path == f"/store/{BIN_DIR}/{NAME}":
            wanted = re.fullmatch(r"bytes=(\d+)-", request.headers.get("range", ""))
            if wanted and honour_range:
                start = int(wanted.group(1))
                if start >= len(data):
                    return httpx.Response(416)
                return httpx.Response(206, content=data[start:], headers={
                    "content-range": f"bytes {start}-{len(data) - 1}/{len(data)}"})
            return httpx.Response(200, content=data)
        return httpx.Response(404, json={"detail": "Not Found"})

    return handle


def api(handler: Callable[[httpx.Request], httpx.Response]) -> Api:
    base = "http://firmforge.test"
    return Api(base, http=httpx.Client(base_url=base, transport=httpx.MockTransport(handler)))


def fetch(out: Path, handler: Callable[[httpx.Request], httpx.Response],
          **kwargs: Any) -> Any:
    with api(handler) as client:
        return download_image(client, BIN_DIR, IMAGE, out, progress=Quiet(), **kwargs)


def test_download_verifies_sha256_and_signature(tmp_path: Path) -> None:
    done = fetch(tmp_path, server())
    assert done.path == tmp_path / NAME and done.path.read_bytes() == DATA
    assert done.signature == "verified" and done.key_fingerprint == KEY.fingerprint.hex()
    assert not (tmp_path / f"{NAME}.part").exists()


def test_a_partial_download_is_resumed_with_range(tmp_path: Path) -> None:
    (tmp_path / f"{NAME}.part").write_bytes(DATA[:1000])
    seen: list[httpx.Request] = []
    done = fetch(tmp_path, server(seen=seen))
    assert done.resumed_from == 1000 and done.path.read_bytes() == DATA
    ranges = [r.headers.get("range") for r in seen if r.url.path.endswith(".bin")]
    assert ranges == ["bytes=1000-"]


def test_a_server_ignoring_range_restarts_the_file(tmp_path: Path) -> None:
    (tmp_path / f"{NAME}.part").write_bytes(b"junk" * 10)
    done = fetch(tmp_path, server(honour_range=False))
    assert done.resumed_from == 0 and done.path.read_bytes() == DATA


def test_a_complete_part_is_verified_without_downloading_again(tmp_path: Path) -> None:
    (tmp_path / f"{NAME}.part").write_bytes(DATA)
    done = fetch(tmp_path, server())  # Range beyond the end: 416
    assert done.path.read_bytes() == DATA


def test_a_corrupted_download_is_deleted_and_reported(tmp_path: Path) -> None:
    tampered = bytearray(DATA)
    tampered[5000] ^= 0xFF
    with pytest.raises(VerificationError, match=r"is corrupted: SHA256 [0-9a-f]{64}"):
        fetch(tmp_path, server(data=bytes(tampered)))
    assert list(tmp_path.iterdir()) == []


def test_a_corrupted_resume_prefix_is_detected(tmp_path: Path) -> None:
    (tmp_path / f"{NAME}.part").write_bytes(b"\x00" * 1000)
    with pytest.raises(VerificationError, match="corrupted"):
        fetch(tmp_path, server())
    assert list(tmp_path.iterdir()) == []


def test_a_bad_signature_deletes_the_file(tmp_path: Path) -> None:
    with pytest.raises(VerificationError, match="bad signature"):
        fetch(tmp_path, server(signature=OTHER_KEY.sign(DATA)))
    assert list(tmp_path.iterdir()) == []


def test_a_pinned_key_must_have_signed_the_image(tmp_path: Path) -> None:
    with pytest.raises(VerificationError, match=rf"bad signature.*{b'stranger'.hex()}"):
        fetch(tmp_path, server(), pinned_key=OTHER_KEY.public_key)
    done = fetch(tmp_path, server(), pinned_key=KEY.public_key)
    assert done.signature == "verified"


def test_no_key_on_the_server_skips_the_signature_with_a_note(tmp_path: Path) -> None:
    done = fetch(tmp_path, server(key=None))
    assert done.signature == "skipped" and "verification was skipped" in (done.note or "")
    assert done.path.read_bytes() == DATA


def test_an_unsafe_image_name_is_refused(tmp_path: Path) -> None:
    with api(server()) as client, pytest.raises(ServerError, match="unusable image name"):
        download_image(client, BIN_DIR, {**IMAGE, "name": "../../etc/passwd"}, tmp_path,
                       progress=Quiet())


def test_image_choice_follows_sysupgrade() -> None:
    images = [{"name": f"{t}-{fs}", "type": t, "filesystem": fs}
              for t in ("combined", "combined-efi", "rootfs") for fs in ("ext4", "squashfs")]
    assert choose_image(images, image_type=None, filesystem=None, efi=False)["name"] == (
        "combined-squashfs")
    assert choose_image(images, image_type=None, filesystem="ext4", efi=True)["name"] == (
        "combined-efi-ext4")
    assert choose_image(images, image_type="rootfs", filesystem=None, efi=False)["name"] == (
        "rootfs-squashfs")


def test_overview_fallback_when_the_server_has_no_upgrade_check() -> None:
    overview = {"latest": ["24.10.5", "23.05.6"], "branches": {
        "24.10": {"package_changes": [{"source": "auc", "target": "owut", "revision": 1}]},
        "23.05": {"package_changes": []}}}

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/overview":
            return httpx.Response(200, json=overview)
        return httpx.Response(404, json={"detail": "Not Found"})

    facts = read_device(LocalReader(ROOTS / "opkg-23.05"))
    with api(handle) as client:
        result = check_device(client, facts)
    assert result["source"] == "overview" and result["status"] == "upgrade_available"
    assert result["upgrade"]["version"] == "23.05.6"
    assert result["stable"] == {"version": "24.10.5", "branch": "24.10", "channel": "unknown",
                                "package_changes": [{"source": "auc", "target": "owut"}]}
    assert pick_version(result, None)["version"] == "23.05.6"
    assert pick_version(result, "24.10.5")["package_changes"][0]["target"] == "owut"


def test_a_refused_check_carries_the_servers_detail() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"detail": "Unsupported version: 25.12.0"})

    facts = read_device(LocalReader(ROOTS / "apk-25.12"))
    with api(handle) as client, pytest.raises(RefusedError, match="Unsupported version"):
        check_device(client, facts)
