"""The request model and upstream's request hash (research/asu-upstream.md §1.6, all vectors)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from firmforge.request import BuildRequest, packages_hash, request_hash, request_model

BASE = {"version": "1.2.3", "target": "testtarget/testsubtarget", "profile": "testprofile"}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"distro": "test", "version": "test", "target": "testtarget/testsubtarget",
          "profile": "test", "packages": ["test"]},
         "525e19496bd8d47b9b63aa5fb2b2f5da467558893d39a42eb32210007fd57800"),
        ({**BASE, "packages": ["test1", "zzz", "test2", "aaa"], "diff_packages": True},
         "1c4a79c6b711a576996cf9a5e7046a4581008c4466574096266f0e6ea4208fbc"),
        ({**BASE, "packages": ["aaa", "test2", "test1", "zzz"], "diff_packages": True},
         "1c4a79c6b711a576996cf9a5e7046a4581008c4466574096266f0e6ea4208fbc"),
        ({**BASE, "packages": ["test1", "zzz", "test2", "aaa"], "diff_packages": False},
         "c5a849e05b60611b465042594fc3489a44f7695c3d09e36433a577ee772ad7b7"),
        ({**BASE, "defaults": "echo"},
         "ba50558496f8fead41e8d5bc72afd1ad7d27bc053afb550a8bf6ee3bbcc64952"),
        ({**BASE, "packages": ["test1", "test2"]},
         "e2752ddb7d01e7415dbc1a3af022a7c7c4725aee26d0ba5da800fdd4738bf97f"),
    ],
)
def test_upstream_hash_vectors(fields: dict[str, object], expected: str) -> None:
    assert request_hash(BuildRequest.model_validate(fields)) == expected


def test_packages_hash_vector() -> None:
    assert packages_hash(["test1", "test2"]) == (
        "57aab5949a36e66b535a8cb13e39e9e093181c9000c016990d7be9eb86a9b9e8")


def test_what_the_hash_ignores_and_what_it_does_not() -> None:
    plain = BuildRequest.model_validate({**BASE, "packages": ["a"]})
    assert request_hash(plain) == request_hash(plain.model_copy(update={"client": "luci/1"}))
    comma = BuildRequest.model_validate({**BASE, "profile": "vendor,model"})
    underscore = BuildRequest.model_validate({**BASE, "profile": "vendor_model"})
    assert request_hash(comma) == request_hash(underscore)
    empty_defaults = BuildRequest.model_validate({**BASE, "defaults": ""})
    assert request_hash(empty_defaults) == request_hash(BuildRequest.model_validate(BASE))
    # packages_versions replaces packages
    versioned = BuildRequest.model_validate(
        {**BASE, "packages": ["x"], "packages_versions": {"a": "1"}})
    assert versioned.requested_packages == ["a"]
    assert request_hash(versioned) != request_hash(plain)
    first = BuildRequest.model_validate(
        {**BASE, "repositories": {"a": "https://a/x", "b": "https://b/y"}})
    second = BuildRequest.model_validate(
        {**BASE, "repositories": {"b": "https://b/y", "a": "https://a/x"}})
    assert request_hash(first) != request_hash(second)  # upstream: insertion order counts


@given(st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,12}", fullmatch=True), max_size=8))
def test_hash_is_order_and_duplicate_insensitive(packages: list[str]) -> None:
    one = BuildRequest.model_validate({**BASE, "packages": packages})
    other = BuildRequest.model_validate({**BASE, "packages": list(reversed(packages)) * 2})
    assert request_hash(one) == request_hash(other)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"target": "a/b", "profile": "p"}, "version"),
        ({**BASE, "version": "1.2.3;rm"}, "version"),
        ({**BASE, "target": "ath79"}, "target"),
        ({**BASE, "packages": ["+vim"]}, "packages"),
        ({**BASE, "packages": ["a b"]}, "packages"),
        ({**BASE, "packages_versions": {"vim": "1 2"}}, "packages_versions"),
        ({**BASE, "rootfs_size_mb": 0}, "rootfs_size_mb"),
        ({**BASE, "filesystem": "bogusfs"}, "filesystem"),
        ({**BASE, "filesystem": ""}, "filesystem"),
        ({**BASE, "repositories_mode": "x"}, "repositories_mode"),
        ({**BASE, "repositories": {"r": "ftp://x"}}, "repositories"),
        ({**BASE, "repositories": {"a b": "https://x"}}, "repositories"),
    ],
)
def test_schema_refuses(fields: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as error:
        BuildRequest.model_validate(fields)
    assert any(e["loc"][0] == field for e in error.value.errors())


def test_server_limits_apply() -> None:
    model = request_model(max_defaults_length=10, max_rootfs_size_mb=100)
    with pytest.raises(ValidationError, match="at most 10 characters"):
        model.model_validate({**BASE, "defaults": "x" * 11})
    with pytest.raises(ValidationError, match="less than or equal to 100"):
        model.model_validate({**BASE, "rootfs_size_mb": 101})
    assert model.model_validate({**BASE, "rootfs_size_mb": 100}).rootfs_size_mb == 100


def test_unknown_fields_are_ignored() -> None:
    request = BuildRequest.model_validate({**BASE, "rootfs_type": "squashfs", "extra": 1})
    assert not hasattr(request, "extra")
