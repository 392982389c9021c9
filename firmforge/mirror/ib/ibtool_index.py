"""opkg data formats for the synthetic ImageBuilder: versions, control stanzas, dependencies.

Semantics follow ``openwrt/opkg-lede`` (research §3): Debian-style version ordering with epochs
and ``~``, ``Depends`` entries ``a, b (>= 1.0), c | d``, and control/``Packages`` stanzas with
continuation lines. Standard library only.
"""

from __future__ import annotations

import functools
import io
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Dependency",
    "IpkContents",
    "Package",
    "compare_versions",
    "parse_depends",
    "parse_stanzas",
    "read_ipk",
    "render_stanza",
]


# --- versions (opkg-lede libopkg/pkg.c verrevcmp, pkg_compare_versions) ---------------------


def _order(char: str) -> int:
    if char == "~":
        return -1
    if char == "" or char.isdigit():
        return 0
    if char.isalpha():
        return ord(char)
    return ord(char) + 256


def _verrevcmp(left: str, right: str) -> int:
    i = j = 0
    while i < len(left) or j < len(right):
        first_diff = 0
        while (i < len(left) and not left[i].isdigit()) or (
            j < len(right) and not right[j].isdigit()
        ):
            lc = _order(left[i] if i < len(left) else "")
            rc = _order(right[j] if j < len(right) else "")
            if lc != rc:
                return lc - rc
            i += 1
            j += 1
        while i < len(left) and left[i] == "0":
            i += 1
        while j < len(right) and right[j] == "0":
            j += 1
        while i < len(left) and j < len(right) and left[i].isdigit() and right[j].isdigit():
            if not first_diff:
                first_diff = ord(left[i]) - ord(right[j])
            i += 1
            j += 1
        if i < len(left) and left[i].isdigit():
            return 1
        if j < len(right) and right[j].isdigit():
            return -1
        if first_diff:
            return first_diff
    return 0


def _split_version(text: str) -> tuple[int, str, str]:
    text = text.strip()
    epoch = 0
    if ":" in text:
        head, text = text.split(":", 1)
        epoch = int(head) if head.isdigit() else 0
    upstream, _, revision = text.rpartition("-")
    if not upstream:
        return epoch, revision, ""
    return epoch, upstream, revision


def compare_versions(left: str, right: str) -> int:
    """Negative, zero or positive like opkg's ``pkg_compare_versions``."""
    le, lv, lr = _split_version(left)
    re_, rv, rr = _split_version(right)
    if le != re_:
        return 1 if le > re_ else -1
    return _verrevcmp(lv, rv) or _verrevcmp(lr, rr)


def render_version(text: str) -> str:
    """The version as opkg prints it (``pkg_version_str_alloc``: a zero epoch is dropped)."""
    epoch, upstream, revision = _split_version(text)
    core = f"{upstream}-{revision}" if revision else upstream
    return f"{epoch}:{core}" if epoch else core


# --- dependencies (libopkg/pkg_depends.c parseDepends, pkg_depend_str) ----------------------

_OPERATORS = (
    ("<<", "<"),
    ("<=", "<="),
    (">=", ">="),
    (">>", ">"),
    ("=", "="),
    ("<", "<="),
    (">", ">="),
)


@dataclass(frozen=True)
class Dependency:
    name: str
    op: str = ""  # "", "<", "<=", "=", ">=", ">" (strictly earlier/later for "<" and ">")
    version: str = ""

    def satisfied_by(self, version: str) -> bool:
        """``version_constraints_satisfied``; an equal version satisfies every operator."""
        if not self.op:
            return True
        result = compare_versions(version, self.version)
        return (
            result == 0
            or (self.op in ("<", "<=") and result < 0)
            or (self.op in (">", ">=") and result > 0)
        )

    def render(self) -> str:
        return f"{self.name} ({self.op} {self.version})" if self.op else self.name


def _parse_one(text: str) -> Dependency | None:
    text = text.strip()
    if not text:
        return None
    name, _, rest = text.partition(" ")
    if "(" in name:  # "name(>=1)" without a space
        name, _, tail = name.partition("(")
        rest = "(" + tail + rest
    rest = rest.strip()
    if not rest.startswith("("):
        return Dependency(name)
    inner = rest[1:].split(")", 1)[0].strip()
    for token, op in _OPERATORS:
        if inner.startswith(token):
            return Dependency(name, op, inner[len(token) :].strip())
    return Dependency(name, "=", inner) if inner else Dependency(name)


def parse_depends(text: str) -> list[list[Dependency]]:
    """``a, b (>= 1), c | d`` → ``[[a], [b>=1], [c, d]]``."""
    result: list[list[Dependency]] = []
    for item in text.split(","):
        alternatives = [d for d in (_parse_one(a) for a in item.split("|")) if d is not None]
        if alternatives:
            result.append(alternatives)
    return result


def render_depends(compound: list[Dependency]) -> str:
    return " | ".join(d.render() for d in compound)


# --- stanzas ----------------------------------------------------------------------------------


def parse_stanzas(text: str) -> list[dict[str, str]]:
    """Control/``Packages``/``status`` stanzas; continuation lines join with a newline."""
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last = ""
    for line in text.splitlines():
        if not line.strip():
            if current:
                stanzas.append(current)
            current, last = {}, ""
        elif line[0] in " \t" and last:
            current[last] += "\n" + line[1:]
        elif ":" in line:
            key, _, value = line.partition(":")
            last = key.strip()
            current[last] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


def render_stanza(fields: list[tuple[str, str]]) -> str:
    lines = []
    for key, value in fields:
        first, *rest = value.split("\n")
        lines.append(f"{key}: {first}")
        lines.extend(f" {line}" for line in rest)
    return "\n".join(lines) + "\n"


@dataclass(eq=False)
class Package:
    """One package version from a feed, a local file, or installed into the rootfs."""

    fields: dict[str, str]
    feed: str = ""  # name of the src line it came from; "" for by-hand files
    feed_url: str = ""
    local_file: Path | None = None
    # install state (opkg's state_want / state_flag / state_status / auto_installed)
    want: bool = False
    installed: bool = False
    auto_installed: bool = False
    flags: set[str] = field(default_factory=set)
    control: bytes = b""
    files: list[str] = field(default_factory=list)
    extra_control: dict[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        status = self.fields.get("Status", "").split()
        if len(status) == 3:
            self.flags.update(f for f in status[1].split(",") if f in ("hold", "noprune", "prefer"))

    @property
    def name(self) -> str:
        return self.fields.get("Package", "")

    @property
    def version(self) -> str:
        return self.fields.get("Version", "")

    @property
    def architecture(self) -> str:
        return self.fields.get("Architecture", "")

    @functools.cached_property
    def depends(self) -> list[list[Dependency]]:
        return parse_depends(self.fields.get("Depends", ""))

    @functools.cached_property
    def conflicts(self) -> list[list[Dependency]]:
        return parse_depends(self.fields.get("Conflicts", ""))

    @functools.cached_property
    def provides(self) -> list[str]:
        return [d[0].name for d in parse_depends(self.fields.get("Provides", ""))]

    @functools.cached_property
    def replaces(self) -> list[str]:
        return [d[0].name for d in parse_depends(self.fields.get("Replaces", ""))]

    @property
    def description(self) -> str:
        return self.fields.get("Description", "").split("\n", 1)[0].strip()

    @property
    def size(self) -> int:
        value = self.fields.get("Size", "")
        return int(value) if value.isdigit() else 0

    def strip_abi_name(self) -> str:
        """``print_pkg`` with ``--strip-abi``: drop a trailing ``ABIVersion`` from the name."""
        abi = self.fields.get("ABIVersion", "")
        if abi and len(self.name) > len(abi) and self.name.endswith(abi):
            return self.name[: -len(abi)]
        return self.name


# --- .ipk files (research §3.2) ---------------------------------------------------------------


@dataclass
class IpkContents:
    control: bytes
    control_members: dict[str, bytes]  # every file of control.tar.gz except ``control``
    data: bytes  # the data.tar.gz bytes

    @property
    def fields(self) -> dict[str, str]:
        stanzas = parse_stanzas(self.control.decode("utf-8", "replace"))
        return stanzas[0] if stanzas else {}

    @property
    def conffiles(self) -> list[str]:
        text = self.control_members.get("conffiles", b"").decode("utf-8", "replace")
        return [line.strip() for line in text.splitlines() if line.strip()]


def _members(blob: bytes) -> dict[str, bytes]:
    members: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            handle = tar.extractfile(member)
            if handle is not None:
                members[member.name.removeprefix("./")] = handle.read()
    return members


def read_ipk(blob: bytes) -> IpkContents:
    """Split an ``.ipk`` (a gzip'd tar, not an ``ar`` archive) into control and data parts."""
    try:
        outer = _members(blob)
        control = _members(outer["control.tar.gz"])
        data = outer["data.tar.gz"]
    except (KeyError, tarfile.TarError, OSError, EOFError) as exc:
        raise ValueError(f"not a valid .ipk: {exc}") from exc
    if "control" not in control:
        raise ValueError("not a valid .ipk: control.tar.gz has no ./control")
    return IpkContents(control=control.pop("control"), control_members=control, data=data)
