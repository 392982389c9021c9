"""``GET /api/v1/workers``: every live build worker, local or remote, and what it is doing.

Read from the workers' heartbeats in Redis (``firmforge.heartbeat``): a worker that stopped
beating is gone from the list within ``PRESENCE_TTL`` seconds and its job is re-queued.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from firmforge.api._hits import render_json
from firmforge.api._json import json_response
from firmforge.api._services import Services, services

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["workers"])


@router.get("/workers", response_model=None, operation_id="workers")
def workers(svc: Annotated[Services, Depends(services)]) -> Response:
    """``{"workers": [...], "busy": N, "idle": N, "queue_length": N}``."""
    listed = svc.queue.workers()
    busy = sum(w.state == "busy" for w in listed)
    return json_response(render_json({
        "workers": [w.as_json() for w in listed],
        "busy": busy,
        "idle": len(listed) - busy,
        "queue_length": len(svc.queue),
    }))
