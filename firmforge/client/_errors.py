"""Everything the client can fail with, each error carrying its process exit code.

    ClientError                  (exit code set per class)
     ├── DeviceError             1  device facts unreadable or malformed, ssh unusable
     ├── UsageError              2  a bad option value (click's own usage errors exit 2 too)
     ├── RefusedError            3  the server refused the request (4xx)
     ├── ServerError             4  server unreachable, 5xx other than a failed build, bad answer
     ├── BuildFailedError        5  the build failed (500 with ``detail``/``failed_stage``)
     ├── VerificationError       6  download failed or the image did not verify
     ├── DeviceCommandError      7  ``sysupgrade`` (or copying the image) failed on the device
     └── Interrupted           130  Ctrl-C (a build keeps running on the server)

Commands raise these anywhere; ``firmforge.client.cli`` renders them in one place.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "BuildFailedError",
    "ClientError",
    "DeviceCommandError",
    "DeviceError",
    "ExitCode",
    "Interrupted",
    "RefusedError",
    "ServerError",
    "UsageError",
    "VerificationError",
]


_STDERR_LINES = 8
"""Lines of a failed build's ImageBuilder stderr shown with the error."""


class ExitCode(IntEnum):
    """The client's exit codes (README "The client" and ``--help`` list them)."""

    OK = 0
    DEVICE = 1
    USAGE = 2
    REFUSED = 3
    SERVER = 4
    BUILD_FAILED = 5
    VERIFICATION = 6
    DEVICE_COMMAND = 7
    UPGRADE_AVAILABLE = 10
    PACKAGE_UPDATES = 11
    INTERRUPTED = 130


class ClientError(Exception):
    """A failure the user can act on: ``str(error)`` is the message, ``exit_code`` the code."""

    exit_code: ExitCode = ExitCode.SERVER
    kind = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def to_json(self) -> dict[str, object]:
        body: dict[str, object] = {"error": self.kind, "detail": self.message,
                                   "exit_code": int(self.exit_code)}
        if self.hint:
            body["hint"] = self.hint
        return body


class DeviceError(ClientError):
    exit_code = ExitCode.DEVICE
    kind = "device"


class UsageError(ClientError):
    exit_code = ExitCode.USAGE
    kind = "usage"


class RefusedError(ClientError):
    exit_code = ExitCode.REFUSED
    kind = "refused"

    def __init__(self, message: str, *, status: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status

    def to_json(self) -> dict[str, object]:
        return {**super().to_json(), "status": self.status}


class ServerError(ClientError):
    exit_code = ExitCode.SERVER
    kind = "server"


class BuildFailedError(ClientError):
    exit_code = ExitCode.BUILD_FAILED
    kind = "build_failed"

    def __init__(self, message: str, *, request_hash: str | None, failed_stage: str | None,
                 stderr: str = "") -> None:
        tail = "\n".join(stderr.strip().splitlines()[-_STDERR_LINES:])
        super().__init__(message, hint=f"ImageBuilder output (last lines):\n{tail}" if tail
                         else None)
        self.request_hash = request_hash
        self.failed_stage = failed_stage
        self.stderr = stderr

    def to_json(self) -> dict[str, object]:
        return {**super().to_json(), "request_hash": self.request_hash,
                "failed_stage": self.failed_stage, "stderr": self.stderr}


class VerificationError(ClientError):
    exit_code = ExitCode.VERIFICATION
    kind = "verification"


class DeviceCommandError(ClientError):
    exit_code = ExitCode.DEVICE_COMMAND
    kind = "device_command"


class Interrupted(ClientError):
    exit_code = ExitCode.INTERRUPTED
    kind = "interrupted"
