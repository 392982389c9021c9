"""Flashing a verified image: ``sysupgrade -T`` first, then ``sysupgrade``, on the device.

    steps = sysupgrade_plan(reader, Path("/tmp/openwrt-…-sysupgrade.bin"), sha256, keep=True)
    print_plan(steps)              # a dry run: the exact command lines
    run_plan(reader, steps)        # copy (over ssh), check the copy, test, flash

Over SSH the image is first copied to the device's ``/tmp`` (``ssh … 'cat > /tmp/<name>'``)
and its SHA256 checked there. ``sysupgrade -T`` runs the device's own image checks
(research/imagebuilder-formats.md §5.1) without flashing; only if it passes does
``sysupgrade`` run. The device reboots while flashing, so a connection closed by it during
that last step is expected.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from firmforge.client._errors import DeviceCommandError
from firmforge.client._readers import FileReader, SshReader

__all__ = ["Step", "run_plan", "sysupgrade_plan"]

DEVICE_DIR = "/tmp"  # noqa: S108 (on the router, not here)
"""Where the image goes on the device: RAM, where sysupgrade wants it anyway."""

_SSH_CLOSED = 255


@dataclass(frozen=True)
class Step:
    """One thing done on the device: a copy (``copy_from`` set) or a command (``argv``)."""

    what: str
    argv: tuple[str, ...] = ()
    copy_from: Path | None = None
    device_path: str = ""
    expect_sha256: str | None = None

    def line(self, reader: FileReader) -> str:
        """The exact local command line this step runs."""
        if self.copy_from is not None:
            return reader.copy_command(self.copy_from, self.device_path)
        return shlex.join(reader.command(self.argv))


def sysupgrade_plan(reader: FileReader, image: Path, sha256: str, *,
                    keep: bool = True) -> list[Step]:
    """The steps for ``image`` (a verified local file) on the device ``reader`` reaches."""
    steps: list[Step] = []
    if isinstance(reader, SshReader):
        device_path = f"{DEVICE_DIR}/{image.name}"
        steps.append(Step("copy the image to the device", copy_from=image,
                          device_path=device_path))
        steps.append(Step("check the copy's SHA256", ("sha256sum", device_path),
                          expect_sha256=sha256))
    else:
        device_path = str(image.resolve())
    steps.append(Step("test the image (sysupgrade -T)", ("sysupgrade", "-T", device_path)))
    flash = ("sysupgrade", device_path) if keep else ("sysupgrade", "-n", device_path)
    steps.append(Step("flash the image and reboot", flash))
    return steps


def run_plan(reader: FileReader, steps: list[Step], *,
             on_step: Callable[[Step], None] | None = None) -> list[dict[str, object]]:
    """Run each step in order; ``DeviceCommandError`` at the first that fails."""
    done: list[dict[str, object]] = []
    for step in steps:
        if on_step is not None:
            on_step(step)
        if step.copy_from is not None:
            reader.copy(step.copy_from, step.device_path)
            done.append({"step": step.what, "returncode": 0})
            continue
        result = reader.run(step.argv)
        flashing = step.argv[:1] == ("sysupgrade",) and "-T" not in step.argv
        if flashing and result.returncode == _SSH_CLOSED and isinstance(reader, SshReader):
            done.append({"step": step.what, "returncode": result.returncode,
                         "note": "the connection closed: the device is rebooting"})
            continue
        if result.returncode != 0:
            output = (result.stderr or result.stdout).strip()
            raise DeviceCommandError(
                f"{step.what} failed (exit code {result.returncode})"
                + (f":\n{output}" if output else ""))
        if step.expect_sha256 is not None:
            got = result.stdout.split()[:1]
            if got != [step.expect_sha256]:
                raise DeviceCommandError(
                    f"the copy on the device is damaged: SHA256 {got[0] if got else '?'}, "
                    f"expected {step.expect_sha256}")
        done.append({"step": step.what, "returncode": result.returncode})
    return done
