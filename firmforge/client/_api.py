"""The server's HTTP API as the client uses it: firmforge's routes, upstream ASU's v1 where
firmforge-only ones are missing.

    with Api("https://sysupgrade.openwrt.org") as api:
        state = api.post_build({"version": "24.10.5", "target": "ath79/generic", ...})
        while not state.finished:
            state = api.build_status(state.request_hash)

Answers become data (``BuildState``) or a ``ClientError`` with the server's ``detail``: 4xx →
``RefusedError``, a failed build (500 with ``detail``) → ``BuildFailedError``, anything else
unexpected → ``ServerError``. Upstream servers lack ``/api/v1/upgrade-check``,
``/api/v1/key`` and ``/api/v1/build/{hash}/info``; the methods for those return ``None``
then, and callers fall back (overview, no signature check, the plain build status).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from firmforge import __version__
from firmforge.client._errors import (
    BuildFailedError,
    RefusedError,
    ServerError,
    UsageError,
    VerificationError,
)

__all__ = ["CLIENT", "Api", "BuildState", "check_hash"]

CLIENT = f"firmforge-client/{__version__}"
"""The ``client`` field and User-Agent the server records for our builds."""

DEFAULT_TIMEOUT = 30.0
"""Seconds one HTTP request may take (a build is polled, never waited for in one request)."""

_HASH = re.compile(r"^[0-9a-f]{64}$")
_MISSING_ROUTE = (404, 405)


def check_hash(request_hash: str) -> str:
    """A request hash as typed by a user: 64 hex digits (case folded), else ``UsageError``."""
    folded = request_hash.strip().lower()
    if not _HASH.fullmatch(folded):
        raise UsageError(f"not a request hash: {request_hash!r} (want 64 hex digits)")
    return folded


@dataclass(frozen=True)
class BuildState:
    """One answer about a build: 202 queued/building, or 200 done."""

    status: int
    body: dict[str, Any]

    @property
    def request_hash(self) -> str:
        return str(self.body.get("request_hash") or "")

    @property
    def finished(self) -> bool:
        return self.status == 200

    @property
    def queue_position(self) -> int | None:
        position = self.body.get("queue_position")
        return position if isinstance(position, int) else None

    @property
    def stage(self) -> str:
        """``queued`` or the ImageBuilder stage (``imagebuilder_status``), ``done`` when done."""
        if self.finished:
            return "done"
        if self.queue_position is not None or self.body.get("detail") == "queued":
            return "queued"
        return str(self.body.get("imagebuilder_status") or self.body.get("detail") or "started")


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _detail(response: httpx.Response) -> str:
    body = _json(response)
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str) and detail:
        return detail
    if detail is not None:
        return str(detail)
    text = response.text.strip()
    return text[:300] if text else f"HTTP {response.status_code}"


class Api:
    """One server; a context manager around its ``httpx.Client`` (pass ``http`` in tests)."""

    def __init__(self, base_url: str, *, http: httpx.Client | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        url = base_url.strip().rstrip("/")
        if not re.match(r"^https?://[^/\s]+", url):
            raise UsageError(f"--server must be an http:// or https:// URL, not {base_url!r}")
        self.base_url = url
        self.http = http or httpx.Client(
            base_url=url, timeout=timeout, headers={"User-Agent": CLIENT},
            follow_redirects=True,
        )

    def __enter__(self) -> Api:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise ServerError(f"{self.base_url} did not answer {method} {path} in time") from exc
        except httpx.HTTPError as exc:
            raise ServerError(f"cannot reach {self.base_url}: {exc}") from exc

    def _refused(self, response: httpx.Response) -> RefusedError:
        return RefusedError(f"the server refused the request ({response.status_code}): "
                            f"{_detail(response)}", status=response.status_code)

    def _unexpected(self, response: httpx.Response, what: str) -> ServerError:
        return ServerError(f"{what}: unexpected answer {response.status_code} from "
                           f"{self.base_url}: {_detail(response)}")

    def _document(self, response: httpx.Response, what: str) -> dict[str, Any]:
        body = _json(response)
        if not isinstance(body, dict):
            raise ServerError(f"{what}: the server's answer is not a JSON object")
        return body

    # --- checks -----------------------------------------------------------------------------

    def upgrade_check(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """firmforge's ``POST /api/v1/upgrade-check``; ``None`` where the route is missing."""
        response = self._send("POST", "/api/v1/upgrade-check", json=body)
        if response.status_code in _MISSING_ROUTE:
            return None
        if 400 <= response.status_code < 500:
            raise self._refused(response)
        if response.status_code != 200:
            raise self._unexpected(response, "upgrade check")
        return self._document(response, "upgrade check")

    def overview(self) -> dict[str, Any]:
        """``GET /api/v1/overview`` (upstream redirects it to ``/json/v1/overview.json``)."""
        response = self._send("GET", "/api/v1/overview")
        if response.status_code != 200:
            raise self._unexpected(response, "overview")
        return self._document(response, "overview")

    # --- builds -----------------------------------------------------------------------------

    def _state(self, response: httpx.Response, request_hash: str | None) -> BuildState:
        status = response.status_code
        if status in (200, 202):
            body = self._document(response, "build")
            body.setdefault("request_hash", request_hash)
            return BuildState(status, body)
        if status == 500:
            body = _json(response)
            if isinstance(body, dict) and "detail" in body:
                stage = body.get("failed_stage") or None
                where = f" at stage {stage}" if stage else ""
                raise BuildFailedError(
                    f"the build failed{where}: {_detail(response)}",
                    request_hash=str(body.get("request_hash") or request_hash or "") or None,
                    failed_stage=stage,
                    stderr=str(body.get("stderr") or ""),
                )
        if status == 404 and request_hash:
            raise RefusedError(f"the server knows no build {request_hash} (expired or never "
                               "requested)", status=404)
        if status in (529, 503):
            raise ServerError(f"the server's build queue is full ({status}); try again later")
        if 400 <= status < 500:
            raise self._refused(response)
        raise self._unexpected(response, "build")

    def post_build(self, body: dict[str, Any]) -> BuildState:
        return self._state(self._send("POST", "/api/v1/build", json=body), None)

    def build_status(self, request_hash: str) -> BuildState:
        return self._state(self._send("GET", f"/api/v1/build/{request_hash}"), request_hash)

    def build_info(self, request_hash: str) -> dict[str, Any] | None:
        """firmforge's ``/api/v1/build/{hash}/info``; ``None`` when the server has none."""
        response = self._send("GET", f"/api/v1/build/{request_hash}/info")
        if response.status_code in _MISSING_ROUTE:
            return None  # upstream (no route) or no build record yet: the caller falls back
        if response.status_code != 200:
            raise self._unexpected(response, "build info")
        return self._document(response, "build info")

    # --- files and keys ---------------------------------------------------------------------

    def public_key(self) -> str | None:
        """The server's usign public key (``GET /api/v1/key``); ``None`` if it publishes none."""
        response = self._send("GET", "/api/v1/key")
        if response.status_code in _MISSING_ROUTE:
            return None
        if response.status_code != 200:
            raise self._unexpected(response, "signing key")
        return response.text

    def store_text(self, bin_dir: str, name: str) -> str | None:
        """A small store file (a ``.sig``); ``None`` if the store has no such file."""
        response = self._send("GET", f"/store/{bin_dir}/{name}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._unexpected(response, f"store file {name}")
        return response.text

    @contextmanager
    def stream_store(self, bin_dir: str, name: str,
                     offset: int = 0) -> Iterator[httpx.Response]:
        """``GET /store/{bin_dir}/{name}``, from byte ``offset`` (a ``Range`` request)."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            with self.http.stream("GET", f"/store/{bin_dir}/{name}", headers=headers,
                                  timeout=httpx.Timeout(DEFAULT_TIMEOUT, read=120)) as response:
                yield response
        except httpx.HTTPError as exc:
            raise VerificationError(f"downloading {name} from {self.base_url} failed: {exc}",
                                    hint="run the same command again to resume") from exc
