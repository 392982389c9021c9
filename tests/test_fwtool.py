"""The fwtool image trailer (research §4.7)."""

from __future__ import annotations

import struct
import zlib

import pytest

from firmforge import fwtool

METADATA = {"metadata_version": "1.1", "supported_devices": ["tplink,archer-c7-v5"]}


def test_metadata_then_signature_read_back_outermost_first() -> None:
    image = b"\x55" * 1000
    with_metadata = fwtool.append_metadata(image, METADATA)
    signed = fwtool.append_signature(with_metadata, b"ucert-blob")
    chunks = fwtool.read_chunks(signed)
    assert [c.type for c in chunks] == [fwtool.TYPE_SIGNATURE, fwtool.TYPE_METADATA]
    assert chunks[0].payload == b"ucert-blob" and chunks[0].offset == len(with_metadata)
    assert chunks[1].metadata() == METADATA
    assert fwtool.strip_chunks(signed) == image


def test_trailer_layout_is_big_endian_with_crc_without_final_xor() -> None:
    image = b"firmware"
    out = fwtool.append_metadata(image, {})
    magic, crc, chunk_type, size = struct.unpack(">IIB3xI", out[-16:])
    assert magic == 0x46577830 and chunk_type == 1
    assert size == len(out) - len(image)
    assert crc == zlib.crc32(out[:-16]) ^ 0xFFFFFFFF
    assert out[len(image):len(image) + 8] == bytes(8)  # header: version 0, flags 0


def test_image_without_trailer_has_no_chunks() -> None:
    assert fwtool.read_chunks(b"plain image bytes") == []


def test_corrupted_image_is_detected() -> None:
    out = bytearray(fwtool.append_metadata(b"firmware", METADATA))
    out[0] ^= 0xFF
    with pytest.raises(fwtool.FwtoolError, match="checksum"):
        fwtool.read_chunks(bytes(out))


def test_signature_limit() -> None:
    with pytest.raises(fwtool.FwtoolError):
        fwtool.append_signature(b"x", bytes(2048))
