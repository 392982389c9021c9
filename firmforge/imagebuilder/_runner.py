"""Running ``make`` in an ImageBuilder: an argument list, a time limit, an optional sandbox.

``make`` is started without a shell, in a new session (its own process group), with a small
fixed environment (``LC_ALL=C``: the output parsers expect the C locale's messages; nothing of
the worker's own environment but ``PATH`` reaches the build). On timeout the whole process group
is killed, so no ``opkg``/``mksquashfs`` grandchild survives its build.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from firmforge.errors import BuildError
from firmforge.imagebuilder._commands import check_arguments

__all__ = ["BubblewrapSandbox", "MakeResult", "NoSandbox", "Sandbox", "run_make"]

_KILL_GRACE = 5.0  # seconds to collect output after SIGKILL before giving up on the pipes


@dataclass(frozen=True)
class MakeResult:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


class Sandbox(Protocol):
    """Turns the ``make`` argv into the argv that runs it confined to ``workdir``."""

    def wrap(self, argv: list[str], workdir: Path, writable: Sequence[Path] = ()) -> list[str]: ...


class NoSandbox:
    """Run ``make`` as the worker itself (trusted ImageBuilders, containers, tests)."""

    def wrap(self, argv: list[str], workdir: Path, writable: Sequence[Path] = ()) -> list[str]:
        return list(argv)


@dataclass(frozen=True)
class BubblewrapSandbox:
    """Run ``make`` under bubblewrap: the host read-only, the workspace writable.

    Everything is unshared (PID, IPC, UTS, cgroup, user where possible) and, unless
    ``network`` is true, the network too — ``make image`` needs it when the feeds are remote.
    ``/tmp`` is a private tmpfs. Requires the ``bwrap`` binary (``available()``).
    """

    network: bool = True
    binary: str = "bwrap"
    readonly: tuple[Path, ...] = (Path("/"),)

    @classmethod
    def available(cls, binary: str = "bwrap") -> bool:
        return shutil.which(binary) is not None

    def wrap(self, argv: list[str], workdir: Path, writable: Sequence[Path] = ()) -> list[str]:
        wrapped = [self.binary, "--die-with-parent", "--unshare-all"]
        if self.network:
            wrapped.append("--share-net")
        for path in self.readonly:
            wrapped += ["--ro-bind", str(path), str(path)]
        wrapped += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]  # noqa: S108
        for path in (workdir, *writable):  # after --tmpfs /tmp: binds below /tmp stay visible
            wrapped += ["--bind", str(path), str(path)]
        wrapped += ["--chdir", str(workdir), "--", *argv]
        return wrapped


def _environment(workdir: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(workdir),
        "LC_ALL": "C",
        "LANG": "C",
        "TZ": "UTC",
    }


def run_make(
    workdir: Path,
    args: list[str],
    timeout: float,
    stage: str,
    sandbox: Sandbox | None = None,
    *,
    writable: Sequence[Path] = (),
) -> MakeResult:
    """Run ``args`` (e.g. ``["make", "info"]``) in ``workdir``; a non-zero exit is returned.

    Raises ``BuildError`` when an argument fails validation or the time limit is reached.
    ``writable`` lists paths besides ``workdir`` a sandbox must let the build write to.
    """
    check_arguments(args, stage)
    argv = (sandbox or NoSandbox()).wrap(list(args), workdir, writable)
    started = time.monotonic()
    process = subprocess.Popen(
        argv,
        cwd=workdir,
        env=_environment(workdir),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stdout, stderr = _kill_group(process)
        raise BuildError(
            f"{stage} timed out after {timeout:.0f} s; the build was stopped",
            stage=stage,
            stdout=_text(stdout),
            stderr=_text(stderr),
        ) from None
    except BaseException:
        _kill_group(process)
        raise
    finally:
        _reap_group(process)
    return MakeResult(
        returncode=process.returncode,
        stdout=_text(stdout),
        stderr=_text(stderr),
        seconds=time.monotonic() - started,
    )


def _kill_group(process: subprocess.Popen[bytes]) -> tuple[bytes | None, bytes | None]:
    """SIGKILL the process group; return what it wrote (possibly cut short)."""
    _signal_group(process)
    try:
        return process.communicate(timeout=_KILL_GRACE)
    except subprocess.TimeoutExpired as exc:  # a daemonized grandchild holds the pipes
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
        process.wait()
        return exc.output, exc.stderr


def _reap_group(process: subprocess.Popen[bytes]) -> None:
    """Leave nothing behind: background children of a finished ``make`` die with it."""
    _signal_group(process)


def _signal_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    if isinstance(data, str):
        return data
    return data.decode("utf-8", errors="replace")
