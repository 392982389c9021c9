"""Finished build artifacts on local disk: ``<root>/<bin_dir>/<file>``.

A build's directory appears atomically (written elsewhere, then renamed into place), so a
reader never sees half a build. Names from URLs are checked before they touch the disk.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

__all__ = ["ArtifactStore", "LocalStore", "is_bin_dir", "publishable"]

_BIN_DIR = re.compile(r"^[0-9a-f]{64}$")
_FILE_NAME = re.compile(r"^[\w][\w.+~,-]*$")


def is_bin_dir(name: str) -> bool:
    return bool(_BIN_DIR.fullmatch(name))


def publishable(source: Path) -> list[Path]:
    """The files of a build directory that go to the store: regular files with plain names."""
    return sorted(entry for entry in source.iterdir()
                  if entry.is_file() and not entry.is_symlink()
                  and _FILE_NAME.fullmatch(entry.name))


class ArtifactStore(Protocol):
    """Where a worker puts a finished build: the local store, or the server it uploads to."""

    def publish(self, bin_dir: str, source: Path) -> dict[str, Any] | None:
        """Store the files of ``source`` as ``bin_dir``, atomically. Returns the build's
        ``profiles.json`` as published when the store changed the build (a server signs an
        upload on arrival), else None."""
        ...


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        # when each build was last served by this process: the GC leaves those alone
        self._served: dict[str, float] = {}
        self._served_lock = threading.Lock()

    def file(self, bin_dir: str, name: str) -> Path | None:
        """The stored file, or None for a malformed name or a missing file."""
        if not _BIN_DIR.fullmatch(bin_dir) or not _FILE_NAME.fullmatch(name):
            return None
        path = self.root / bin_dir / name
        if not path.is_file() or path.is_symlink():
            return None
        with self._served_lock:
            self._served[bin_dir] = time.time()
        return path

    def last_served(self, bin_dir: str) -> float:
        """When a file of ``bin_dir`` was last looked up to be served (0: never)."""
        with self._served_lock:
            return self._served.get(bin_dir, 0.0)

    def builds(self) -> Iterator[tuple[str, int, float]]:
        """Every published build: bin_dir, bytes, when it was published (epoch seconds)."""
        for path in self.root.iterdir():
            if not _BIN_DIR.fullmatch(path.name):
                continue
            try:
                files = [f.stat() for f in path.iterdir()]
                published = path.stat().st_mtime
            except FileNotFoundError:  # removed meanwhile
                continue
            yield path.name, sum(f.st_size for f in files), published

    def remove(self, bin_dir: str) -> bool:
        """Remove a published build: out of sight at once (a rename), then deleted."""
        if not _BIN_DIR.fullmatch(bin_dir):
            return False
        trash = Path(tempfile.mkdtemp(prefix=f".{bin_dir}.gone.", dir=self.root))
        try:
            (self.root / bin_dir).rename(trash / "dir")
        except FileNotFoundError:
            trash.rmdir()
            return False
        shutil.rmtree(trash, ignore_errors=True)
        with self._served_lock:
            self._served.pop(bin_dir, None)
        return True

    def has(self, bin_dir: str) -> bool:
        return bool(_BIN_DIR.fullmatch(bin_dir)) and (self.root / bin_dir).is_dir()

    def publish(self, bin_dir: str, source: Path) -> None:
        """Copy the regular files of ``source`` into the store as ``bin_dir``, atomically."""
        if not _BIN_DIR.fullmatch(bin_dir):
            raise ValueError(f"not a bin_dir: {bin_dir!r}")
        staging = Path(tempfile.mkdtemp(prefix=f".{bin_dir}.", dir=self.root))
        for entry in publishable(source):
            shutil.copy2(entry, staging / entry.name)
            (staging / entry.name).chmod(0o644)
        staging.chmod(0o755)  # published files are public downloads
        destination = self.root / bin_dir
        if destination.exists():
            # an earlier build of the same request (e.g. after a failure TTL): replace it
            retired = Path(tempfile.mkdtemp(prefix=f".{bin_dir}.old.", dir=self.root))
            destination.rename(retired / "dir")
            staging.rename(destination)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            staging.rename(destination)
