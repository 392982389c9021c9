"""Every error firmforge reports to a user, each with its HTTP status and a plain-string detail.

    FirmforgeError                      (500)
    ├── RequestError                    (400)  a request the catalog refuses
    │   ├── UnsupportedError            (400)  distro / branch / version / target / profile
    │   ├── UnknownPackagesError        (400)  names every unknown package, with renames
    │   └── DefaultsNotAllowedError     (400)
    ├── NotFoundError                   (404)
    ├── OverloadedError                 (529)
    ├── UpstreamError                   (502)  the mirror is unreachable or its data is bad
    │   └── SignatureError              (502)  a missing or bad usign signature
    └── BuildError                      (500)  a build failed; ``stage`` says where
        ├── PackageSelectionError       (500)  ImageBuilder refused the package set
        └── ImageTooBigError            (500)  packages exceed device storage

The API renders all of them in one place; the worker stores ``BuildError`` details in the job.
"""

from __future__ import annotations

__all__ = [
    "BuildError",
    "DefaultsNotAllowedError",
    "FirmforgeError",
    "ImageTooBigError",
    "NotFoundError",
    "OverloadedError",
    "PackageSelectionError",
    "RequestError",
    "SignatureError",
    "UnknownPackagesError",
    "UnsupportedError",
    "UpstreamError",
]


class FirmforgeError(Exception):
    status_code = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class RequestError(FirmforgeError):
    status_code = 400


class UnsupportedError(RequestError):
    """Unsupported distro, branch, version, target or profile (upstream's 400 texts)."""


class DefaultsNotAllowedError(RequestError):
    def __init__(self) -> None:
        super().__init__("Handling `defaults` not enabled on server")


class UnknownPackagesError(RequestError):
    """Packages absent from every feed of the version/target; renames suggested when known."""

    def __init__(self, unknown: list[str], renames: dict[str, str] | None = None) -> None:
        self.unknown = sorted(unknown)
        self.renames = renames or {}
        hints = [f"{old} (renamed to {new})" for old, new in sorted(self.renames.items())]
        plain = [name for name in self.unknown if name not in self.renames]
        super().__init__("Unknown package(s): " + ", ".join(plain + hints))


class NotFoundError(FirmforgeError):
    status_code = 404


class OverloadedError(FirmforgeError):
    status_code = 529

    def __init__(self, queue_length: int) -> None:
        super().__init__(
            f"server overload, queue contains too many build requests: {queue_length}"
        )


class UpstreamError(FirmforgeError):
    status_code = 502


class SignatureError(UpstreamError):
    pass


class BuildError(FirmforgeError):
    """A build failed at ``stage``; ``detail`` says why and what to do."""

    def __init__(self, detail: str, stage: str = "", stdout: str = "", stderr: str = "") -> None:
        super().__init__(detail)
        self.stage = stage
        self.stdout = stdout
        self.stderr = stderr


class PackageSelectionError(BuildError):
    def __init__(
        self,
        missing: list[str],
        conflicts: list[str],
        stage: str = "manifest",
        stdout: str = "",
        stderr: str = "",
    ) -> None:
        self.missing = sorted(missing)
        self.conflicts = sorted(conflicts)
        detail = "Impossible package selection"
        if self.missing:
            detail += f": missing ({', '.join(self.missing)})"
        if self.conflicts:
            detail += f" conflicts ({', '.join(self.conflicts)})"
        super().__init__(detail, stage=stage, stdout=stdout, stderr=stderr)


class ImageTooBigError(BuildError):
    def __init__(self, stage: str = "image", stdout: str = "", stderr: str = "") -> None:
        super().__init__(
            "Selected packages exceed device storage", stage=stage, stdout=stdout, stderr=stderr
        )
