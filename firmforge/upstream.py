"""Reading a downloads mirror: releases, targets, profiles, ImageBuilders and package indexes.

Everything is read in the mirror's own formats (research/imagebuilder-formats.md §2, §3) and
authenticated the way the buildbot publishes it (§4.3): a directory's ``sha256sums`` must carry
a usign signature (``sha256sums.sig``) by one of the trusted keys, and every file read from that
directory must have the SHA-256 the signed list gives it.

    upstream = Upstream("https://downloads.openwrt.org", [PublicKey.from_text(key)], client)
    upstream.imagebuilder("24.10.5", "ath79/generic").url
    "owut" in upstream.package_index("24.10.5", "ath79/generic")

Responses are cached in memory per URL for ``cache_ttl`` seconds; ``invalidate`` drops them.
Failures raise ``UpstreamError`` (unreachable, non-200, malformed) or its subclass
``SignatureError`` (missing, untrusted or bad signature, checksum mismatch).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from firmforge.errors import SignatureError, UpstreamError
from firmforge.usign import PublicKey, UsignError

__all__ = ["ImageBuilderSource", "PackageIndex", "Upstream", "Versions", "strip_abi"]

log = logging.getLogger(__name__)

DEFAULT_CACHE_TTL = 300.0
"""Seconds a fetched file is answered from memory before it is fetched again."""

_ALWAYS_PROVIDED = frozenset({"libc", "kernel"})
"""Packages every ImageBuilder has but no index lists (``ipkg-make-index.sh`` skips them)."""

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+~-]*$")
_MISSING = frozenset({404, 410})


@dataclass(frozen=True)
class Versions:
    """The mirror's ``/.versions.json`` (research §2.1); empty strings mean "none"."""

    stable: str
    oldstable: str
    upcoming: str
    versions_list: tuple[str, ...]


@dataclass(frozen=True)
class ImageBuilderSource:
    """Where an ImageBuilder tarball is and the SHA-256 the signed ``sha256sums`` gives it."""

    name: str
    url: str
    sha256: str
    version: str
    target: str


@dataclass
class PackageIndex:
    """What a build of one version/target can install.

    ``versions`` maps package names without ABI suffix (as owut and LuCI send them) to versions;
    ``provides`` holds every acceptable name: raw ABI names, stripped names, ``Provides:``
    entries, ``libc`` and ``kernel``.
    """

    architecture: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    provides: set[str] = field(default_factory=lambda: set(_ALWAYS_PROVIDED))
    stripped: dict[str, str] = field(default_factory=dict)  # raw ABI name -> name without ABI

    def __contains__(self, name: object) -> bool:
        return name in self.provides

    def strip_abi(self, raw: str) -> str:
        """The name clients use for a raw ``Package:`` name (``libubox20240329`` → ``libubox``)."""
        return self.stripped.get(raw, raw)

    def _add(self, name: str, version: str, raw: str = "", provides: tuple[str, ...] = ()) -> None:
        self.versions.setdefault(name, version)
        self.provides.add(name)
        if raw:
            self.provides.add(raw)
            if raw != name:
                self.stripped.setdefault(raw, name)
        self.provides.update(provides)


def strip_abi(raw: str, abi: str) -> str:
    """``libubox20240329`` → ``libubox``; ``libfoo2-1`` → ``libfoo2`` (research §3.1)."""
    if not abi or not raw.endswith(abi) or len(raw) == len(abi):
        return raw
    name = raw[: -len(abi)]
    if name.endswith("-") and len(name) > 1 and name[-2].isdigit():
        name = name[:-1]
    return name


def _parse_sums(text: str) -> dict[str, str]:
    """``<hex> *<path>`` (or ``<hex>  <path>``) lines → {path: hex}."""
    sums: dict[str, str] = {}
    for line in text.splitlines():
        digest, _, path = line.partition(" ")
        if len(digest) != 64 or not path:
            continue
        sums[path[1:] if path[0] in "* " else path] = digest.lower()
    return sums


def _parse_packages(text: str, index: PackageIndex) -> None:
    """opkg ``Packages`` stanzas (research §3.1) into ``index``."""
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line[:1].isspace():
                continue  # a Description continuation line
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        raw = fields.get("Package")
        if not raw:
            continue
        provides = tuple(
            re.split(r"[\s=(]", entry.strip(), maxsplit=1)[0]
            for entry in fields.get("Provides", "").split(",")
            if entry.strip()
        )
        name = strip_abi(raw, fields.get("ABIVersion", ""))
        index._add(name, fields.get("Version", ""), raw, provides)


def _parse_index_json(document: Any, index: PackageIndex) -> None:
    """``index.json`` v1 (raw names) or v2 (names without ABI suffix), research §2.6."""
    packages = document.get("packages") if isinstance(document, dict) else None
    if not isinstance(packages, dict):
        raise ValueError("no 'packages' object")
    for name, version in packages.items():
        index._add(str(name), str(version))


def _signature_fingerprint(signature_text: str) -> str | None:
    """The 16-hex key fingerprint a usign signature names, or None when it is malformed."""
    lines = signature_text.splitlines()
    try:
        blob = base64.b64decode(lines[1], validate=True)
    except (IndexError, binascii.Error):
        return None
    return blob[2:10].hex() if len(blob) == 74 else None


def _check_segments(*parts: str) -> None:
    """Only plain names go into mirror URLs (callers validate user input before this)."""
    for part in parts:
        if not _SEGMENT.match(part):
            raise ValueError(f"refusing unsafe mirror path segment {part!r}")


class Upstream:
    """One downloads mirror, read over HTTP with ``client`` and checked against ``keys``.

    With no keys, signatures are not checked (one warning is logged); checksums still are.
    Thread-safe: the cache is locked and ``httpx.Client`` may be shared between threads.
    """

    def __init__(
        self,
        base_url: str,
        keys: list[PublicKey],
        client: httpx.Client,
        *,
        cache_ttl: float = DEFAULT_CACHE_TTL,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.keys = list(keys)
        self.client = client
        self.cache_ttl = cache_ttl
        self._cache: dict[str, tuple[float, int, bytes]] = {}
        self._lock = threading.Lock()
        self._warned_insecure = False

    # -- fetching -------------------------------------------------------------------------

    def url(self, path: str) -> str:
        """The absolute URL of a mirror path such as ``releases/24.10.5/.targets.json``."""
        return f"{self.base_url}/{path.lstrip('/')}"

    def invalidate(self, path: str = "") -> None:
        """Forget cached responses whose mirror path starts with ``path`` (all by default)."""
        prefix = self.url(path) if path else ""
        with self._lock:
            for url in [u for u in self._cache if u.startswith(prefix)]:
                del self._cache[url]

    def _fetch(self, path: str) -> tuple[int, bytes]:
        """Status and body of ``path``; 200 and 404 answers are cached for ``cache_ttl``."""
        url = self.url(path)
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(url)
        if cached is not None and now - cached[0] < self.cache_ttl:
            return cached[1], cached[2]
        try:
            response = self.client.get(url)
        except httpx.HTTPError as exc:
            raise UpstreamError(f"Cannot reach the mirror at {url}: {exc!r}") from exc
        if response.status_code == 200 or response.status_code in _MISSING:
            with self._lock:
                for stale in [u for u, e in self._cache.items() if now - e[0] >= self.cache_ttl]:
                    del self._cache[stale]  # expired entries hold megabytes of indexes
                self._cache[url] = (now, response.status_code, response.content)
        return response.status_code, response.content

    def _get(self, path: str) -> bytes:
        body = self._get_optional(path)
        if body is None:
            raise UpstreamError(f"The mirror has no {self.url(path)} (HTTP 404)")
        return body

    def _get_optional(self, path: str) -> bytes | None:
        """Like ``_get``, but None when the file does not exist (HTTP 404/410)."""
        status, body = self._fetch(path)
        if status in _MISSING:
            return None
        if status != 200:
            raise UpstreamError(f"The mirror answered HTTP {status} for {self.url(path)}")
        return body

    def _json(self, path: str, body: bytes | None = None) -> Any:
        try:
            return json.loads(self._get(path) if body is None else body)
        except ValueError as exc:
            raise UpstreamError(f"{self.url(path)} is not valid JSON: {exc}") from exc

    # -- signatures -----------------------------------------------------------------------

    def _verify(self, path: str, message: bytes) -> None:
        """Check ``<path>.sig`` over ``message`` against the trusted keys."""
        if not self.keys:
            if not self._warned_insecure:
                self._warned_insecure = True
                log.warning(
                    "No trusted keys for %s: signatures are NOT checked (insecure)", self.base_url
                )
            return
        sig_url = self.url(path + ".sig")
        body = self._get_optional(path + ".sig")
        if body is None:
            raise SignatureError(f"Missing signature: {sig_url} does not exist")
        text = body.decode("utf-8", "replace")
        fingerprint = _signature_fingerprint(text)
        if fingerprint is None:
            raise SignatureError(f"Malformed signature {sig_url}: not a usign signature")
        candidates = [key for key in self.keys if key.fingerprint_hex == fingerprint]
        if not candidates:
            trusted = ", ".join(key.fingerprint_hex for key in self.keys)
            raise SignatureError(
                f"No trusted key {fingerprint} for {sig_url} (trusted keys: {trusted})"
            )
        failures = []
        for key in candidates:
            try:
                key.verify(message, text)
            except UsignError as exc:
                failures.append(str(exc))
            else:
                return
        raise SignatureError(f"Bad signature {sig_url}: {'; '.join(failures)}")

    def _signed_sums(self, directory: str) -> dict[str, str]:
        body = self._get(f"{directory}/sha256sums")
        self._verify(f"{directory}/sha256sums", body)
        return _parse_sums(body.decode("utf-8", "replace"))

    def _checked(self, directory: str, relative: str, sums: dict[str, str]) -> bytes | None:
        """A file of ``directory`` (None if it does not exist), authenticated by its line in
        the signed ``sums``; a file the list does not cover needs its own ``.sig``."""
        path = f"{directory}/{relative}"
        body = self._get_optional(path)
        if body is None:
            return None
        expected = sums.get(relative)
        if expected is None:
            if self.keys and self._get_optional(path + ".sig") is None:
                raise SignatureError(
                    f"{self.url(path)} is neither listed in the signed "
                    f"{self.url(directory)}/sha256sums nor signed itself"
                )
            self._verify(path, body)
            return body
        actual = hashlib.sha256(body).hexdigest()
        if actual != expected:
            raise SignatureError(
                f"SHA256 mismatch for {self.url(path)}: the signed sha256sums says {expected}, "
                f"the file has {actual}"
            )
        return body

    # -- mirror layout --------------------------------------------------------------------

    @staticmethod
    def version_path(version: str) -> str:
        """``snapshots`` for ``SNAPSHOT``, else ``releases/<version>`` (incl. ``X-SNAPSHOT``)."""
        return "snapshots" if version == "SNAPSHOT" else f"releases/{version}"

    def _target_dir(self, version: str, target: str) -> str:
        board, _, subtarget = target.partition("/")
        _check_segments(version, board, subtarget)
        return f"{self.version_path(version)}/targets/{board}/{subtarget}"

    def _arch_dir(self, version: str, arch: str) -> str:
        _check_segments(version, arch)
        return f"{self.version_path(version)}/packages/{arch}"

    def versions(self) -> Versions:
        data = self._json(".versions.json")
        if not isinstance(data, dict):
            raise UpstreamError(f"{self.url('.versions.json')} is not a JSON object")
        listed = data.get("versions_list") or []
        return Versions(
            stable=str(data.get("stable_version") or ""),
            oldstable=str(data.get("oldstable_version") or ""),
            upcoming=str(data.get("upcoming_version") or ""),
            versions_list=tuple(str(v) for v in listed if v),
        )

    def targets(self, version: str) -> dict[str, str]:
        """``{"ath79/generic": "mips_24kc", …}`` from the version's ``.targets.json``."""
        _check_segments(version)
        path = f"{self.version_path(version)}/.targets.json"
        data = self._json(path)
        if not isinstance(data, dict):
            raise UpstreamError(f"{self.url(path)} is not a JSON object")
        return {str(k): str(v) for k, v in data.items() if not str(k).startswith(".")}

    def signed_sums(self, version: str, target: str) -> dict[str, str]:
        """The target directory's verified ``sha256sums``: relative path → SHA-256."""
        return self._signed_sums(self._target_dir(version, target))

    def arch_sums(self, version: str, arch: str) -> dict[str, str]:
        """The verified ``packages/<arch>/sha256sums``: ``<feed>/<file>`` → SHA-256."""
        return self._signed_sums(self._arch_dir(version, arch))

    def profiles(self, version: str, target: str) -> dict[str, Any]:
        """The target's ``profiles.json``, checked against the signed ``sha256sums``."""
        return self._profiles(self._target_dir(version, target), self.signed_sums(version, target))

    def _profiles(self, directory: str, sums: dict[str, str]) -> dict[str, Any]:
        path = f"{directory}/profiles.json"
        body = self._checked(directory, "profiles.json", sums)
        if body is None:
            raise UpstreamError(f"The mirror has no {self.url(path)}")
        data = self._json(path, body)
        if not isinstance(data, dict) or not isinstance(data.get("profiles"), dict):
            raise UpstreamError(f"{self.url(path)} has no 'profiles' object")
        return data

    def imagebuilder(self, version: str, target: str) -> ImageBuilderSource:
        """The ImageBuilder tarball the signed ``sha256sums`` lists (never a guessed name)."""
        directory = self._target_dir(version, target)
        sums = self.signed_sums(version, target)
        board, subtarget = target.split("/")
        pattern = re.compile(
            rf"^[a-z0-9][a-z0-9-]*-imagebuilder-(?:[^/]*-)?"
            rf"{re.escape(board)}-{re.escape(subtarget)}\.[^/]+\.tar\.(?:xz|zst)$"
        )
        names = sorted(name for name in sums if pattern.match(name))
        if not names:
            raise UpstreamError(
                f"No ImageBuilder for {version} {target} on {self.base_url}: the signed "
                f"{self.url(directory)}/sha256sums lists no *-imagebuilder-*.tar.xz/.tar.zst"
            )
        # Builds run on x86_64 hosts; prefer that host's tarball if a mirror offers several.
        name = next((n for n in names if ".Linux-x86_64." in n), names[0])
        return ImageBuilderSource(
            name=name,
            url=self.url(f"{directory}/{name}"),
            sha256=sums[name],
            version=version,
            target=target,
        )

    # -- package indexes ------------------------------------------------------------------

    def package_index(self, version: str, target: str) -> PackageIndex:
        """Every package a build of ``version``/``target`` can use: the target's ``packages/``,
        its ``kmods/<kernel>/`` (when ``profiles.json`` names a kernel) and the arch feeds."""
        index = self.target_index(version, target)
        if index.architecture:
            self._read_arch_feeds(version, index.architecture, index)
        return index

    def arch_index(self, version: str, arch: str) -> PackageIndex:
        """The feeds of ``packages/<arch>/`` (base, luci, packages, …) on their own."""
        index = PackageIndex(architecture=arch)
        self._read_arch_feeds(version, arch, index)
        return index

    def target_index(self, version: str, target: str) -> PackageIndex:
        """The target's own ``packages/`` and its ``kmods/<kernel>/``, without the arch feeds."""
        directory = self._target_dir(version, target)
        sums = self.signed_sums(version, target)
        profiles = self._profiles(directory, sums)
        arch = str(profiles.get("arch_packages") or self.targets(version).get(target, ""))
        index = PackageIndex(architecture=arch)
        if not self._read_feed(directory, "packages", sums, index):
            raise UpstreamError(
                f"No package index (Packages or index.json) at {self.url(directory)}/packages/"
            )
        kernel = profiles.get("linux_kernel")
        if isinstance(kernel, dict) and kernel.get("vermagic"):
            kmods = f"kmods/{kernel.get('version')}-{kernel.get('release')}-{kernel['vermagic']}"
            _check_segments(kmods.removeprefix("kmods/"))
            if not self._read_feed(directory, kmods, sums, index):
                log.warning("No kmods index at %s/%s/", self.url(directory), kmods)
        return index

    def read_signed_feed(self, index: PackageIndex) -> None:
        """Add the feed at the base URL itself to ``index``: a feed published on its own, with
        no signed ``sha256sums`` above it (LibreMesh's), so its ``Packages`` needs its own
        ``Packages.sig``."""
        body = self._checked("", "Packages", {})
        if body is None:
            raise UpstreamError(f"The feed has no {self.url('Packages')} (HTTP 404)")
        _parse_packages(body.decode("utf-8", "replace"), index)

    def _read_arch_feeds(self, version: str, arch: str, index: PackageIndex) -> None:
        directory = self._arch_dir(version, arch)
        sums = self.arch_sums(version, arch)
        conf = self._checked(directory, "feeds.conf", sums)
        feeds = ["base"]
        for line in (conf or b"").decode("utf-8", "replace").splitlines():
            words = line.split()
            if len(words) >= 2 and words[0].startswith("src-") and words[1] not in feeds:
                feeds.append(words[1])
        for feed in feeds:
            if not _SEGMENT.match(feed):
                raise UpstreamError(f"Unsafe feed name {feed!r} in {self.url(directory)}")
            if not self._read_feed(directory, feed, sums, index):
                log.warning("No package index for feed %s at %s/", feed, self.url(directory))

    def _read_feed(
        self, directory: str, sub: str, sums: dict[str, str], index: PackageIndex
    ) -> bool:
        """Add ``<directory>/<sub>/`` to ``index``: its ``Packages`` if published, else its
        ``index.json``. False when it has neither."""
        body = self._checked(directory, f"{sub}/Packages", sums)
        if body is not None:
            _parse_packages(body.decode("utf-8", "replace"), index)
            return True
        body = self._checked(directory, f"{sub}/index.json", sums)
        if body is None:
            return False
        path = f"{directory}/{sub}/index.json"
        try:
            _parse_index_json(self._json(path, body), index)
        except ValueError as exc:
            raise UpstreamError(f"{self.url(path)} is not a package index: {exc}") from exc
        return True
