"""The synthetic OpenWrt downloads mirror with working ImageBuilders, for tests and the demo,
and the LibreMesh feed host (``generate_libremesh_feed``).

``generate_mirror`` writes a tree faithful to the real mirror's formats (research/
imagebuilder-formats.md §1–§4); ``serve_mirror`` serves it over HTTP.
"""

from firmforge.mirror._generate import GeneratedMirror, MirrorError, generate_mirror, mirror_key
from firmforge.mirror._imagebuilder import OFFICIAL_BASE_URL, imagebuilder_name
from firmforge.mirror._libremesh import (
    GeneratedFeed,
    feed_generation_steps,
    generate_libremesh_feed,
)
from firmforge.mirror._serve import make_mirror_server, serve_mirror

__all__ = [
    "OFFICIAL_BASE_URL",
    "GeneratedFeed",
    "GeneratedMirror",
    "MirrorError",
    "feed_generation_steps",
    "generate_libremesh_feed",
    "generate_mirror",
    "imagebuilder_name",
    "make_mirror_server",
    "mirror_key",
    "serve_mirror",
]
