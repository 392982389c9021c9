"""Fixtures for ``firmforge client``: device roots, a fake ``ssh``, the real CLI process, and an
"upstream ASU" view of a real firmforge server (firmforge-only routes answer 404)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clients.conftest import installed_packages
from tests.conftest import MirrorFixture

ROOTS = Path(__file__).parent / "roots"
FAKE_SSH = Path(__file__).parent / "fake_ssh.py"
_BIN = Path(sys.executable).parent / "firmforge"
FIRMFORGE = [str(_BIN)] if _BIN.exists() else [sys.executable, "-m", "firmforge"]

# ``default_packages`` lists the virtual name; the device's opkg status holds the provider
# routes upstream ASU does not have
FIRMFORGE_ONLY = ("/api/v1/upgrade-check", "/api/v1/key")


def copy_root(name: str, destination: Path) -> Path:
    """A writable copy of a checked-in fixture root."""
    shutil.copytree(ROOTS / name, destination)
    return destination


def run_client(*args: str, env: dict[str, str] | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``firmforge client ARGS`` as a real process (stderr is not a terminal: plain lines)."""
    return subprocess.run([*FIRMFORGE, "client", *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200", **(env or {})},
                          timeout=timeout, check=False)


def assert_clean(result: subprocess.CompletedProcess[str]) -> None:
    """A failure is a message, never a traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout, result.stdout


@dataclass
class FakeSsh:
    bin_dir: Path
    root: Path
    log: Path
    target: str

    @property
    def env(self) -> dict[str, str]:
        return {"PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
                "FAKE_SSH_ROOT": str(self.root), "FAKE_SSH_LOG": str(self.log),
                "FAKE_SSH_TARGET": self.target}

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def fake_ssh(tmp_path: Path) -> FakeSsh:
    """An ``ssh`` executable serving a copy of the opkg 24.10 root as ``root@router``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ssh = bin_dir / "ssh"
    ssh.write_text(f"#!{sys.executable}\n" + FAKE_SSH.read_text())
    ssh.chmod(0o755)
    root = copy_root("opkg-24.10", tmp_path / "router")
    return FakeSsh(bin_dir, root, tmp_path / "ssh.log", "root@router")


# --- device roots written from the synthetic mirror ---------------------------------------------


def _packages(mirror: MirrorFixture, version: str, target: str) -> dict[str, dict[str, str]]:
    """Every package of ``version``'s target and feeds: ``{name: control fields}``."""
    arch = json.loads((mirror.root / "releases" / version / ".targets.json").read_text())[target]
    target_dir = mirror.target_dir(version, target)
    files = [target_dir / "packages" / "Packages",
             *sorted(target_dir.glob("kmods/*/Packages")),
             *sorted((mirror.root / "releases" / version / "packages" / arch).glob("*/Packages"))]
    found: dict[str, dict[str, str]] = {}
    for path in files:
        for stanza in path.read_text().split("\n\n"):
            fields = dict(line.split(": ", 1) for line in stanza.splitlines()
                          if ": " in line and not line.startswith(" "))
            if "Package" in fields:
                found.setdefault(fields["Package"], fields)
                abi = fields.get("ABIVersion")
                if abi and fields["Package"].endswith(abi):
                    found.setdefault(fields["Package"][: -len(abi)], fields)
    return found


def write_device_root(mirror: MirrorFixture, destination: Path, *, version: str,
                      target: str, profile: str, board: str, extra: tuple[str, ...] = (),
                      older: dict[str, str] | None = None) -> Path:
    """A router flashed with the stock ``version`` image of ``profile`` on which the user then
    installed ``extra``: 24.10-style opkg status (``ok`` flags, deps ``Auto-Installed``).
    ``older`` sets installed versions (to make package updates)."""
    profiles = json.loads((mirror.target_dir(version, target) / "profiles.json").read_text())
    index = _packages(mirror, version, target)
    stanzas = []
    for name in dict.fromkeys([*installed_packages(profiles, profile), *extra]):
        # libc and libgcc ship inside the ImageBuilder, not in the indexes
        fields = index.get(name, {"Package": name, "Version": "1.2.5-r4"})
        lines = [f"Package: {fields['Package']}"]
        if fields.get("ABIVersion"):
            lines.append(f"ABIVersion: {fields['ABIVersion']}")
        installed = (older or {}).get(name, fields["Version"])
        flags = "user" if name in extra else "ok"
        lines += [f"Version: {installed}", f"Status: install {flags} installed",
                  f"Architecture: {fields.get('Architecture', 'all')}"]
        stanzas.append("\n".join(lines))
    # a dependency: installed, but not chosen by anyone
    stanzas.append("Package: libubox20240329\nABIVersion: 20240329\n"
                   "Version: 2024.03.29~eb9bcb64-r1\nStatus: install ok installed\n"
                   "Architecture: mips_24kc\nAuto-Installed: yes")
    (destination / "etc").mkdir(parents=True)
    (destination / "usr/lib/opkg").mkdir(parents=True)
    (destination / "etc/board.json").write_text(json.dumps({"model": {"id": board}}))
    (destination / "etc/openwrt_release").write_text(
        f"DISTRIB_ID='OpenWrt'\nDISTRIB_RELEASE='{version}'\n"
        f"DISTRIB_REVISION='{profiles['version_code']}'\nDISTRIB_TARGET='{target}'\n")
    (destination / "usr/lib/opkg/status").write_text("\n\n".join(stanzas) + "\n")
    return destination


# --- an upstream-ASU-like server: firmforge without its own routes ------------------------------


class _UpstreamView(BaseHTTPRequestHandler):
    backend: str = ""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _forward(self) -> None:
        path = self.path.split("?", 1)[0]
        if path in FIRMFORGE_ONLY or (path.startswith("/api/v1/build/")
                                      and path.endswith("/info")):
            self._answer(404, {"content-type": "application/json"}, b'{"detail":"Not Found"}')
            return
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() in ("content-type", "range")}
        upstream = httpx.request(self.command, self.backend + self.path, content=body,
                                 headers=headers, timeout=60)
        self._answer(upstream.status_code, upstream.headers, upstream.content)

    def _answer(self, status: int, headers: Any, content: bytes) -> None:
        self.send_response(status)
        for key in ("content-type", "content-range", "x-imagebuilder-status"):
            if key in headers:
                self.send_header(key, headers[key])
        self.send_header("content-length", str(len(content)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)

    do_GET = do_POST = do_HEAD = _forward


@pytest.fixture
def upstream_view() -> Iterator[Any]:
    """``view(backend_url) -> url``: serves ``backend`` minus firmforge's own routes."""
    servers: list[ThreadingHTTPServer] = []

    def view(backend: str) -> str:
        handler = type("Handler", (_UpstreamView,), {"backend": backend})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield view
    for server in servers:
        server.shutdown()
        server.server_close()
