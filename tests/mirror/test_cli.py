"""``firmforge mirror generate`` and ``firmforge mirror serve`` as a user runs them."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from firmforge.mirror import MirrorError, generate_mirror, mirror_key
from tests.conftest import SEED, MirrorFixture

FIRMFORGE = [sys.executable, "-m", "firmforge"]


def tree_digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.slow
def test_generate_is_deterministic_and_prints_the_key(
    mirror: MirrorFixture, tmp_path: Path
) -> None:
    out = tmp_path / "mirror"
    result = subprocess.run(
        [*FIRMFORGE, "mirror", "generate", str(out), "--seed", str(SEED)],
        capture_output=True,
        text=True,
        check=True,
    )
    key_path = tmp_path / "mirror.pub"
    assert f"public key: {key_path}" in result.stdout
    assert mirror.fingerprint in result.stdout
    assert key_path.read_bytes() == mirror.public_key.read_bytes()
    assert tree_digests(out) == tree_digests(mirror.root)  # same seed, same bytes


def test_different_seeds_give_different_keys() -> None:
    assert mirror_key(1).public_key != mirror_key(SEED).public_key


def test_generate_refuses_a_directory_that_holds_something_else(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(MirrorError, match="not empty"):
        generate_mirror(tmp_path)
    result = subprocess.run(
        [*FIRMFORGE, "mirror", "generate", str(tmp_path)], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "not empty" in result.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_over_http(mirror: MirrorFixture) -> None:
    port = _free_port()
    server = subprocess.Popen(
        [*FIRMFORGE, "mirror", "serve", str(mirror.root), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                body = urllib.request.urlopen(f"{base}/.versions.json", timeout=5).read()
                break
            except urllib.error.URLError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.1)
        assert json.loads(body) == json.loads((mirror.root / ".versions.json").read_text())
        tarball = mirror.imagebuilder_tarball("24.10.5", "x86/64")
        relative = tarball.relative_to(mirror.root).as_posix()
        with urllib.request.urlopen(f"{base}/{relative}", timeout=30) as response:
            assert response.read() == tarball.read_bytes()
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{base}/releases/99.99.0/.targets.json", timeout=5)
        assert missing.value.code == 404
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_serve_refuses_a_directory_without_a_mirror(tmp_path: Path) -> None:
    result = subprocess.run(
        [*FIRMFORGE, "mirror", "serve", str(tmp_path), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "no mirror" in result.stderr


def test_generate_the_libremesh_flavour(tmp_path: Path) -> None:
    out = tmp_path / "libremesh"
    result = subprocess.run(
        [*FIRMFORGE, "mirror", "generate", str(out), "--flavour", "libremesh"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"public key: {tmp_path / 'libremesh.pub'}" in result.stdout
    assert (out / "master/openwrt-24.10/mips_24kc/Packages.sig").is_file()
    assert (out / "profiles/openwrt-23.05/x86_64/Packages").is_file()
    assert not (out / ".versions.json").exists()  # a feed host, not a release mirror
