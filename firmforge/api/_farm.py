"""What the build-farm routes work with (tokens, the signing key, the local workers) and who
may call them: remote workers with their token, the admin with ``FIRMFORGE_ADMIN_TOKEN``."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated, Protocol

from fastapi import Depends, Header, Request

from firmforge.errors import FirmforgeError
from firmforge.usign import SecretKey
from firmforge.worker_tokens import WorkerTokens

__all__ = ["Farm", "ForbiddenError", "UnauthorizedError", "admin", "farm", "worker_token"]


class UnauthorizedError(FirmforgeError):
    status_code = 401


class ForbiddenError(FirmforgeError):
    status_code = 403


class WorkerPool(Protocol):
    """The server's own worker processes (``firmforge.worker.LocalWorkers``)."""

    count: int

    def scale(self, count: int) -> None: ...


@dataclass
class Farm:
    tokens: WorkerTokens
    signing_key: SecretKey | None
    local_workers: WorkerPool | None = None


def farm(request: Request) -> Farm:
    """FastAPI dependency: the farm's objects (set in the app factory)."""
    value = getattr(request.app.state, "farm", None)
    if value is None:
        raise ForbiddenError("this server runs no build farm")
    return value  # type: ignore[no-any-return]


def _bearer(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise UnauthorizedError("send 'Authorization: Bearer <token>'")
    return token.strip()


def worker_token(
    authorization: Annotated[str | None, Header()] = None,
    the_farm: Farm = Depends(farm),  # noqa: B008 - FastAPI's way of declaring a dependency
) -> str:
    """FastAPI dependency: the name of the calling remote worker's live token."""
    name = the_farm.tokens.check(_bearer(authorization))
    if name is None:
        raise UnauthorizedError("unknown or revoked worker token")
    return name


def admin(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    """FastAPI dependency: the caller holds ``FIRMFORGE_ADMIN_TOKEN``."""
    expected = request.app.state.services.settings.admin_token
    if expected is None:
        raise ForbiddenError("the admin API is off: set FIRMFORGE_ADMIN_TOKEN")
    if not secrets.compare_digest(_bearer(authorization), expected.get_secret_value()):
        raise UnauthorizedError("wrong admin token")
