"""The on-disk ImageBuilder cache: download, verify, unpack once; share; evict the least used.

Layout under ``root`` (``<stem>`` is the archive name without ``.tar.xz``/``.tar.zst``)::

    <stem>/            the pristine, unpacked ImageBuilder (feeds point at the upstream mirror)
    <stem>.json        metadata: sha256, url, feed base URL, size; its mtime is the last use
    <stem>.lock        flock: exclusive to install or evict, shared while a build uses it
    <stem>.dl/         download pool of package files shared by the builds of this IB
    .tmp/              downloads, unpacks and deletions in progress (same file system: renames)
    .work/<stem>/      one private working copy per running build

An entry is complete when both ``<stem>/`` and ``<stem>.json`` exist; the directory is renamed
into place first and the metadata second, so a crash in between leaves an incomplete entry that
the next ``ensure`` (holding the exclusive lock) clears. Lock files are never deleted: removing
a lock file another process has open would let two processes hold "the" lock at once.

Locks are ``fcntl.flock`` on a freshly opened file per use, which excludes other threads of
this process as well as other processes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from firmforge.errors import SignatureError, UpstreamError
from firmforge.imagebuilder._archive import archive_stem, unpack_archive
from firmforge.imagebuilder._workspace import (
    clone_tree,
    harvest_downloads,
    remove_tree,
    seed_downloads,
    tree_bytes,
)

__all__ = ["CacheStats", "ImageBuilderCache", "ImageBuilderSourceLike"]

log = logging.getLogger(__name__)

OFFICIAL_URL = "https://downloads.openwrt.org"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*\.tar\.(?:xz|zst)")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20
_REPOSITORY_FILES = ("repositories.conf", "repositories")  # opkg, apk
_ATTEMPTS = 5  # times a workspace retries an IB that is replaced or evicted under its feet


class ImageBuilderSourceLike(Protocol):
    """What the cache needs to know about an ImageBuilder (``upstream.ImageBuilderSource``)."""

    @property
    def name(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def sha256(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def target(self) -> str: ...


@dataclass(frozen=True)
class CacheStats:
    entries: int
    """Complete ImageBuilders on disk."""
    bytes: int
    """Their unpacked size plus their download pools."""
    hits: int
    """``ensure`` calls (by this object) answered from disk (``workspace`` does not count)."""
    misses: int
    """``ensure`` calls (by this object) that downloaded and unpacked."""


@dataclass(frozen=True)
class _Entry:
    stem: str
    bytes: int
    last_used_ns: int


class ImageBuilderCache:
    """Pristine ImageBuilders under ``root``, at most ``max_bytes`` of them (see module doc).

    ``upstream_url`` replaces ``official_url`` in each IB's feed list, so builds fetch packages
    from the mirror firmforge is configured with.
    """

    def __init__(
        self,
        root: Path,
        max_bytes: int,
        client: httpx.Client,
        upstream_url: str,
        official_url: str = OFFICIAL_URL,
    ) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.client = client
        self.upstream_url = upstream_url.rstrip("/")
        self.official_url = official_url.rstrip("/")
        self._counter_lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    # -- public -----------------------------------------------------------------------------

    def path(self, source: ImageBuilderSourceLike) -> Path:
        """Where the pristine ImageBuilder of ``source`` lives (whether or not it is there)."""
        return self.root / _stem(source)

    def ensure(self, source: ImageBuilderSourceLike) -> Path:
        """The pristine ImageBuilder of ``source``, downloaded and unpacked if not cached.

        Raises ``SignatureError`` when the download does not match ``source.sha256`` and
        ``UpstreamError`` when it cannot be downloaded or is not a safe archive.
        """
        return self._ensure(source, count_hit=True)

    @contextlib.contextmanager
    def workspace(self, source: ImageBuilderSourceLike) -> Iterator[Path]:
        """A private working copy of the ImageBuilder for one build, removed afterwards.

        While it exists the IB is in use (a shared lock) and is never evicted or replaced.
        Package files downloaded by a build that finishes without an exception are added to
        the IB's download pool for the next builds.
        """
        stem = _stem(source)
        lock = self._hold_shared(stem, source)
        clone = self.root / ".work" / stem / secrets.token_hex(6)
        try:
            self._touch(stem)
            clone.parent.mkdir(parents=True, exist_ok=True)
            clone_tree(self.root / stem, clone)
            seed_downloads(self._pool(stem), clone / "dl")
            yield clone
            try:  # the pool only saves downloads: a failure here must not fail the build
                if harvest_downloads(clone / "dl", self._pool(stem)):
                    self._evict(keep=stem)
            except OSError:
                log.warning("could not pool the downloads of %s", clone, exc_info=True)
        finally:
            try:
                remove_tree(clone)
            finally:
                os.close(lock)

    def stats(self) -> CacheStats:
        entries = self._entries()
        with self._counter_lock:
            hits, misses = self._hits, self._misses
        return CacheStats(
            entries=len(entries), bytes=sum(e.bytes for e in entries), hits=hits, misses=misses
        )

    def warm(self) -> list[str]:
        """``version/target`` of every complete entry: the builds this cache starts warm."""
        keys = []
        for meta_path in self.root.glob("*.json"):
            stem = meta_path.name.removesuffix(".json")
            meta = self._read_meta(stem)
            if meta is not None and "target" in meta and (self.root / stem).is_dir():
                keys.append(f"{meta['version']}/{meta['target']}")
        return sorted(keys)

    def counts(self) -> tuple[int, int]:
        """``ensure`` hits and misses of this object so far (cheap, unlike ``stats``)."""
        with self._counter_lock:
            return self._hits, self._misses

    # -- install ----------------------------------------------------------------------------

    def _ensure(self, source: ImageBuilderSourceLike, *, count_hit: bool) -> Path:
        stem = _stem(source)
        self._prepare_root()
        with _flocked(self._lock_path(stem), fcntl.LOCK_SH):
            if self._is_current(stem, source):
                self._touch(stem)
                self._count(hit=True, counted=count_hit)
                return self.root / stem
        with _flocked(self._lock_path(stem), fcntl.LOCK_EX):
            if self._is_current(stem, source):  # another worker installed it meanwhile
                self._touch(stem)
                self._count(hit=True, counted=count_hit)
                return self.root / stem
            self._install(stem, source)
            self._touch(stem)
            self._count(hit=False)
        self._evict(keep=stem)
        return self.root / stem

    def _install(self, stem: str, source: ImageBuilderSourceLike) -> None:
        """Download, verify, unpack and publish ``stem``; the caller holds the exclusive lock."""
        self._discard(stem, keep_pool=True)
        tmp = self.root / ".tmp"
        token = secrets.token_hex(6)
        archive = tmp / f"download~{stem}~{token}"
        unpack_dir = tmp / f"unpack~{stem}~{token}"
        meta_tmp = tmp / f"meta~{stem}~{token}"
        try:
            self._download(source, archive)
            unpack_dir.mkdir()
            top = unpack_archive(archive, unpack_dir, label=source.name)
            self._point_feeds_at_upstream(top)
            meta = {
                "name": source.name,
                "url": source.url,
                "sha256": source.sha256.lower(),
                "feeds_url": self.upstream_url,
                "bytes": tree_bytes(top),
                "version": source.version,  # what a build asks for: the farm's locality key
                "target": source.target,
            }
            meta_tmp.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
            top.rename(self.root / stem)
            meta_tmp.replace(self._meta_path(stem))
            log.info("cached ImageBuilder %s (%d bytes)", stem, meta["bytes"])
        finally:
            archive.unlink(missing_ok=True)
            meta_tmp.unlink(missing_ok=True)
            remove_tree(unpack_dir)

    def _download(self, source: ImageBuilderSourceLike, destination: Path) -> None:
        expected = source.sha256.lower()
        digest = hashlib.sha256()
        try:
            with self.client.stream("GET", source.url, follow_redirects=True) as response:
                if response.status_code != httpx.codes.OK:
                    raise UpstreamError(
                        f"Could not download ImageBuilder {source.name} from {source.url}: "
                        f"HTTP {response.status_code}"
                    )
                with destination.open("xb") as out:
                    for chunk in response.iter_bytes(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
        except httpx.HTTPError as exc:
            destination.unlink(missing_ok=True)
            raise UpstreamError(
                f"Could not download ImageBuilder {source.name} from {source.url}: {exc}"
            ) from exc
        except BaseException:
            destination.unlink(missing_ok=True)
            raise
        actual = digest.hexdigest()
        if actual != expected:
            destination.unlink(missing_ok=True)
            raise SignatureError(
                f"Corrupted ImageBuilder download: sha256 {actual} expected {expected} "
                f"({source.name} from {source.url})"
            )

    def _point_feeds_at_upstream(self, top: Path) -> None:
        """Real IBs list the official mirror as their feeds; builds must use ours."""
        if self.upstream_url == self.official_url:
            return
        official = re.compile(re.escape(self.official_url) + r"(?=[/\s]|$)", re.MULTILINE)
        for name in _REPOSITORY_FILES:
            path = top / name
            if path.is_file() and not path.is_symlink():
                text = path.read_text()
                rewritten = official.sub(lambda _m: self.upstream_url, text)
                if rewritten != text:
                    path.write_text(rewritten)

    # -- state ------------------------------------------------------------------------------

    def _is_current(self, stem: str, source: ImageBuilderSourceLike) -> bool:
        meta = self._read_meta(stem)
        return (
            meta is not None
            and (self.root / stem).is_dir()
            and meta.get("sha256") == source.sha256.lower()
            and meta.get("feeds_url") == self.upstream_url
        )

    def _read_meta(self, stem: str) -> dict[str, Any] | None:
        try:
            meta = json.loads(self._meta_path(stem).read_text())
        except (FileNotFoundError, ValueError):
            return None
        return meta if isinstance(meta, dict) else None

    def _touch(self, stem: str) -> None:
        """Record a use. Explicit nanoseconds: the kernel's own "now" is only tick-precise."""
        now = time.time_ns()
        with contextlib.suppress(FileNotFoundError):
            os.utime(self._meta_path(stem), ns=(now, now))

    def _count(self, *, hit: bool, counted: bool = True) -> None:
        if not counted:
            return
        with self._counter_lock:
            if hit:
                self._hits += 1
            else:
                self._misses += 1

    def _hold_shared(self, stem: str, source: ImageBuilderSourceLike) -> int:
        """A file descriptor holding the shared lock on a current copy of ``stem``."""
        for _ in range(_ATTEMPTS):
            self._ensure(source, count_hit=False)  # the caller's ensure() counted the hit
            fd = _open_lock(self._lock_path(stem))
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)
                if self._is_current(stem, source):
                    return fd
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # evicted or replaced between ensure() and the lock: again
        raise UpstreamError(f"ImageBuilder {source.name} kept disappearing from the cache")

    # -- eviction ---------------------------------------------------------------------------

    def _entries(self) -> list[_Entry]:
        entries = []
        for meta_path in self.root.glob("*.json"):
            stem = meta_path.name.removesuffix(".json")
            meta = self._read_meta(stem)
            try:
                last_used = meta_path.stat().st_mtime_ns
            except FileNotFoundError:
                continue
            if meta is None or not (self.root / stem).is_dir():
                continue
            size = int(meta.get("bytes", 0)) + tree_bytes(self._pool(stem))
            entries.append(_Entry(stem, size, last_used))
        return entries

    def _evict(self, keep: str) -> None:
        """Remove least recently used IBs not in use until the cache fits ``max_bytes``."""
        entries = sorted(self._entries(), key=lambda e: e.last_used_ns)
        total = sum(e.bytes for e in entries)
        for entry in entries:
            if total <= self.max_bytes:
                return
            if entry.stem == keep:
                continue
            with _flocked(self._lock_path(entry.stem), fcntl.LOCK_EX, blocking=False) as got:
                if not got:
                    log.info("not evicting ImageBuilder %s: in use", entry.stem)
                    continue
                if self._read_meta(entry.stem) is None:
                    continue  # someone else evicted it already
                self._discard(entry.stem, keep_pool=False)
            total -= entry.bytes
            log.info("evicted ImageBuilder %s (%d bytes)", entry.stem, entry.bytes)
        if total > self.max_bytes:
            log.warning(
                "ImageBuilder cache holds %d bytes, over its budget of %d: the rest is in use",
                total,
                self.max_bytes,
            )

    def _discard(self, stem: str, *, keep_pool: bool) -> None:
        """Remove ``stem`` and its leftovers; the caller holds its exclusive lock."""
        self._meta_path(stem).unlink(missing_ok=True)
        tmp = self.root / ".tmp"
        pristine = self.root / stem
        if os.path.lexists(pristine):
            trash = tmp / f"trash~{stem}~{secrets.token_hex(6)}"
            pristine.rename(trash)  # out of sight at once, then delete at leisure
            remove_tree(trash)
        if not keep_pool:
            remove_tree(self._pool(stem))
        # nobody can be using these while we hold the exclusive lock: a crash left them
        for leftover in tmp.glob(f"*~{stem}~*"):
            remove_tree(leftover)
        remove_tree(self.root / ".work" / stem)

    # -- paths ------------------------------------------------------------------------------

    def _prepare_root(self) -> None:
        for path in (self.root, self.root / ".tmp", self.root / ".work"):
            path.mkdir(parents=True, exist_ok=True)

    def _lock_path(self, stem: str) -> Path:
        return self.root / f"{stem}.lock"

    def _meta_path(self, stem: str) -> Path:
        return self.root / f"{stem}.json"

    def _pool(self, stem: str) -> Path:
        return self.root / f"{stem}.dl"


def _stem(source: ImageBuilderSourceLike) -> str:
    if not _NAME.fullmatch(source.name):
        raise UpstreamError(f"Refusing ImageBuilder with an unusable file name {source.name!r}")
    if not _SHA256.fullmatch(source.sha256.lower()):
        raise SignatureError(f"No valid sha256 known for ImageBuilder {source.name}")
    return archive_stem(source.name)


def _open_lock(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)


@contextlib.contextmanager
def _flocked(path: Path, operation: int, *, blocking: bool = True) -> Iterator[bool]:
    """Hold ``flock(operation)`` on ``path``; yields False if ``blocking=False`` and busy."""
    fd = _open_lock(path)
    try:
        try:
            fcntl.flock(fd, operation if blocking else operation | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
