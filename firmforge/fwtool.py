"""The fwtool image trailer: metadata and signature chunks appended to firmware images.

Layout (research §4.7, ``openwrt/fwtool``)::

    [firmware][metadata chunk][signature chunk]
    metadata chunk  = header (u32 version=0, u32 flags=0) + JSON + trailer(type=1)
    signature chunk = ucert blob + trailer(type=0)
    trailer (16 bytes, big-endian) = magic "FWx0", CRC-32 of every byte before the trailer
                                     (zlib CRC without the final xor), type u8, 3 pad bytes,
                                     size u32 of the whole chunk including header and trailer

Standard library only: the synthetic ImageBuilder ships this file as one of its host tools.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from typing import Any

__all__ = [
    "TYPE_METADATA",
    "TYPE_SIGNATURE",
    "Chunk",
    "FwtoolError",
    "append_metadata",
    "append_signature",
    "read_chunks",
    "strip_chunks",
]

MAGIC = 0x46577830
TYPE_SIGNATURE = 0
TYPE_METADATA = 1
_TRAILER = struct.Struct(">IIB3xI")
_HEADER = struct.Struct(">II")
METADATA_LIMIT = 30 * 1024
SIGNATURE_LIMIT = 1024


class FwtoolError(ValueError):
    """An image trailer is malformed or a chunk exceeds its size limit."""


@dataclass(frozen=True)
class Chunk:
    type: int
    payload: bytes  # JSON bytes for metadata (header removed), the ucert blob for signatures
    offset: int  # where the chunk starts in the image

    def metadata(self) -> dict[str, Any]:
        return json.loads(self.payload)


def _crc(data: bytes) -> int:
    return zlib.crc32(data) ^ 0xFFFFFFFF


def _append(image: bytes, body: bytes, chunk_type: int) -> bytes:
    prefix = image + body
    size = len(body) + _TRAILER.size
    return prefix + _TRAILER.pack(MAGIC, _crc(prefix), chunk_type, size)


def append_metadata(image: bytes, metadata: dict[str, Any]) -> bytes:
    """``fwtool -I``: append a metadata chunk holding ``metadata`` as JSON."""
    body = _HEADER.pack(0, 0) + json.dumps(metadata).encode()
    if len(body) > METADATA_LIMIT:
        raise FwtoolError("metadata chunk exceeds 30 KiB")
    return _append(image, body, TYPE_METADATA)


def append_signature(image: bytes, blob: bytes) -> bytes:
    """``fwtool -S``: append a signature chunk (an opaque ucert blob)."""
    if len(blob) > SIGNATURE_LIMIT:
        raise FwtoolError("signature chunk exceeds 1 KiB")
    return _append(image, blob, TYPE_SIGNATURE)


def read_chunks(image: bytes) -> list[Chunk]:
    """Walk the trailers back from the end; the outermost chunk comes first."""
    chunks: list[Chunk] = []
    end = len(image)
    while end >= _TRAILER.size:
        magic, crc, chunk_type, size = _TRAILER.unpack_from(image, end - _TRAILER.size)
        if magic != MAGIC:
            break
        trailer_at = end - _TRAILER.size
        if crc != _crc(image[:trailer_at]):
            raise FwtoolError("trailer checksum mismatch")
        start = end - size
        if start < 0 or size < _TRAILER.size:
            raise FwtoolError("trailer size points outside the image")
        body = image[start:trailer_at]
        if chunk_type == TYPE_METADATA:
            body = body[_HEADER.size :]
        chunks.append(Chunk(type=chunk_type, payload=body, offset=start))
        end = start
    return chunks


def strip_chunks(image: bytes) -> bytes:
    """The firmware without any trailer chunk (``fwtool -T`` of every chunk)."""
    chunks = read_chunks(image)
    return image[: chunks[-1].offset] if chunks else image
