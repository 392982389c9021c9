"""The public surface is exactly ``__all__`` (httpx's test_exported_members)."""

from __future__ import annotations

import firmforge.imagebuilder as imagebuilder


def test_all_lists_every_public_name() -> None:
    public = {name for name in vars(imagebuilder) if not name.startswith("_")}
    assert set(imagebuilder.__all__) == public
    assert imagebuilder.__all__ == sorted(imagebuilder.__all__)
