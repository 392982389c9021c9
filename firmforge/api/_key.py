"""``GET /api/v1/key``: the server's usign public key, to verify its builds with.

The body is the public key file itself (``untrusted comment: …`` and one base64 line), as
``usign -V -p`` and ``signify-openbsd -V -p`` read it and as opkg stores it under
``/etc/opkg/keys/<fingerprint>``; the fingerprint is also in ``X-Key-Fingerprint``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from firmforge.api._json import app_services
from firmforge.api._services import Services
from firmforge.errors import NotFoundError
from firmforge.signing import public_key

__all__ = ["FINGERPRINT_HEADER", "router"]

FINGERPRINT_HEADER = "X-Key-Fingerprint"

router = APIRouter(tags=["signing"])


@router.get("/api/v1/key", response_model=None)
def signing_key(svc: Annotated[Services, Depends(app_services)]) -> Response:
    """The usign/signify public key that signs every build's images and ``sha256sums``."""
    public = public_key(svc.settings.signing_key_path)
    if public is None:
        raise NotFoundError("This server has no signing key")
    return Response(
        public.to_text(),
        media_type="text/plain",
        headers={
            FINGERPRINT_HEADER: public.fingerprint_hex,
            "X-Content-Type-Options": "nosniff",
        },
    )
