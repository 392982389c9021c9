"""Reading what an ImageBuilder prints: ``make info``, ``make manifest`` and the errors.

Formats: research/imagebuilder-formats.md §1.5 (info), §1.6 (manifest); the opkg and apk error
texts are those listed in upstream ASU's ``check_package_errors`` (research/asu-upstream.md
§2.6). Nothing outside this module parses ImageBuilder output.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from firmforge.errors import BuildError, PackageSelectionError

__all__ = [
    "ImageBuilderInfo",
    "ProfileInfo",
    "diff_packages",
    "image_too_big",
    "package_selection_error",
    "parse_info",
    "parse_manifest",
]


@dataclass(frozen=True)
class ProfileInfo:
    title: str | None
    packages: list[str] = field(default_factory=list)
    """``DEVICE_PACKAGES``; may hold ``-name`` entries that remove a default package."""
    supported_devices: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ImageBuilderInfo:
    target: str
    arch: str | None
    """``Current Architecture`` (CPU arch, not ``arch_packages``); older IBs do not print it."""
    revision: str
    default_packages: list[str]
    profiles: dict[str, ProfileInfo]


# -- make info --------------------------------------------------------------------------------

_HEADER = re.compile(r'^Current (Target|Architecture|Revision): "(.*)"$')
_PROFILE_ID = re.compile(r"^([A-Za-z0-9_.,+-]+):$")
_PROFILE_KEYS = ("Packages:", "hasImageMetadata:", "SupportedDevices:")


@dataclass
class _ProfileDraft:
    title: str | None = None
    packages: list[str] = field(default_factory=list)
    supported_devices: list[str] = field(default_factory=list)
    keyed: bool = False  # a "Key:" line was seen: later unknown lines are not the title

    def add(self, text: str) -> None:
        key = next((k for k in _PROFILE_KEYS if text.startswith(k)), None)
        if key == "Packages:":
            self.packages = text.removeprefix(key).split()
        elif key == "SupportedDevices:":
            self.supported_devices = text.removeprefix(key).split()
        elif key is None and not self.keyed and self.title is None:
            self.title = text  # the name line comes first and is absent for untitled profiles
        self.keyed = self.keyed or key is not None


def parse_info(stdout: str) -> ImageBuilderInfo:
    """Parse ``make info``; ``BuildError`` (stage ``info``) if a required line is missing."""
    headers: dict[str, str] = {}
    default_packages: list[str] | None = None
    profiles: dict[str, _ProfileDraft] = {}
    current: _ProfileDraft | None = None
    in_profiles = False
    for line in stdout.splitlines():
        if not in_profiles:
            if match := _HEADER.match(line):
                headers[match.group(1)] = match.group(2)
            elif line.startswith("Default Packages:"):
                default_packages = line.removeprefix("Default Packages:").split()
            elif line.rstrip() == "Available Profiles:":
                in_profiles = True
            continue
        if match := _PROFILE_ID.match(line):
            current = profiles[match.group(1)] = _ProfileDraft()
        elif current is not None and line.startswith((" ", "\t")) and line.strip():
            current.add(line.strip())
    missing = [
        what
        for what, value in (
            ("Current Target", headers.get("Target")),
            ("Current Revision", headers.get("Revision")),
            ("Default Packages", default_packages),
            ("Available Profiles", in_profiles or None),
        )
        if value is None
    ]
    if missing:
        raise BuildError(
            f"Could not read the ImageBuilder's make info output: no {', '.join(missing)}",
            stage="info",
            stdout=stdout,
        )
    return ImageBuilderInfo(
        target=headers["Target"],
        arch=headers.get("Architecture"),
        revision=headers["Revision"],
        default_packages=default_packages or [],
        profiles={
            name: ProfileInfo(draft.title, draft.packages, draft.supported_devices)
            for name, draft in profiles.items()
        },
    )


# -- make manifest ----------------------------------------------------------------------------


def parse_manifest(stdout: str) -> dict[str, str]:
    """``name - version`` (opkg, apk 25.12+) or ``name version`` (24.10-era apk) lines."""
    manifest: dict[str, str] = {}
    for line in stdout.splitlines():
        line = line.strip()
        if " - " in line:
            name, _, version = line.partition(" - ")
        else:
            name, _, version = line.partition(" ")
        if name and version.strip():
            manifest[name] = version.strip()
    return manifest


# -- errors -----------------------------------------------------------------------------------

# opkg prints each message of "Collected errors:" as " * <function>: <text>"; continuation
# messages (one per conflicting package or missing dependency) have no function name.
_OPKG_CANNOT_INSTALL = re.compile(r"Cannot install package (\S+?)\.?$", re.MULTILINE)
_OPKG_CONFLICT_HEAD = re.compile(r"The following packages conflict with (\S+?):")
_OPKG_CONFLICT_ITEM = re.compile(r"check_conflicts_for:\s+([^\s*]+)")
_OPKG_CLASH = re.compile(
    r"check_data_file_clashes: Package (\S+) wants to install file .*?\n"
    r"\s*But that file is already provided by package\s+\*?\s*(\S+)"
)
_OPKG_UNSATISFIED_HEAD = re.compile(r"Cannot satisfy the following dependencies for (\S+?):")
_OPKG_UNRESOLVED = re.compile(r"cannot find dependency (\S+)(?: \([^)]*\))? for (\S+)")
_OPKG_BARE_ITEM = re.compile(r"\s*\*\s+(?![a-z_]+: )(\S.*?)\s*")
# apk: "ERROR: unable to select packages:", then a two-space label per package and four-space
# "key: values" lines, long values wrapped onto deeper-indented lines.
_APK_NO_SUCH = re.compile(r"^\s+(\S+) \(no such package\):", re.MULTILINE)
_APK_LABEL = re.compile(r" {1,3}(\S.*):")
_APK_KEY = re.compile(r"\s+([a-z][a-z ]*): (.*)")
_APK_OVERWRITE = re.compile(r"(\S+?):? trying to overwrite .+? owned by (\S+?)\.?$", re.MULTILINE)
_APK_VERSION = re.compile(r"-\d[^-]*-r\d+$")  # name-1.2.3-r4 → name


def package_selection_error(
    stderr: str, stage: str, stdout: str = ""
) -> PackageSelectionError | None:
    """The packages opkg/apk could not find or could not install together, if it says so.

    A package reported both ways counts as a conflict; a package that exists but whose
    dependencies do not is not "missing" itself: its missing dependencies are.
    """
    missing: set[str] = set()
    conflicts: set[str] = set()
    _opkg_errors(stderr, missing, conflicts)
    _apk_errors(stderr, missing, conflicts)
    missing -= conflicts
    if not missing and not conflicts:
        return None
    return PackageSelectionError(
        sorted(missing), sorted(conflicts), stage=stage, stdout=stdout, stderr=stderr
    )


def _opkg_errors(stderr: str, missing: set[str], conflicts: set[str]) -> None:
    has_unmet_dependencies: set[str] = set()
    in_unsatisfied = False
    for line in stderr.splitlines():
        if match := _OPKG_UNSATISFIED_HEAD.search(line):
            has_unmet_dependencies.add(match.group(1))
            in_unsatisfied = True
            continue
        if in_unsatisfied and (match := _OPKG_BARE_ITEM.fullmatch(line)):
            missing.add(_bare_name(match.group(1)))  # " * \tlibfoo (>= 1.2)"
            continue
        in_unsatisfied = False
        if match := _OPKG_CONFLICT_HEAD.search(line):
            conflicts.add(match.group(1))
        else:
            conflicts.update(_OPKG_CONFLICT_ITEM.findall(line))
    for match in _OPKG_CLASH.finditer(stderr):
        conflicts.update(match.groups())
    for dependency, package in _OPKG_UNRESOLVED.findall(stderr):
        missing.add(dependency)
        has_unmet_dependencies.add(package)
    missing.update(
        name for name in _OPKG_CANNOT_INSTALL.findall(stderr) if name not in has_unmet_dependencies
    )


def _apk_errors(stderr: str, missing: set[str], conflicts: set[str]) -> None:
    missing.update(_bare_name(name) for name in _APK_NO_SUCH.findall(stderr))
    package: str | None = None
    key: str | None = None
    for line in stderr.splitlines():
        if not line.startswith(" "):
            package = key = None
            continue
        if label := _APK_LABEL.fullmatch(line):
            name = label.group(1)
            package = None if " " in name else _apk_name(name)
            key = None
            continue
        if match := _APK_KEY.fullmatch(line):
            key, values = match.group(1), match.group(2)
        else:
            values = line  # a wrapped continuation of the previous key
        if key == "conflicts":
            if package:
                conflicts.add(package)
            conflicts.update(_apk_name(item.split("[", 1)[0]) for item in values.split())
    for match in _APK_OVERWRITE.finditer(stderr):
        conflicts.update(_apk_name(name) for name in match.groups())


def _bare_name(text: str) -> str:
    """``libfoo (>= 1.2)`` / ``libfoo>=1.2`` / ``kmod-x=6.6`` → the package name."""
    return re.split(r"[\s<>=~(]", text.strip(), maxsplit=1)[0]


def _apk_name(text: str) -> str:
    """``odhcpd-2024.05.08~a2988231-r1`` → ``odhcpd``; constraints are cut as well."""
    return _bare_name(_APK_VERSION.sub("", text.rstrip(":")))


def image_too_big(stderr: str) -> bool:
    """The image does not fit the device (``is too big``, or mkfs ran ``out of space?``)."""
    return "is too big" in stderr or "out of space?" in stderr


# -- PACKAGES ---------------------------------------------------------------------------------


def diff_packages(
    requested: Sequence[str],
    default_packages: Iterable[str],
    profile_packages: Iterable[str],
) -> list[str]:
    """The ``PACKAGES`` value that installs exactly ``requested`` (research §1.7).

    Every default or device package not requested is removed with ``-name`` (sorted, and a
    device entry that is itself a removal, ``-name``, stays ``-name``), followed by the requested
    packages in the order given. Unlike upstream, a device removal ``-x`` is dropped when ``x``
    is requested (the ImageBuilder would otherwise remove the package the user asked for), and
    a removal the request itself lists is not repeated.
    """
    wanted = set(requested)
    removals = {
        "-" + package.removeprefix("-")
        for package in {*default_packages, *profile_packages}
        if not {package, package.removeprefix("-"), "-" + package.removeprefix("-")} & wanted
    }
    return sorted(removals) + list(requested)
