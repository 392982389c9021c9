"""The admin API (``Authorization: Bearer $FIRMFORGE_ADMIN_TOKEN``).

``POST /api/v1/admin/workers`` ``{"local": N}`` runs N local worker processes: new ones start
at once; surplus ones finish the build in hand first (RQ's warm shutdown).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from firmforge.api._farm import Farm, ForbiddenError, admin, farm

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], dependencies=[Depends(admin)])


class WorkerScale(BaseModel):
    local: int = Field(ge=0, le=64, description="Local worker processes to run.")


@router.post("/workers")
def scale_workers(body: WorkerScale, the_farm: Annotated[Farm, Depends(farm)]
                  ) -> dict[str, int]:
    if the_farm.local_workers is None:
        raise ForbiddenError("this server runs no local workers")
    the_farm.local_workers.scale(body.local)
    return {"local": the_farm.local_workers.count}
