"""Where device files come from and where device commands run: a local root or SSH.

    reader = LocalReader(Path("/"))            # on the router itself, or a copied root
    reader = SshReader("root@192.168.1.1")     # over the system ``ssh``, nothing installed there
    reader.read("/etc/openwrt_release")        # bytes, or None if the file does not exist

The device facts code reads through the ``FileReader`` protocol only, so both readers share one
code path. ``SshReader`` never hands user data to a local shell: ``ssh`` gets an argument list,
and the remote command line (which the device's shell does parse) is built with
``shlex.quote`` for every path and argument.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from firmforge.client._errors import DeviceCommandError, DeviceError

__all__ = ["CommandResult", "FileReader", "LocalReader", "SshReader"]

_SSH_FAILED = 255
"""``ssh`` exits 255 when it could not connect (or the connection broke)."""

_MISSING = ("No such file or directory", "can't open", "cannot open")


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str
    stderr: str


class FileReader(Protocol):
    """Device files and a command runner; paths are absolute paths on the device."""

    @property
    def description(self) -> str:
        """Where the facts come from, for messages (``/``, ``root@host``)."""
        ...

    @property
    def on_device(self) -> bool:
        """Whether ``run`` reaches the device itself (not a copied root directory)."""
        ...

    def read(self, path: str) -> bytes | None:
        """The file's bytes, or ``None`` if it does not exist; ``DeviceError`` otherwise."""
        ...

    def exists(self, path: str) -> bool: ...

    def command(self, argv: Sequence[str]) -> list[str]:
        """The local argument list that runs ``argv`` on the device."""
        ...

    def run(self, argv: Sequence[str], stdin: IO[bytes] | None = None) -> CommandResult: ...

    def copy_command(self, local: Path, remote: str) -> str:
        """The shell line that copies ``local`` to ``remote`` on the device (for dry runs)."""
        ...

    def copy(self, local: Path, remote: str) -> None: ...


def _run(argv: Sequence[str], stdin: IO[bytes] | None = None) -> CommandResult:
    try:
        done = subprocess.run(
            list(argv),
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
    except OSError as exc:
        raise DeviceError(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
    return CommandResult(done.returncode, done.stdout.decode(errors="replace"),
                         done.stderr.decode(errors="replace"))


class LocalReader:
    """Files under ``root`` (``/`` on the device; any directory for tests and offline use)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def description(self) -> str:
        return str(self.root)

    @property
    def on_device(self) -> bool:
        return self.root.resolve() == Path("/")

    def _path(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def read(self, path: str) -> bytes | None:
        local = self._path(path)
        try:
            return local.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise DeviceError(f"cannot read {local}: {exc.strerror or exc}") from exc

    def exists(self, path: str) -> bool:
        return self._path(path).exists()

    def command(self, argv: Sequence[str]) -> list[str]:
        return list(argv)

    def run(self, argv: Sequence[str], stdin: IO[bytes] | None = None) -> CommandResult:
        return _run(argv, stdin)

    def copy_command(self, local: Path, remote: str) -> str:
        return shlex.join(["cp", "--", str(local), remote])

    def copy(self, local: Path, remote: str) -> None:
        target = self._path(remote)
        if local.resolve() == target.resolve():
            return
        try:
            shutil.copyfile(local, target)
        except OSError as exc:
            raise DeviceCommandError(
                f"cannot copy {local} to {target}: {exc.strerror or exc}") from exc


class SshReader:
    """A device reached with the system ``ssh`` (keys, agent and ``~/.ssh/config`` apply)."""

    def __init__(self, target: str, ssh: str = "ssh") -> None:
        # an "-oProxyCommand=…" target would be an option to ssh, not a host
        if not target or target.startswith("-") or any(c.isspace() for c in target):
            raise DeviceError(f"not an ssh destination: {target!r} (want user@host)")
        self.target = target
        self.ssh = ssh

    @property
    def description(self) -> str:
        return self.target

    @property
    def on_device(self) -> bool:
        return True

    def _binary(self) -> str:
        found = shutil.which(self.ssh)
        if found is None:
            raise DeviceError(f"'{self.ssh}' was not found on PATH; install OpenSSH's client")
        return found

    def _argv(self, remote: str) -> list[str]:
        # "--" ends ssh's options; the remote line is one argument for the device's shell
        return [self.ssh, "--", self.target, remote]

    def _call(self, remote: str, stdin: IO[bytes] | None = None) -> CommandResult:
        argv = self._argv(remote)
        argv[0] = self._binary()
        return _run(argv, stdin)

    def _failed(self, result: CommandResult, what: str,
                error: type[DeviceError] | type[DeviceCommandError] = DeviceError,
                ) -> DeviceError | DeviceCommandError:
        message = result.stderr.strip().splitlines()[-1:] or [f"exit code {result.returncode}"]
        if result.returncode == _SSH_FAILED:
            return error(f"ssh to {self.target} failed while {what}: {message[0]}")
        return error(f"{what} on {self.target} failed: {message[0]}")

    def read(self, path: str) -> bytes | None:
        argv = self._argv(f"cat -- {shlex.quote(path)}")
        argv[0] = self._binary()
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                  check=False)
        except OSError as exc:
            raise DeviceError(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
        if done.returncode == 0:
            return done.stdout
        stderr = done.stderr.decode(errors="replace")
        if done.returncode != _SSH_FAILED and any(text in stderr for text in _MISSING):
            return None
        raise self._failed(CommandResult(done.returncode, "", stderr), f"reading {path}")

    def exists(self, path: str) -> bool:
        result = self._call(f"test -e {shlex.quote(path)}")
        if result.returncode == _SSH_FAILED:
            raise self._failed(result, f"looking for {path}")
        return result.returncode == 0

    def command(self, argv: Sequence[str]) -> list[str]:
        return self._argv(shlex.join(argv))

    def run(self, argv: Sequence[str], stdin: IO[bytes] | None = None) -> CommandResult:
        return self._call(shlex.join(argv), stdin)

    def copy_command(self, local: Path, remote: str) -> str:
        line = shlex.join(self._argv(f"cat > {shlex.quote(remote)}"))
        return f"{line} < {shlex.quote(str(local))}"

    def copy(self, local: Path, remote: str) -> None:
        try:
            with local.open("rb") as source:
                result = self._call(f"cat > {shlex.quote(remote)}", source)
        except OSError as exc:
            raise DeviceError(f"cannot read {local}: {exc.strerror or exc}") from exc
        if result.returncode != 0:
            raise self._failed(result, f"copying the image to {remote}", DeviceCommandError)
