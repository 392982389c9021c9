"""Finished build artifacts on local disk: ``<root>/<bin_dir>/<file>``.

A build's directory appears atomically (written elsewhere, then renamed into place), so a
reader never sees half a build. Names from URLs are checked before they touch the disk.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

__all__ = ["LocalStore"]

_BIN_DIR = re.compile(r"^[0-9a-f]{64}$")
_FILE_NAME = re.compile(r"^[\w][\w.+~,-]*$")


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def file(self, bin_dir: str, name: str) -> Path | None:
        """The stored file, or None for a malformed name or a missing file."""
        if not _BIN_DIR.fullmatch(bin_dir) or not _FILE_NAME.fullmatch(name):
            return None
        path = self.root / bin_dir / name
        return path if path.is_file() and not path.is_symlink() else None

    def has(self, bin_dir: str) -> bool:
        return bool(_BIN_DIR.fullmatch(bin_dir)) and (self.root / bin_dir).is_dir()

    def publish(self, bin_dir: str, source: Path) -> Path:
        """Copy the regular files of ``source`` into the store as ``bin_dir``, atomically."""
        if not _BIN_DIR.fullmatch(bin_dir):
            raise ValueError(f"not a bin_dir: {bin_dir!r}")
        staging = Path(tempfile.mkdtemp(prefix=f".{bin_dir}.", dir=self.root))
        for entry in source.iterdir():
            if entry.is_file() and not entry.is_symlink() and _FILE_NAME.fullmatch(entry.name):
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
        return destination
