"""Extra package feeds of a build request: ``repositories``, ``repository_keys``,
``repositories_mode`` (research/asu-upstream.md §1.4, §1.8, §2.3; imagebuilder-formats.md §1.3,
§4.2).

Three jobs, each the only place that does it:

- **The allow-list** (API): a request may only name feeds under a URL the operator allowed
  (``repository_allow_list``): same scheme, same host (exact), same port, and a path under the
  allowed path. URLs are checked strictly (printable ASCII only, no user-info, no query, no
  ``.``/``..`` segments in any percent-decoding of the path), because a naive prefix match is
  how upstream's list was bypassed (§6).
- **The extra feeds' package names** (API): the catalog only knows the mirror's feeds, so the
  ``Packages`` of each extra feed is read (allowed URLs only, redirects only to allowed URLs,
  bounded size and time) and its names are accepted.
- **The ImageBuilder files** (worker): ``repositories.conf`` (opkg) or ``repositories`` (apk)
  rendered for the mode, and every key as ``keys/<fingerprint>`` (usign) or
  ``keys/custom-N.pem`` (PEM). Keys are written re-encoded from their parsed bytes and every
  line is re-checked, so no user text reaches a file unvalidated.
"""

from __future__ import annotations

import re
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urljoin, urlsplit

import httpx
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)

from firmforge.errors import BuildError, RequestError
from firmforge.upstream import PackageIndex, _parse_packages
from firmforge.usign import PublicKey, UsignError

__all__ = [
    "FEEDS",
    "MAX_REPOSITORIES",
    "FeedNames",
    "RepositoryKey",
    "check_allow_list_entry",
    "check_request_repositories",
    "discard_new_downloads",
    "feed_failure",
    "install_repositories",
    "parse_repository_key",
    "render_apk_repositories",
    "render_opkg_repositories",
    "repository_allowed",
]

MAX_REPOSITORIES = 16
"""Extra feeds one request may name (each is fetched while the request is validated)."""

LOCAL_FEED_LINE = "src imagebuilder file:packages"
CHECK_SIGNATURE_LINE = "option check_signature"
RESERVED_NAMES = frozenset({"imagebuilder"})
"""Feed names every ImageBuilder uses itself (the local ``packages/`` feed)."""

_DEFAULT_PORTS = {"http": 80, "https": 443}
_PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]+")
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_HOST = re.compile(r"[a-z0-9._-]+|[0-9a-f:.]+")  # a DNS name/IPv4, or IPv6 without brackets
_MAX_DECODES = 3


# --- the allow-list -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Location:
    """The parts of an http(s) URL the allow-list compares."""

    scheme: str
    host: str
    port: int
    path: str  # as written (percent-encoded)
    decoded_path: str  # fully percent-decoded

    def under(self, allowed: _Location) -> bool:
        if (self.scheme, self.host, self.port) != (allowed.scheme, allowed.host, allowed.port):
            return False
        return _path_under(self.path, allowed.path) and _path_under(
            self.decoded_path, allowed.decoded_path
        )


def _path_under(path: str, allowed: str) -> bool:
    """``/feed`` and ``/feed/x`` are under ``/feed``; ``/feedx`` is not."""
    prefix = allowed.rstrip("/") + "/"
    return (path.rstrip("/") + "/").startswith(prefix)


def _decoded_path(path: str) -> str | None:
    """The path percent-decoded until it no longer changes, or None if any decoding level has
    a ``.``/``..`` segment (also ``..;x``), a backslash or a control character."""
    current = path
    for _ in range(_MAX_DECODES + 1):
        if "\\" in current or any(ord(c) < 0x20 or ord(c) == 0x7F for c in current):
            return None
        if any(segment.split(";", 1)[0] in (".", "..") for segment in current.split("/")):
            return None
        decoded = unquote(current, errors="strict")
        if decoded == current:
            return current
        current = decoded
    return None  # still encoded after several rounds: nobody needs that in a feed URL


def _location(url: str) -> _Location | None:
    """The URL's location, or None when it is not a plain http(s) URL firmforge accepts."""
    if not _PRINTABLE_ASCII.fullmatch(url) or "\\" in url or "?" in url or "#" in url:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
        decoded = _decoded_path(parts.path or "/")
    except (ValueError, UnicodeDecodeError):
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or "@" in parts.netloc or decoded is None:
        return None
    host = parts.hostname or ""
    if not _HOST.fullmatch(host):
        return None
    return _Location(
        scheme=scheme,
        host=host,
        port=port if port is not None else _DEFAULT_PORTS[scheme],
        path=parts.path or "/",
        decoded_path=decoded,
    )


def check_allow_list_entry(entry: str) -> str:
    """``entry`` if it is a usable allow-list URL (for the settings), else ``ValueError``."""
    if _location(entry) is None:
        raise ValueError(
            f"repository_allow_list entry {entry!r} is not a plain http(s) URL "
            "(scheme://host[:port][/path], no user-info, query or dot segments)"
        )
    return entry


def repository_allowed(url: str, allow_list: Iterable[str]) -> bool:
    """True if ``url`` lies under one entry of ``allow_list`` (an empty list allows nothing)."""
    location = _location(url)
    if location is None:
        return False
    for entry in allow_list:
        allowed = _location(entry)
        if allowed is not None and location.under(allowed):
            return True
    return False


# --- keys ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RepositoryKey:
    """One request key as the ImageBuilder stores it: ``keys/<filename>`` with ``content``."""

    kind: Literal["usign", "pem"]
    filename: str
    content: str  # canonical text re-encoded from the parsed key, never the user's text


def parse_repository_key(text: str, position: int) -> RepositoryKey:
    """A usign public key (its base64 line, or the two-line key file) or a PEM public key.

    ``position`` (0-based, in ``repository_keys``) names PEM files ``custom-<position>.pem``.
    Raises ``ValueError`` saying what is wrong.
    """
    stripped = text.strip()
    if stripped.startswith("-----BEGIN"):
        try:
            key = load_pem_public_key(stripped.encode("ascii"))
        except (ValueError, TypeError, UnicodeEncodeError) as exc:
            raise ValueError("not a PEM public key") from exc
        pem = key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode("ascii")
        return RepositoryKey("pem", f"custom-{position}.pem", pem)
    lines = [line.strip() for line in stripped.splitlines()]
    if len(lines) == 1:
        lines.insert(0, "untrusted comment: request key")
    if len(lines) != 2 or not lines[0].startswith("untrusted comment:"):
        raise ValueError(
            "expected a usign public key (the base64 line or the two-line key file) "
            "or a PEM public key"
        )
    try:
        public = PublicKey.from_text("\n".join(lines) + "\n")
    except UsignError as exc:
        raise ValueError(str(exc)) from exc
    return RepositoryKey(
        "usign",
        public.fingerprint_hex,
        public.to_text(f"public key {public.fingerprint_hex}"),
    )


def _parse_keys(texts: list[str]) -> list[RepositoryKey]:
    keys: list[RepositoryKey] = []
    for position, text in enumerate(texts):
        try:
            key = parse_repository_key(text, position)
        except ValueError as exc:
            raise RequestError(f"Invalid repository key #{position + 1}: {exc}") from exc
        clash = next(
            (k for k in keys if k.filename == key.filename and k.content != key.content), None
        )
        if clash is not None:
            raise RequestError(
                f"Invalid repository key #{position + 1}: another key has the same "
                f"fingerprint {key.filename}"
            )
        keys.append(key)
    return keys


# --- request validation (API) -------------------------------------------------------------------


def _name_ok(name: str) -> bool:
    return bool(_SAFE_NAME.fullmatch(name)) and name.strip(".") != ""


def check_request_repositories(
    repositories: Mapping[str, str], keys: list[str], allow_list: Iterable[str]
) -> list[RepositoryKey]:
    """Upstream's second 400 (``Repository not allowed: {url}``), then names and keys.

    Returns the parsed keys. Raises ``RequestError`` with the reason.
    """
    allow = list(allow_list)
    for url in repositories.values():
        if not repository_allowed(url, allow):
            raise RequestError(f"Repository not allowed: {url}")
    if len(repositories) > MAX_REPOSITORIES:
        raise RequestError(
            f"Too many repositories: {len(repositories)} (at most {MAX_REPOSITORIES})"
        )
    for name in repositories:
        if not _name_ok(name) or name in RESERVED_NAMES:
            raise RequestError(f"Repository name not allowed: {name}")
    return _parse_keys(keys)


# --- the extra feeds' package names (API) -------------------------------------------------------


class FeedNames:
    """Package names of extra feeds, read over HTTP and kept ``ttl`` seconds.

    Only allowed URLs are fetched; a redirect is followed only to another allowed URL. The
    download and the decompressed index are size-bounded. Thread-safe.
    """

    INDEX_FILES = ("Packages.gz", "Packages")
    MAX_DOWNLOAD = 16 << 20
    MAX_INDEX = 64 << 20
    MAX_REDIRECTS = 3

    def __init__(
        self,
        ttl: float = 60.0,
        timeout: float = 10.0,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.timeout = timeout
        self._transport = transport
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}

    def names(self, urls: Iterable[str], allow_list: Iterable[str]) -> set[str]:
        """Every installable name (``Package``, ABI-less name, ``Provides``) of the feeds.

        Raises ``RequestError``: ``Repository unreachable: {url}`` when a feed cannot be
        fetched, ``Repository index unreadable: {url}`` when its index is not a package list.
        """
        wanted = list(dict.fromkeys(urls))
        allow = list(allow_list)
        found: set[str] = set()
        if not wanted:
            return found
        with (
            httpx.Client(timeout=httpx.Timeout(self.timeout), follow_redirects=False,
                         transport=self._transport) as client,
            ThreadPoolExecutor(max_workers=min(len(wanted), 8)) as pool,
        ):
            for names in pool.map(lambda url: self._names(client, url, allow), wanted):
                found |= names
        return found

    def _names(self, client: httpx.Client, url: str, allow: list[str]) -> frozenset[str]:
        if not repository_allowed(url, allow):  # the API checked; never fetch anything else
            raise RequestError(f"Repository not allowed: {url}")
        now = self._clock()
        with self._lock:
            cached = self._cache.get(url)
            if cached is not None and cached[0] > now:
                return cached[1]
        names = self._fetch_names(client, url, allow)
        with self._lock:
            self._cache[url] = (now + self.ttl, names)
        return names

    def _fetch_names(self, client: httpx.Client, url: str, allow: list[str]) -> frozenset[str]:
        for filename in self.INDEX_FILES:
            body = self._get(client, f"{url.rstrip('/')}/{filename}", allow)
            if body is None:
                continue
            try:
                text = _gunzip(body, self.MAX_INDEX) if filename.endswith(".gz") else body
                index = PackageIndex()
                _parse_packages(text.decode("utf-8"), index)
            except (ValueError, zlib.error) as exc:
                raise RequestError(f"Repository index unreadable: {url}") from exc
            return frozenset(index.provides)
        raise RequestError(f"Repository unreachable: {url}")

    def _get(self, client: httpx.Client, url: str, allow: list[str]) -> bytes | None:
        """The body of ``url`` (following allowed redirects), None if absent or unreachable."""
        for _ in range(self.MAX_REDIRECTS + 1):
            try:
                with client.stream("GET", url) as response:
                    if response.is_redirect:
                        target = urljoin(url, response.headers.get("location", ""))
                        if not repository_allowed(target.rsplit("/", 1)[0], allow):
                            return None
                        url = target
                        continue
                    if response.status_code != 200:
                        return None
                    chunks: list[bytes] = []
                    size = 0
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                        if size > self.MAX_DOWNLOAD:
                            return None
                        chunks.append(chunk)
                    return b"".join(chunks)
            except httpx.HTTPError:
                return None
        return None


def _gunzip(data: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=31)
    out = inflater.decompress(data, limit + 1)
    if len(out) > limit or inflater.unconsumed_tail:
        raise ValueError("package index too large")
    return out


FEEDS = FeedNames()
"""The process-wide reader the API uses."""


# --- the ImageBuilder files (worker) ------------------------------------------------------------


def _checked_line(name: str, url: str) -> tuple[str, str]:
    """Re-check what goes into a line of a repositories file (the API validated it already)."""
    if not _name_ok(name) or name in RESERVED_NAMES:
        raise BuildError(f"Repository name not allowed: {name!r}", stage="container_setup")
    if _location(url) is None:
        raise BuildError(f"Repository URL not allowed: {url!r}", stage="container_setup")
    return name, url


def _feed_names(text: str) -> list[str]:
    names = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] in ("src", "src/gz"):
            names.append(words[1])
    return names


def render_opkg_repositories(
    existing: str | None, repositories: Mapping[str, str], mode: str
) -> str:
    """``repositories.conf`` for ``mode``.

    ``replace``: the request's feeds, the local feed and ``option check_signature``.
    ``append``: the ImageBuilder's file (without its ``check_signature`` option), the request's
    feeds, the local feed if it was missing, and ``option check_signature`` once at the end.
    A request feed named like one of the ImageBuilder's is refused (opkg would ignore it).
    """
    lines = [f"src/gz {name} {url}" for name, url in
             (_checked_line(name, url) for name, url in repositories.items())]
    if mode == "replace" or existing is None:
        return "\n".join([
            "## Repositories of this build request",
            *lines,
            "",
            "## This is the local package repository, do not remove!",
            LOCAL_FEED_LINE,
            "",
            CHECK_SIGNATURE_LINE,
        ]) + "\n"
    taken = set(_feed_names(existing))
    for name in repositories:
        if name in taken:
            raise BuildError(
                f"Repository name {name} is already used by the ImageBuilder's feeds; "
                "choose another name",
                stage="container_setup",
            )
    kept: list[str] = []
    has_local = False
    for line in existing.splitlines():
        words = line.split()
        if words[:2] == ["option", "check_signature"]:
            continue
        if line.strip() == LOCAL_FEED_LINE:
            if has_local:
                continue
            has_local = True
        kept.append(line.rstrip())
    while kept and not kept[-1]:
        kept.pop()
    out = [*kept, "", "## Repositories of this build request", *lines]
    if not has_local:
        out += ["", LOCAL_FEED_LINE]
    out += ["", CHECK_SIGNATURE_LINE]
    return "\n".join(out) + "\n"


def render_apk_repositories(
    existing: str | None, repositories: Mapping[str, str], mode: str
) -> str:
    """apk's ``repositories``: one index URL a line; ``append`` keeps the ImageBuilder's."""
    urls = [url for _name, url in (_checked_line(n, u) for n, u in repositories.items())]
    kept = [] if mode == "replace" or existing is None else [
        line.rstrip() for line in existing.splitlines() if line.strip()
    ]
    return "\n".join([*kept, *(u for u in urls if u not in kept)]) + "\n"


def install_repositories(
    workdir: Path, repositories: Mapping[str, str], keys: list[str], mode: str
) -> None:
    """Write the request's feeds and keys into an ImageBuilder workspace.

    Nothing is changed when the request has neither. The repositories file is only rewritten
    when ``repositories`` is non-empty (``repositories_mode`` alone changes nothing, as
    upstream). Keys are re-parsed here: a key the ImageBuilder already trusts under the same
    fingerprint with other bytes is refused rather than replaced.
    """
    if not repositories and not keys:
        return
    try:
        parsed = [parse_repository_key(text, position) for position, text in enumerate(keys)]
    except ValueError as exc:
        raise BuildError(f"Invalid repository key: {exc}", stage="container_setup") from exc
    if parsed:
        keys_dir = workdir / "keys"
        keys_dir.mkdir(exist_ok=True)
        for key in parsed:
            target = keys_dir / key.filename
            if key.kind == "usign" and target.is_file() and not _same_usign_key(target, key):
                raise BuildError(
                    f"Repository key {key.filename} clashes with a key of the ImageBuilder "
                    "that has the same fingerprint",
                    stage="container_setup",
                )
            target.write_text(key.content)
    if not repositories:
        return
    opkg_file, apk_file = workdir / "repositories.conf", workdir / "repositories"
    if apk_file.is_file() and not opkg_file.is_file():
        apk_file.write_text(render_apk_repositories(apk_file.read_text(), repositories, mode))
        return
    existing = opkg_file.read_text() if opkg_file.is_file() else None
    opkg_file.write_text(render_opkg_repositories(existing, repositories, mode))


def _same_usign_key(path: Path, key: RepositoryKey) -> bool:
    try:
        return PublicKey.from_text(path.read_text()) == PublicKey.from_text(key.content)
    except (UsignError, UnicodeDecodeError, OSError):
        return False


def discard_new_downloads(downloads: Path) -> int:
    """Remove the package files a build downloaded (not the ones linked from the shared pool).

    A build with extra feeds may fetch files named like official packages with other bytes;
    keeping them out of the ImageBuilder's download pool keeps later builds from using them.
    """
    removed = 0
    if not downloads.is_dir():
        return removed
    for path in downloads.iterdir():
        info = path.lstat()
        if path.is_symlink() or (path.is_file() and info.st_nlink == 1):
            path.unlink()
            removed += 1
    return removed


def feed_failure(output: str, repositories: Mapping[str, str]) -> str | None:
    """What went wrong with the request's feeds in opkg's ``update`` output, or None.

    opkg prints ``Downloading <feed>/Packages.sig`` then ``Signature check failed.`` (or
    ``Signature file download failed.``), and ``*** Failed to download the package list from
    <feed>/Packages.gz`` for an unreachable feed.
    """
    by_url = {url.rstrip("/"): name for name, url in repositories.items()}
    problems: list[str] = []
    last_download = ""

    def feed_of(file_url: str) -> tuple[str, str] | None:
        feed = file_url.rsplit("/", 1)[0].rstrip("/")
        return (by_url[feed], feed) if feed in by_url else None

    for raw in output.splitlines():
        line = raw.strip()
        if line.startswith("Downloading "):
            last_download = line.removeprefix("Downloading ").strip()
        elif line in ("Signature check failed.", "Signature file download failed."):
            found = feed_of(last_download)
            if found is None:
                continue
            name, url = found
            reason = (
                "its Packages.sig is not signed by any key in repository_keys"
                if line == "Signature check failed."
                else "it has no Packages.sig"
            )
            problems.append(f"Signature check failed for repository {name} ({url}): {reason}")
        elif line.startswith("*** Failed to download the package list from "):
            found = feed_of(line.removeprefix("*** Failed to download the package list from "))
            if found is not None:
                problems.append(
                    f"Could not download the package list of repository {found[0]} ({found[1]})"
                )
    return "; ".join(dict.fromkeys(problems)) or None
