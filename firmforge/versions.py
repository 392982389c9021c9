"""Package and release versions, ordered the way opkg and apk order them.

    compare_versions("1.2.3-r1", "1.2.3-r10")                 # -1
    compare_versions("2024.03.29~eb9bcb64-r1", "2024.03.29")  # -1: ``~`` sorts before the end
    compare_versions("1:0.9", "2.0")                           # 1: the epoch wins
    max(["1.0-r2", "1.0~rc1-r5", "1.0-r10"], key=version_key)  # "1.0-r10"
    release_key("24.10.0-rc2") < release_key("24.10.0")        # True

A package version is ``[epoch:]upstream[-release]``. Epochs compare as numbers, then the
upstream versions, then the releases, each with opkg's (and dpkg's) ``verrevcmp``: the text is
cut into alternating non-digit and digit runs; digit runs compare as numbers (leading zeros
ignored, a missing run is 0); non-digit runs compare character by character, letters before
other characters, and ``~`` before everything, the end of the run included (so ``1.0~rc1``
comes before ``1.0``, and a 24.10 git-date form ``2024.03.29~eb9bcb64`` before ``2024.03.29``).

Two normalisations let the 23.05 (opkg) and 24.10/25.x (apk-compatible) spellings meet:
the release ``r7`` counts as ``7`` (``-r7`` equals ``-7``), and apk's pre-release suffixes
``_alpha``, ``_beta``, ``_pre`` and ``_rc`` count as ``~alpha`` … ``~rc`` (before the final
version, in that order). Post-release suffixes such as ``_p1`` or ``_git…`` sort after, as
in apk. Keys are cached, so comparing the same versions again costs a dictionary look-up.
"""

from __future__ import annotations

import re
from functools import lru_cache, total_ordering

__all__ = ["VersionKey", "compare_versions", "is_newer", "release_key", "version_key"]

_CACHE_SIZE = 1 << 16
"""Versions whose parsed key is kept (a feed has a few thousand distinct versions)."""

_APK_PRE_RELEASE = re.compile(r"_(alpha|beta|pre|rc)")
_EPOCH = re.compile(r"^(\d+):")
_RELEASE_NUMBER = re.compile(r"^r(\d+)$")
_RUNS = re.compile(r"(\D*)(\d*)")

_Flat = tuple[int, ...]


def _order(char: str) -> int:
    """dpkg/opkg ``order()``: ``~`` lowest, then the end of a run (0), letters, the rest."""
    if char == "~":
        return -1
    if char.isalpha() and char.isascii():
        return ord(char)
    return ord(char) + 256


def _flatten(text: str) -> _Flat:
    """``text`` as a tuple whose zero-padded lexicographic order is ``verrevcmp``'s.

    Each non-digit run becomes its characters' orders followed by 0 (the end of the run,
    which no character has), each digit run its number; trailing zeros are dropped, so
    texts that compare equal have equal tuples.
    """
    flat: list[int] = []
    for letters, digits in _RUNS.findall(text):
        if not letters and not digits:
            continue
        flat.extend(_order(char) for char in letters)
        flat.append(0)
        flat.append(int(digits) if digits else 0)
    while flat and flat[-1] == 0:
        flat.pop()
    return tuple(flat)


def _compare_flat(a: _Flat, b: _Flat) -> int:
    """Compare as if both tuples went on with zeros forever."""
    if a == b:
        return 0
    if len(a) < len(b) and b[: len(a)] == a:
        rest = next(item for item in b[len(a) :] if item)  # exists: no trailing zeros
        return -1 if rest > 0 else 1
    if len(b) < len(a) and a[: len(b)] == b:
        rest = next(item for item in a[len(b) :] if item)
        return 1 if rest > 0 else -1
    return -1 if a < b else 1


@total_ordering
class VersionKey:
    """A sortable, hashable package version (see the module docstring for the order)."""

    __slots__ = ("epoch", "release", "text", "upstream")

    def __init__(self, text: str) -> None:
        self.text = text
        rest = _APK_PRE_RELEASE.sub(r"~\1", text.strip())
        epoch = _EPOCH.match(rest)
        self.epoch = int(epoch.group(1)) if epoch else 0
        if epoch:
            rest = rest[epoch.end() :]
        upstream, dash, release = rest.rpartition("-")
        if not dash:
            upstream, release = release, ""
        number = _RELEASE_NUMBER.match(release)
        self.upstream: _Flat = _flatten(upstream)
        self.release: _Flat = _flatten(number.group(1) if number else release)

    def compare(self, other: VersionKey) -> int:
        """-1, 0 or 1 as ``self`` sorts before, with or after ``other``."""
        if self.epoch != other.epoch:
            return -1 if self.epoch < other.epoch else 1
        return _compare_flat(self.upstream, other.upstream) or _compare_flat(
            self.release, other.release
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VersionKey):
            return NotImplemented
        return self.compare(other) == 0

    def __lt__(self, other: VersionKey) -> bool:
        return self.compare(other) < 0

    def __hash__(self) -> int:
        return hash((self.epoch, self.upstream, self.release))

    def __repr__(self) -> str:
        return f"VersionKey({self.text!r})"


@lru_cache(maxsize=_CACHE_SIZE)
def version_key(version: str) -> VersionKey:
    """The (cached) sort key of a package version, for ``sorted``/``max``."""
    return VersionKey(version)


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as package version ``a`` is older than, equal to or newer than ``b``."""
    if a == b:
        return 0
    return version_key(a).compare(version_key(b))


@lru_cache(maxsize=_CACHE_SIZE)
def is_newer(candidate: str, installed: str) -> bool:
    """True if ``candidate`` is a strictly newer package version than ``installed`` (cached:
    a fleet on one release asks about the same pairs again and again)."""
    return candidate != installed and version_key(candidate).compare(version_key(installed)) > 0


def release_key(version: str) -> VersionKey:
    """The sort key of an OpenWrt release name: ``24.10.0-rc1`` < ``24.10.0`` < ``24.10.1``.

    Branch snapshots (``24.10-SNAPSHOT``) sort after the branch's releases and ``SNAPSHOT``
    after everything.
    """
    if version == "SNAPSHOT":
        return version_key("99999")
    if version.endswith("-SNAPSHOT"):
        return version_key(version.removesuffix("-SNAPSHOT") + ".99999")
    return version_key(version.replace("-rc", "~rc"))
