"""One place that turns errors into responses: ``detail`` is always a string."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from firmforge.errors import FirmforgeError, OverloadedError

__all__ = ["install_error_handlers", "validation_detail"]


def validation_detail(exc: RequestValidationError) -> str:
    """Field and reason of every schema error, in one string (clients call string methods)."""
    parts = []
    for error in exc.errors():
        location = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{location}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FirmforgeError)
    async def _firmforge_error(_request: Request, exc: FirmforgeError) -> JSONResponse:
        body: dict[str, object] = {"detail": exc.detail, "status": exc.status_code}
        if isinstance(exc, OverloadedError):
            body = {"status": 529, "title": "Server overloaded", "detail": exc.detail}
        return JSONResponse(body, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            {"detail": validation_detail(exc), "status": 422}, status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc.detail), "status": exc.status_code},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            {"detail": f"Internal server error: {type(exc).__name__}", "status": 500},
            status_code=500,
        )
