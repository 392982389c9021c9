"""What a router is and which packages its user chose, read from its own files.

    facts = read_device(LocalReader(Path("tests/client_cli/roots/opkg-24.10")))
    facts.profile, facts.version, facts.packages    # "tplink,archer-c7-v5", "24.10.4", {...}

Sources (research/asu-clients.md §2.6, imagebuilder-formats.md §3.3):

- ``/etc/board.json`` ``model.id``: the board name, which servers accept as the profile;
- ``/etc/openwrt_release``: ``DISTRIB_ID`` (distro, lower-cased), ``DISTRIB_RELEASE``,
  ``DISTRIB_REVISION``, ``DISTRIB_TARGET``;
- opkg (≤ 24.10) ``/usr/lib/opkg/status``: installed packages whose ``Status:`` flags hold
  ``user`` (≤ 23.05 images) or that are not ``Auto-Installed: yes`` (24.10 images, where the
  flag was rewritten to ``ok``) — what ``rpc-sys packagelist`` reports, ABI suffix stripped;
- apk (25.12+) ``/etc/apk/world`` (constraints such as ``name=1.2``, ``name><2``, ``name@tag``)
  with versions from ``/lib/apk/db/installed`` (``P:``/``V:`` records);
- ``/proc/mounts`` (``/rom`` or ``/``) for the root filesystem type, ``/sys/firmware/efi`` for EFI.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Any, Literal

from firmforge.client._errors import DeviceError
from firmforge.client._readers import FileReader
from firmforge.upstream import strip_abi

__all__ = ["DeviceFacts", "parse_apk", "parse_opkg_status", "parse_release", "read_device"]

BOARD_JSON = "/etc/board.json"
RELEASE = "/etc/openwrt_release"
OPKG_STATUS = "/usr/lib/opkg/status"
APK_WORLD = "/etc/apk/world"
APK_INSTALLED = "/lib/apk/db/installed"
MOUNTS = "/proc/mounts"
EFI = "/sys/firmware/efi"

_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9-]*):\s?(.*)$")
_APK_RECORD = re.compile(r"^([A-Za-z]):(.*)$")
# a world constraint: optional "!" (a conflict), the name, then apk's version/tag suffix
_WORLD = re.compile(r"^(!?)([A-Za-z0-9][A-Za-z0-9._+-]*)((?:[@~<>=].*)?)$")
_ABI_TAG = "openwrt:abiversion="
_FILESYSTEMS = {"squashfs", "ext4", "ubifs", "jffs2"}
# auc's rule: x86 servers know the one "generic" profile, whatever the board says
_GENERIC_TARGETS = {"x86/64", "x86/generic", "x86/geode", "x86/legacy"}


@dataclass(frozen=True)
class DeviceFacts:
    """One device: release, board and the packages its user chose (name → installed version)."""

    distro: str
    version: str
    revision: str
    target: str
    board_name: str
    package_manager: Literal["opkg", "apk"]
    packages: dict[str, str]
    constraints: dict[str, str] = field(default_factory=dict)
    filesystem: str | None = None
    efi: bool = False
    warnings: tuple[str, ...] = ()

    @property
    def profile(self) -> str:
        """What to send as ``profile``: the board name (servers map it), ``generic`` on x86."""
        return "generic" if self.target in _GENERIC_TARGETS else self.board_name

    def to_json(self) -> dict[str, Any]:
        return {
            "distro": self.distro, "version": self.version, "revision": self.revision,
            "target": self.target, "board_name": self.board_name, "profile": self.profile,
            "package_manager": self.package_manager, "filesystem": self.filesystem,
            "efi": self.efi, "packages": dict(sorted(self.packages.items())),
            "constraints": dict(sorted(self.constraints.items())),
            "warnings": list(self.warnings),
        }


def _text(reader: FileReader, path: str, *, required: bool = True) -> str | None:
    data = reader.read(path)
    if data is None:
        if required:
            raise DeviceError(f"{reader.description}: {path} is missing "
                              "(is this an OpenWrt root? use --root DIR or --ssh user@host)")
        return None
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        raise DeviceError(f"{path}: not a text file (byte {exc.start} is not UTF-8)") from exc


def parse_board(text: str) -> str:
    """The board name, ``model.id`` of ``/etc/board.json``."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise DeviceError(f"{BOARD_JSON}: not valid JSON ({exc})") from exc
    model = document.get("model") if isinstance(document, dict) else None
    board = model.get("id") if isinstance(model, dict) else None
    if not isinstance(board, str) or not board.strip():
        raise DeviceError(f"{BOARD_JSON}: no model.id (the board name)")
    return board.strip()


def parse_release(text: str) -> dict[str, str]:
    """``/etc/openwrt_release`` as ``{KEY: value}`` (shell assignments, quoted or not)."""
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            words = shlex.split(stripped)
        except ValueError as exc:
            raise DeviceError(f"{RELEASE} line {number}: {exc}: {line!r}") from exc
        if len(words) != 1 or "=" not in words[0]:
            raise DeviceError(f"{RELEASE} line {number}: expected KEY='value', got {line!r}")
        key, _, value = words[0].partition("=")
        values[key] = value
    return values


def _release_field(values: dict[str, str], key: str) -> str:
    value = values.get(key, "").strip()
    if not value:
        raise DeviceError(f"{RELEASE}: {key} is missing or empty")
    return value


def _stanzas(text: str, path: str, pattern: re.Pattern[str]) -> list[dict[str, str]]:
    """Blank-line separated records of ``Key: value`` lines (continuations start with space)."""
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            if current:
                stanzas.append(current)
            current = {}
            continue
        if line[0] in " \t":
            if not current:
                raise DeviceError(f"{path} line {number}: continuation line outside a record")
            continue  # Conffiles and Description bodies: nothing we need
        match = pattern.match(line)
        if match is None:
            raise DeviceError(f"{path} line {number}: expected 'Field: value', got {line[:80]!r}")
        current.setdefault(match.group(1), match.group(2).strip())
    if current:
        stanzas.append(current)
    return stanzas


def parse_opkg_status(text: str) -> dict[str, str]:
    """The user's packages in an opkg ``status`` file: ``{name without ABI: version}``.

    A package counts when it is installed (``Status: install <flags> installed``) and either
    its flags hold ``user`` or it lacks ``Auto-Installed: yes`` — the union of what rpcd's
    ``packagelist`` reported before and after 24.10 removed the ``user`` flag from images.
    """
    packages: dict[str, str] = {}
    for stanza in _stanzas(text, OPKG_STATUS, _FIELD):
        name, version = stanza.get("Package", ""), stanza.get("Version", "")
        status = stanza.get("Status", "").split()
        if not name or not version or len(status) != 3:
            continue
        want, flags, state = status
        if want != "install" or state != "installed":
            continue
        user = "user" in flags.split(",")
        auto = stanza.get("Auto-Installed", "").lower() == "yes"
        if user or not auto:
            packages[strip_abi(name, stanza.get("ABIVersion", ""))] = version
    if not packages:
        raise DeviceError(f"{OPKG_STATUS}: no installed packages chosen by the user")
    return packages


def parse_apk(world: str, installed: str) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """``/etc/apk/world`` with versions from ``/lib/apk/db/installed``.

    Returns ``({name: version}, {name: constraint suffix}, warnings)``; world names carry no
    ABI suffix, installed names may (``g:`` holds ``openwrt:abiversion=<abi>``), so both
    spellings are matched as rpcd does.
    """
    versions: dict[str, str] = {}
    for stanza in _stanzas(installed, APK_INSTALLED, _APK_RECORD):
        name, version = stanza.get("P", ""), stanza.get("V", "")
        if not name or not version:
            continue
        versions[name] = version
        for tag in stanza.get("g", "").split():
            if tag.startswith(_ABI_TAG):
                versions.setdefault(strip_abi(name, tag.removeprefix(_ABI_TAG)), version)
    packages: dict[str, str] = {}
    constraints: dict[str, str] = {}
    warnings: list[str] = []
    for number, line in enumerate(world.splitlines(), 1):
        for token in line.split():
            match = _WORLD.match(token)
            if match is None:
                raise DeviceError(f"{APK_WORLD} line {number}: not a package constraint: "
                                  f"{token[:80]!r}")
            conflict, name, suffix = match.groups()
            if conflict:
                continue  # "!name" forbids a package; nothing to install
            if name not in versions:
                warnings.append(f"{APK_WORLD} names {name}, which is not installed; left out")
                continue
            packages[name] = versions[name]
            if suffix:
                constraints[name] = suffix
    if not packages:
        raise DeviceError(f"{APK_WORLD}: no installed packages listed")
    return packages, constraints, warnings


def _filesystem(mounts: str | None) -> str | None:
    """The root filesystem type as ``ubus system board`` reports it (``/rom`` first)."""
    if not mounts:
        return None
    by_point = {}
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            by_point.setdefault(parts[1], parts[2])
    for point in ("/rom", "/"):
        if by_point.get(point) in _FILESYSTEMS:
            return by_point[point]
    return None


def read_device(reader: FileReader) -> DeviceFacts:
    """Read and check everything the client sends about a device; ``DeviceError`` if not."""
    board = parse_board(_text(reader, BOARD_JSON) or "")
    release = parse_release(_text(reader, RELEASE) or "")
    target = _release_field(release, "DISTRIB_TARGET")
    if target.count("/") != 1:
        raise DeviceError(f"{RELEASE}: DISTRIB_TARGET {target!r} is not target/subtarget")
    status = _text(reader, OPKG_STATUS, required=False)
    constraints: dict[str, str] = {}
    warnings: list[str] = []
    manager: Literal["opkg", "apk"]
    if status is not None:
        manager, packages = "opkg", parse_opkg_status(status)
    else:
        world = _text(reader, APK_WORLD, required=False)
        if world is None:
            raise DeviceError(f"{reader.description}: neither {OPKG_STATUS} (opkg) nor "
                              f"{APK_WORLD} (apk) exists; cannot tell the installed packages")
        installed = _text(reader, APK_INSTALLED) or ""
        manager = "apk"
        packages, constraints, warnings = parse_apk(world, installed)
    return DeviceFacts(
        distro=_release_field(release, "DISTRIB_ID").lower(),
        version=_release_field(release, "DISTRIB_RELEASE"),
        revision=release.get("DISTRIB_REVISION", "").strip(),
        target=target,
        board_name=board,
        package_manager=manager,
        packages=packages,
        constraints=constraints,
        filesystem=_filesystem(_text(reader, MOUNTS, required=False)),
        efi=reader.exists(EFI),
        warnings=tuple(warnings),
    )
