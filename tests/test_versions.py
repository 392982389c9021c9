"""Package version order: tricky cases, and properties against a port of opkg's verrevcmp."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmforge.versions import VersionKey, compare_versions, is_newer, release_key, version_key


def _reference_order(char: str) -> int:
    if char.isdigit():
        return 0
    if char.isalpha():
        return ord(char)
    if char == "~":
        return -1
    return ord(char) + 256


def _verrevcmp(val: str, ref: str) -> int:
    """opkg's ``verrevcmp`` (libopkg/pkg.c), transcribed pointer by pointer."""
    i = j = 0
    while i < len(val) or j < len(ref):
        first_diff = 0
        while (i < len(val) and not val[i].isdigit()) or (j < len(ref) and not ref[j].isdigit()):
            vc = _reference_order(val[i]) if i < len(val) else 0
            rc = _reference_order(ref[j]) if j < len(ref) else 0
            if vc != rc:
                return vc - rc
            i, j = i + 1, j + 1
        while i < len(val) and val[i] == "0":
            i += 1
        while j < len(ref) and ref[j] == "0":
            j += 1
        while i < len(val) and val[i].isdigit() and j < len(ref) and ref[j].isdigit():
            if not first_diff:
                first_diff = ord(val[i]) - ord(ref[j])
            i, j = i + 1, j + 1
        if i < len(val) and val[i].isdigit():
            return 1
        if j < len(ref) and ref[j].isdigit():
            return -1
        if first_diff:
            return first_diff
    return 0


def _reference(a: str, b: str) -> int:
    """opkg's ``pkg_version_compare``: epoch, then version, then revision."""

    def split(text: str) -> tuple[int, str, str]:
        epoch, colon, rest = text.partition(":")
        if not colon:
            epoch, rest = "0", text
        version, dash, revision = rest.rpartition("-")
        return (int(epoch), version, revision) if dash else (int(epoch), rest, "")

    (ea, va, ra), (eb, vb, rb) = split(a), split(b)
    if ea != eb:
        return ea - eb
    return _verrevcmp(va, vb) or _verrevcmp(ra, rb)


def _sign(number: int) -> int:
    return (number > 0) - (number < 0)


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("1.2.3-r1", "1.2.3-r10"),  # releases as numbers, not text
        ("1.2.3-9", "1.2.3-10"),
        ("1.9", "1.10"),
        ("1.0", "1.0.0"),  # more segments win
        ("1.0", "1.0a"),  # a letter after the end is newer …
        ("1.0~rc1", "1.0"),  # … but ~ is older than the end
        ("1.0~rc1", "1.0~rc2"),
        ("1.0~~", "1.0~"),
        ("1.0~beta", "1.0~rc1"),
        ("1.0_rc1", "1.0"),  # apk pre-release suffixes
        ("1.0_alpha", "1.0_beta"),
        ("1.0_pre2", "1.0_rc1"),
        ("1.0", "1.0_p1"),  # apk post-release suffix
        ("2024.03.29~eb9bcb64-r1", "2024.03.29-r1"),  # 24.10 git-date forms
        ("2024.03.29~eb9bcb64-r1", "2024.03.29~eb9bcb64-r2"),
        ("2024.03.29~eb9bcb64-r9", "2024.06.01~0a1b2c3d-r1"),
        ("2024.12.03~8d2bcc8e-r1", "2025.01.01~00000000-r1"),
        ("99.9-r9", "1:0.1-r1"),  # the epoch wins
        ("1:2.0", "2:0.1"),
        ("6.6.110~0c8e0ea62b8c5b7ee8bd7f04cff54a8e-r1", "6.6.119~ab12cd-r1"),  # kmods
        ("5.15.167-1-1a2b3c", "5.15.167-1-1a2b3d"),
        ("1.0-r1", "1.0-r1.1"),
        ("1.0-1", "1.0.1-1"),  # upstream before release
        ("1.0a-r9", "1.0b-r1"),
        ("1.0z", "1.0+"),  # letters before other characters
        ("1.0", "1.0+git1"),
    ],
)
def test_tricky_order(older: str, newer: str) -> None:
    assert compare_versions(older, newer) == -1
    assert compare_versions(newer, older) == 1
    assert is_newer(newer, older)
    assert not is_newer(older, newer)
    assert version_key(older) < version_key(newer)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("1.0-1", "1.0-r1"),  # 23.05 and 24.10 spellings of a release
        ("1.01", "1.1"),  # leading zeros
        ("1.0a", "1.0a0"),  # a missing number is 0
        ("0:1.0", "1.0"),  # epoch 0 is no epoch
        ("1.0-r007", "1.0-r7"),
        ("1.0 ", "1.0"),
    ],
)
def test_equal_spellings(a: str, b: str) -> None:
    assert compare_versions(a, b) == 0
    assert version_key(a) == version_key(b)
    assert hash(version_key(a)) == hash(version_key(b))
    assert not is_newer(a, b)


def test_sorting_and_max() -> None:
    versions = ["1.0-r10", "1.0~rc1-r5", "1:0.1", "1.0-r2", "0.9.9", "1.0"]
    assert sorted(versions, key=version_key) == [
        "0.9.9", "1.0~rc1-r5", "1.0", "1.0-r2", "1.0-r10", "1:0.1"
    ]
    assert max(versions, key=version_key) == "1:0.1"


def test_release_order() -> None:
    ordered = ["23.05.0-rc1", "23.05.0", "23.05.5", "24.10.0-rc1", "24.10.0-rc7", "24.10.0",
               "24.10.4", "24.10.5", "24.10.10", "24.10-SNAPSHOT", "SNAPSHOT"]
    assert sorted(reversed(ordered), key=release_key) == ordered


# generated versions: opkg's character classes, with the separators that occur in feeds
_segment = st.text(alphabet="0123456789abz.~+", min_size=0, max_size=8)
_version = st.builds(
    lambda epoch, upstream, release: f"{epoch}{upstream}{release}",
    st.sampled_from(["", "1:", "2:"]),
    _segment,
    st.one_of(st.just(""), st.builds(lambda n: f"-{n}", _segment.filter(lambda s: "-" not in s))),
)


@given(_version, _version)
def test_matches_opkg(a: str, b: str) -> None:
    assert compare_versions(a, b) == _sign(_reference(a, b))


@given(_version, _version)
def test_antisymmetric(a: str, b: str) -> None:
    assert compare_versions(a, b) == -compare_versions(b, a)
    assert (compare_versions(a, b) == 0) == (version_key(a) == version_key(b))


@given(_version, _version, _version)
def test_transitive(a: str, b: str, c: str) -> None:
    ab, bc, ac = compare_versions(a, b), compare_versions(b, c), compare_versions(a, c)
    if ab <= 0 and bc <= 0:
        assert ac <= 0
        if ab < 0 or bc < 0:
            assert ac < 0
    if ab >= 0 and bc >= 0:
        assert ac >= 0


@given(_version)
def test_reflexive_and_equal_keys_hash_alike(a: str) -> None:
    assert compare_versions(a, a) == 0
    assert version_key(a) == VersionKey(a)  # the cache changes nothing
    assert hash(version_key(a)) == hash(VersionKey(a))
