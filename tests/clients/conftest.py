"""One real ``firmforge serve`` for every client replay, and what all clients do alike.

The server runs as a child process against the synthetic mirror served over HTTP, once per test
session (per xdist worker), so the client modules share it and its ImageBuilder cache.

The helpers encode the cross-cutting rules of research/asu-clients.md §1: browsers preflight
JSON requests and need exactly one ``Access-Control-Allow-Origin``; LuCI appends ``?<epoch-ms>``
to every URL; error ``detail`` must be a string; auc compares ``Content-Length`` with the file
it got and every client compares the image's SHA256 with ``images[].sha256``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.conftest import MirrorFixture
from tests.server_fixtures import RunningServer, firmforge_server, mirror_over_http

# Stages the LuCI app has a progress text for; any other ``imagebuilder_status`` in a 202
# without ``queue_position`` makes ``steps[status]`` undefined and throws in the UI
# (research/asu-clients.md §2.2 item 4 and §2.4).
LUCI_STEPS: frozenset[str] = frozenset({
    "init", "container_setup", "validate_revision", "validate_manifest",
    "calculate_packages_hash", "building_image", "signing_images", "done", "failed",
    "download_imagebuilder", "unpack_imagebuilder",
})
LUCI_2305_STEPS: frozenset[str] = frozenset({
    "init", "download_imagebuilder", "unpack_imagebuilder", "calculate_packages_hash",
    "building_image",
})

# What ``rpc-sys packagelist`` reports is the installed package, not the virtual name that
# ``default_packages`` lists (nftables is provided by nftables-json).
INSTALLED_NAME: dict[str, str] = {"nftables": "nftables-json"}

HEX64 = frozenset("0123456789abcdef")


@pytest.fixture(scope="session")
def clients_mirror_url(mirror: MirrorFixture) -> Iterator[str]:
    """The synthetic mirror over HTTP: the server's upstream and the clients' download mirror."""
    with mirror_over_http(mirror.root) as url:
        yield url


@pytest.fixture(scope="session")
def asu(
    mirror: MirrorFixture, clients_mirror_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """``firmforge serve`` with two build workers, shared by all client modules."""
    with firmforge_server(tmp_path_factory.mktemp("clients-serve"), clients_mirror_url,
                          mirror.public_key, workers=2) as running:
        yield running


def epoch_ms() -> str:
    """LuCI's cache-buster: ``(new Date()).getTime()``."""
    return str(time.time_ns() // 1_000_000)


def with_buster(url: str) -> str:
    """``url`` plus ``?<ms>`` (or ``&<ms>``), as LuCI's ``request()`` sends every URL."""
    return url + ("&" if "?" in url else "?") + epoch_ms()


def is_sha256(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and set(value) <= HEX64


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Findings:
    """Compatibility problems collected along a whole client flow, reported together.

    The flow goes on past a problem the client would survive (a missing header, a status text
    it cannot display), so one run names every gap, not only the first.
    """

    problems: list[str] = field(default_factory=list)

    def expect(self, condition: object, problem: str) -> bool:
        if not condition and problem not in self.problems:
            self.problems.append(problem)
        return bool(condition)

    def cors(self, response: httpx.Response, origin: str) -> None:
        """Exactly one ``Access-Control-Allow-Origin``, matching ``origin`` (or ``*``)."""
        for hop in [*response.history, response]:
            values = hop.headers.get_list("access-control-allow-origin")
            self.expect(
                len(values) == 1 and values[0] in ("*", origin),
                f"{hop.request.method} {hop.request.url.raw_path.decode()}: "
                f"Access-Control-Allow-Origin {values!r}, want exactly one '*' or {origin!r}",
            )

    def preflight(self, http: httpx.Client, url: str, method: str, origin: str,
                  headers: str = "content-type") -> None:
        """The browser's ``OPTIONS`` before a non-simple request; it must allow the request."""
        response = http.options(url, headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        })
        where = f"OPTIONS {httpx.URL(url).raw_path.decode()}"
        if not self.expect(200 <= response.status_code < 300,
                           f"{where}: status {response.status_code}, want 2xx"):
            return
        self.cors(response, origin)
        methods = _tokens(response.headers.get("access-control-allow-methods", "")).upper()
        self.expect("*" in methods.split() or method.upper() in methods.split(),
                    f"{where}: Access-Control-Allow-Methods {methods!r} lacks {method}")
        allowed = _tokens(response.headers.get("access-control-allow-headers", "")).split()
        for name in _tokens(headers).split():
            self.expect("*" in allowed or name in allowed,
                        f"{where}: Access-Control-Allow-Headers {allowed} lacks {name}")

    def string_detail(self, response: httpx.Response, *mentions: str) -> str:
        """The error body's ``detail``: a string (clients call string methods on it)."""
        try:
            body = response.json()
        except ValueError:
            self.expect(False, f"error body is not JSON: {response.text[:200]!r}")
            return ""
        detail = body.get("detail") if isinstance(body, dict) else None
        if not self.expect(isinstance(detail, str),
                           f"detail is {type(detail).__name__}, want str: {detail!r}"):
            return ""
        for mention in mentions:
            self.expect(mention in detail, f"detail {detail!r} does not name {mention!r}")
        return str(detail)

    def check(self) -> None:
        assert not self.problems, "client compatibility problems:\n- " + "\n- ".join(
            self.problems)


def _tokens(value: str) -> str:
    """A comma-separated header list as lower-case, space-separated tokens."""
    return " ".join(part.strip().lower() for part in value.split(",") if part.strip())


def installed_packages(profiles: dict[str, Any], profile_id: str,
                       extra: Iterable[str] = ()) -> list[str]:
    """What ``rpc-sys packagelist`` (``all=false``) reports on a device flashed with the stock
    image of ``profiles`` (``default_packages`` + ``device_packages``, ``-pkg`` removed) on
    which the user then installed ``extra``: sorted names, no versions."""
    wanted: dict[str, None] = {}
    for name in [*profiles["default_packages"],
                 *profiles["profiles"][profile_id].get("device_packages", [])]:
        if name.startswith("-"):
            wanted.pop(name[1:], None)
        else:
            wanted[INSTALLED_NAME.get(name, name)] = None
    for name in extra:
        wanted[name] = None
    return sorted(wanted)


def pick_images(images: list[dict[str, Any]], filesystem: str,
                types: Iterable[str]) -> list[dict[str, Any]]:
    """Images of ``filesystem`` whose type is one of ``types``."""
    accepted = set(types)
    return [i for i in images if i.get("filesystem") == filesystem and i.get("type") in accepted]


def image_problems(images: object) -> list[str]:
    """Fields every client reads from ``images[]``."""
    if not isinstance(images, list) or not images:
        return [f"images is {images!r}, want a non-empty list"]
    problems = []
    for image in images:
        for key in ("name", "type", "filesystem"):
            if not isinstance(image.get(key), str) or not image.get(key):
                problems.append(f"image {image.get('name')!r}: {key} is {image.get(key)!r}")
        for key in ("sha256", "sha256_unsigned"):
            if not is_sha256(image.get(key)):
                problems.append(f"image {image.get('name')!r}: {key} is {image.get(key)!r}")
    return problems


def download(http: httpx.Client, url: str, image: dict[str, Any],
             headers: dict[str, str] | None = None) -> httpx.Response:
    """Fetch a built image the way auc and LuCI check it: ``Content-Length`` equals the bytes
    received (no chunked transfer) and their SHA256 is ``images[].sha256``."""
    response = http.get(url, headers=headers or {}, follow_redirects=True)
    assert response.status_code == 200, f"GET {url}: {response.status_code} {response.text[:200]}"
    assert "content-length" in response.headers, f"GET {url}: no Content-Length"
    assert int(response.headers["content-length"]) == len(response.content)
    assert sha256_hex(response.content) == image["sha256"], f"{url}: SHA256 mismatch"
    return response
