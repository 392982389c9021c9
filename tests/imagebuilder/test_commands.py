"""The make command lines, exactly as upstream ASU runs them, and their validation."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from firmforge.errors import BuildError
from firmforge.imagebuilder import image_command, info_command, make_variable, manifest_command


def test_info_command() -> None:
    assert info_command() == ["make", "info"]


def test_manifest_command() -> None:
    assert manifest_command("tplink_archer-c7-v5", ["-ppp", "luci", "kmod-nft-nat6"]) == [
        "make",
        "manifest",
        "PROFILE=tplink_archer-c7-v5",
        "PACKAGES=-ppp luci kmod-nft-nat6",
        "STRIP_ABI=1",
    ]


def test_image_command_minimal() -> None:
    assert image_command("generic", ["a", "b"], "firmforge-bin/abc", "8ca650d71558") == [
        "make",
        "image",
        "PROFILE=generic",
        "PACKAGES=a b",
        "EXTRA_IMAGE_NAME=8ca650d71558",
        "BIN_DIR=firmforge-bin/abc",
    ]


def test_image_command_with_every_option() -> None:
    command = image_command(
        "generic",
        [],
        "/srv/bin",
        "x",
        files="firmforge-files",
        rootfs_partsize=512,
        filesystem="squashfs",
    )
    assert command[2:] == [
        "PROFILE=generic",
        "PACKAGES=",
        "EXTRA_IMAGE_NAME=x",
        "BIN_DIR=/srv/bin",
        "FILES=firmforge-files",
        "ROOTFS_PARTSIZE=512",
        "ROOTFS_FILESYSTEM=squashfs",
    ]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: manifest_command("x", ["$(id)"]), "forbidden character"),
        (lambda: manifest_command("x", ["two words"]), "not a single package name"),
        (lambda: manifest_command("x", [""]), "not a single package name"),
        (lambda: manifest_command("x\ny", ["a"]), "forbidden character"),
        (lambda: image_command("x", ["a"], "bin", "x;rm"), "forbidden character"),
        (lambda: image_command("x", ["a"], "bin", "x", files="a'b"), "forbidden character"),
        (lambda: image_command("x", ["a"], "bin", "x", filesystem="ext4`"), "forbidden"),
        (lambda: make_variable("lower", "x"), "not a make variable name"),
    ],
)
def test_unsafe_values_are_refused(call: Callable[[], object], message: str) -> None:
    with pytest.raises(BuildError, match=message):
        call()


def test_stage_is_named() -> None:
    with pytest.raises(BuildError) as caught:
        image_command("x", ["$x"], "bin", "x")
    assert caught.value.stage == "image"
    assert make_variable("PACKAGES", "a -b c+d luci-i18n-base-zh-cn", "manifest") == (
        "PACKAGES=a -b c+d luci-i18n-base-zh-cn"
    )
