"""The ``make`` command lines firmforge runs in an ImageBuilder, and their validation.

Values come from requests the catalog has validated, but they are checked again here, where
they meet ``make``: a ``VAR=value`` argument is refused unless ``VAR`` is an upper-case name and
``value`` uses only ``[A-Za-z0-9_.,+~:/=@ -]``. That excludes ``$`` (make and shell expansion),
quotes, backslashes, ``;|&<>`` and ``*?[]``, newlines and NUL; other arguments (targets, flags)
may only use ``[A-Za-z0-9_.-]``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from firmforge.errors import BuildError

__all__ = [
    "check_arguments",
    "image_command",
    "info_command",
    "make_variable",
    "manifest_command",
]

_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
_VALUE = re.compile(r"[A-Za-z0-9_.,+~:/=@ -]*")
_WORD = re.compile(r"[A-Za-z0-9_.-]+")


def _refuse(argument: str, why: str, stage: str) -> BuildError:
    return BuildError(f"Refusing make argument {argument!r}: {why}", stage=stage)


def make_variable(name: str, value: str, stage: str = "") -> str:
    """``NAME=value`` after checking both (``BuildError`` otherwise)."""
    argument = f"{name}={value}"
    if not _NAME.fullmatch(name):
        raise _refuse(argument, "not a make variable name", stage)
    if not _VALUE.fullmatch(value):
        raise _refuse(argument, "the value contains a forbidden character", stage)
    return argument


def check_arguments(args: Sequence[str], stage: str = "") -> None:
    """Validate a whole argv (the program, ``args[0]``, is ours and not checked)."""
    if not args:
        raise BuildError("Refusing to run an empty command", stage=stage)
    for argument in args[1:]:
        name, equals, value = argument.partition("=")
        if equals:
            make_variable(name, value, stage)
        elif not _WORD.fullmatch(argument):
            raise _refuse(argument, "not a plain make target or flag", stage)


def info_command() -> list[str]:
    return ["make", "info"]


def manifest_command(profile: str, packages: Sequence[str]) -> list[str]:
    """``make manifest`` with ABI suffixes stripped, as clients compare plain names."""
    stage = "manifest"
    return [
        "make",
        "manifest",
        make_variable("PROFILE", profile, stage),
        make_variable("PACKAGES", _package_list(packages, stage), stage),
        make_variable("STRIP_ABI", "1", stage),
    ]


def image_command(
    profile: str,
    packages: Sequence[str],
    bin_dir: str,
    extra_image_name: str,
    files: str | None = None,
    rootfs_partsize: int | None = None,
    filesystem: str | None = None,
) -> list[str]:
    """``make image`` (research/asu-upstream.md §1.4 step 6); optional variables only if set."""
    stage = "image"
    command = [
        "make",
        "image",
        make_variable("PROFILE", profile, stage),
        make_variable("PACKAGES", _package_list(packages, stage), stage),
        make_variable("EXTRA_IMAGE_NAME", extra_image_name, stage),
        make_variable("BIN_DIR", str(bin_dir), stage),
    ]
    if files is not None:
        command.append(make_variable("FILES", str(files), stage))
    if rootfs_partsize is not None:
        command.append(make_variable("ROOTFS_PARTSIZE", str(int(rootfs_partsize)), stage))
    if filesystem is not None:
        command.append(make_variable("ROOTFS_FILESYSTEM", filesystem, stage))
    return command


def _package_list(packages: Sequence[str], stage: str) -> str:
    """Space-joined; a name with a space in it would silently become two packages."""
    for package in packages:
        if not package or " " in package:
            raise _refuse(f"PACKAGES={package}", "not a single package name", stage)
    return " ".join(packages)
