"""The transport details unmodified clients rely on (research/asu-clients.md §1): one CORS
header on every response, preflights, ignored cache-buster query strings, doubled slashes.

The app runs in process against a real embedded Redis and the synthetic mirror over HTTP;
the middleware's own corner cases run against a bare ASGI app.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from firmforge.api import create_app
from firmforge.api._compat import CompatMiddleware
from firmforge.api._hits import render_json
from firmforge.config import Settings
from firmforge.server import make_services

VALID = {"version": "24.10.5", "target": "ath79/generic", "profile": "tplink_archer-c7-v5"}
BASE = "http://testserver"
BIN_DIR = "ab" * 32


@pytest.fixture
def client(settings: Settings, tmp_path: Path) -> Iterator[TestClient]:
    services = make_services(settings, str(settings.redis_url))
    services.queue.redis.flushdb()
    source = tmp_path / "build"
    source.mkdir()
    (source / "firmware.bin").write_bytes(b"\x00firmware" * 100)
    services.store.publish(BIN_DIR, source)
    app = create_app(services)

    @app.get("/test-only/boom")
    def boom() -> None:
        raise RuntimeError("an unexpected error")

    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def finished(client: TestClient) -> tuple[str, bytes]:
    """A queued request whose finished 200 body the cache-hit layer holds in memory."""
    queued = client.post("/api/v1/build", json={**VALID, "packages": ["htop"]})
    assert queued.status_code == 202
    digest = queued.json()["request_hash"]
    body = render_json({"status": 200, "detail": "done", "request_hash": digest,
                        "bin_dir": digest, "images": []})
    client.app.state.services.finished.put(digest, body)  # type: ignore[attr-defined]
    return digest, body


def one_origin_header(response: httpx.Response) -> bool:
    return response.headers.get_list("access-control-allow-origin") == ["*"]


# -- CORS -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "json", "status"),
    [
        ("GET", "/json/v1/overview.json", None, 200),
        ("GET", "/api/v1/overview", None, 200),
        ("GET", "/json/v1/releases/24.10.5/packages/mips_24kc-index.json", None, 200),
        ("GET", "/api/v1/revision/24.10.5/ath79/generic", None, 200),
        ("GET", "/api/v1/revision/nope/ath79/generic", None, 400),
        ("GET", "/api/v1/stats", None, 200),
        ("POST", "/api/v1/build", VALID, 202),
        ("POST", "/api/v1/build", {**VALID, "version": "99.99.99"}, 400),
        ("POST", "/api/v1/build", {**VALID, "packages": "x"}, 422),
        ("GET", f"/api/v1/build/{'0' * 64}", None, 404),
        ("HEAD", f"/api/v1/build/{'0' * 64}", None, 404),
        ("POST", f"/api/v1/build/{'0' * 64}", VALID, 405),
        ("GET", f"/store/{BIN_DIR}/firmware.bin", None, 200),
        ("GET", f"/store/{BIN_DIR}/missing.bin", None, 404),
        ("GET", "/no/such/route", None, 404),
        ("GET", "/test-only/boom", None, 500),
    ],
)
def test_exactly_one_origin_header_on_every_response(
    client: TestClient, method: str, url: str, json: Any, status: int
) -> None:
    response = client.request(method, url, json=json)
    assert response.status_code == status
    assert one_origin_header(response), response.headers
    if status >= 400 and method != "HEAD":
        assert isinstance(response.json()["detail"], str)


def test_origin_header_on_cache_hits(client: TestClient) -> None:
    digest, body = finished(client)
    for response in (client.get(f"/api/v1/build/{digest}"),
                     client.head(f"/api/v1/build/{digest}"),
                     client.post("/api/v1/build", json={**VALID, "packages": ["htop"]})):
        assert response.status_code == 200
        assert one_origin_header(response)
    assert client.get(f"/api/v1/build/{digest}").content == body


@pytest.mark.parametrize(
    "url", ["/api/v1/build", f"/api/v1/build/{'0' * 64}", "/json/v1/overview.json",
            f"/store/{BIN_DIR}/firmware.bin"])
def test_preflight(client: TestClient, url: str) -> None:
    response = client.options(url, headers={
        "Origin": "http://192.168.1.1",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    })
    assert response.status_code == 204
    assert one_origin_header(response)
    assert response.headers["access-control-allow-methods"] == "GET, POST, HEAD, OPTIONS"
    assert response.headers["access-control-allow-headers"] == "*"


def test_queue_headers_are_readable_cross_origin(client: TestClient) -> None:
    response = client.post("/api/v1/build", json=VALID)
    exposed = response.headers["access-control-expose-headers"].lower()
    assert "x-imagebuilder-status" in exposed and "x-queue-position" in exposed


# -- cache-buster query strings ---------------------------------------------------------------


@pytest.mark.parametrize("query", ["?1755860000000", "?_=123", "?a=1&b&c=%ff"])
def test_query_strings_are_ignored_on_gets(client: TestClient, query: str) -> None:
    for url in ("/json/v1/overview.json", "/api/v1/overview", "/api/overview",
                "/json/v1/branches.json", "/api/v1/revision/24.10.5/ath79/generic",
                "/json/v1/releases/24.10.5/targets/ath79/generic/index.json",
                "/json/v1/releases/24.10.5/targets/ath79/generic/8dev_carambola2.json"):
        plain, busted = client.get(url), client.get(url + query)
        assert busted.status_code == plain.status_code == 200, url
        assert busted.content == plain.content, url
    download = client.get(f"/store/{BIN_DIR}/firmware.bin{query}")
    assert download.status_code == 200 and download.content == b"\x00firmware" * 100
    assert download.headers["content-length"] == "900"


def test_query_string_is_ignored_on_build_post_and_poll(client: TestClient) -> None:
    fields = {**VALID, "packages": ["tcpdump"]}
    busted = client.post("/api/v1/build?1755860000000", json=fields)
    assert busted.status_code == 202
    plain = client.post("/api/v1/build", json=fields)
    assert plain.json()["request_hash"] == busted.json()["request_hash"]
    polled = client.get(f"/api/v1/build/{plain.json()['request_hash']}?_=1")
    assert polled.status_code == 202 and polled.json()["detail"] == "queued"


def test_query_string_is_ignored_on_a_cache_hit(client: TestClient) -> None:
    digest, body = finished(client)
    response = client.get(f"/api/v1/build/{digest}?1755860000000")
    assert response.status_code == 200 and response.content == body
    posted = client.post("/api/v1/build?_=9", json={**VALID, "packages": ["htop"]})
    assert posted.status_code == 200 and posted.content == body


# -- repeated slashes -------------------------------------------------------------------------


def test_repeated_slashes_on_gets(client: TestClient) -> None:
    response = client.get(f"{BASE}//json//v1/overview.json", follow_redirects=False)
    assert response.status_code == 200
    assert response.json() == client.get("/json/v1/overview.json").json()
    legacy = client.get(f"{BASE}//api/overview?1755860000000", follow_redirects=False)
    assert legacy.status_code == 200 and legacy.json()["latest"]
    download = client.get(f"{BASE}//store//{BIN_DIR}//firmware.bin", follow_redirects=False)
    assert download.status_code == 200 and len(download.content) == 900


def test_repeated_slashes_on_build_post_and_poll(client: TestClient) -> None:
    fields = {**VALID, "packages": ["iperf3"]}
    posted = client.post(f"{BASE}//api//v1/build", json=fields, follow_redirects=False)
    assert posted.status_code == 202 and one_origin_header(posted)
    digest = posted.json()["request_hash"]
    assert client.post("/api/v1/build", json=fields).json()["request_hash"] == digest
    polled = client.get(f"{BASE}//api/v1/build/{digest}", follow_redirects=False)
    assert polled.status_code == 202
    wrong_method = client.post(f"{BASE}//api/v1//build/{digest}", json=fields,
                               follow_redirects=False)
    assert wrong_method.status_code == 405
    assert isinstance(wrong_method.json()["detail"], str)


def test_repeated_slashes_on_a_cache_hit(client: TestClient) -> None:
    digest, body = finished(client)
    assert client.get(f"{BASE}//api//v1/build/{digest}").content == body
    posted = client.post(f"{BASE}//api/v1/build", json={**VALID, "packages": ["htop"]})
    assert posted.status_code == 200 and posted.content == body


# -- the middleware on its own ----------------------------------------------------------------


def run(app: Any, path: str, query: bytes = b"", method: str = "GET") -> tuple[
        list[dict[str, Any]], dict[str, Any]]:
    """Send one request through ``CompatMiddleware(app)``; the messages sent and the scope
    the app saw."""
    seen: dict[str, Any] = {}
    sent: list[dict[str, Any]] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.update(scope)
        await app(scope, receive, send)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(),
             "query_string": query, "headers": []}
    asyncio.run(CompatMiddleware(inner)(scope, receive, send))
    return sent, seen


async def answers_with_two_origin_headers(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"access-control-allow-origin", b"https://example.org"),
        (b"content-type", b"text/plain"),
        (b"Access-Control-Allow-Origin", b"*"),
    ]})
    await send({"type": "http.response.body", "body": b"ok"})


def test_origin_headers_from_inside_are_replaced_by_one() -> None:
    sent, _ = run(answers_with_two_origin_headers, "/anything")
    headers = sent[0]["headers"]
    origins = [v for k, v in headers if k.lower() == b"access-control-allow-origin"]
    assert origins == [b"*"]
    assert (b"content-type", b"text/plain") in headers


def test_paths_and_queries_the_app_sees() -> None:
    app = answers_with_two_origin_headers
    _, seen = run(app, "//api//v1///build", b"1755860000000")
    assert seen["path"] == "/api/v1/build" and seen["raw_path"] == b"/api/v1/build"
    assert seen["query_string"] == b""
    _, seen = run(app, "/api/v1/top-packages", b"branch=24.10&n=5")
    assert seen["query_string"] == b"branch=24.10&n=5"  # a route with real parameters
    _, seen = run(app, "/stats", b"page=2")
    assert seen["query_string"] == b"page=2"  # pages outside the ASU surface keep theirs
    _, seen = run(app, "/json/v1/overview.json")
    assert seen["path"] == "/json/v1/overview.json"


def test_preflight_never_reaches_the_app() -> None:
    sent, seen = run(answers_with_two_origin_headers, "//api/v1/build", method="OPTIONS")
    assert not seen
    assert sent[0]["status"] == 204 and sent[1]["body"] == b""
