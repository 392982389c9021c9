"""``GET|HEAD /store/{bin_dir}/{file}``: built files, with no way out of the store."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse

from firmforge.api._services import Services, services
from firmforge.errors import NotFoundError

__all__ = ["router"]

router = APIRouter()

_TYPES = {".json": "application/json", ".manifest": "text/plain", ".sig": "text/plain"}


@router.head("/store/{bin_dir}/{name}", tags=["store"], operation_id="store_head")
@router.get("/store/{bin_dir}/{name}", tags=["store"], operation_id="store_get")
def store_file(
    bin_dir: str, name: str, svc: Annotated[Services, Depends(services)]
) -> FileResponse:
    path = svc.store.file(bin_dir, name)
    if path is None:
        raise NotFoundError("Not found")
    media_type = _TYPES.get(path.suffix, "application/octet-stream")
    return FileResponse(
        path,
        media_type=media_type,
        filename=name,
        headers={"X-Content-Type-Options": "nosniff"},
    )
