"""The ImageBuilder: a cache of pristine copies, private workspaces, and running ``make`` in them.

    cache = ImageBuilderCache(root, max_bytes=20 * 2**30, client=httpx.Client(),
                              upstream_url="https://mirror.example.org")
    with cache.workspace(source) as workdir:          # source: upstream.ImageBuilderSource
        info = parse_info(run_make(workdir, info_command(), 600, "info").stdout)
        packages = diff_packages(requested, info.default_packages,
                                 info.profiles[profile].packages)
        result = run_make(workdir, manifest_command(profile, packages), 600, "manifest")
        if result.returncode and (error := package_selection_error(result.stderr, "manifest")):
            raise error
        manifest = parse_manifest(result.stdout)

- ``ImageBuilderCache`` downloads an ImageBuilder once (SHA-256 verified, unpacked safely, feeds
  pointed at the configured mirror), shares it between threads and processes with file locks,
  hands each build a private hard-linked ``workspace`` and evicts the least recently used
  ImageBuilders that are not in use when over its byte budget.
- ``run_make`` runs one ``make`` argument list with a time limit, no shell, and an optional
  ``Sandbox`` (``NoSandbox``, ``BubblewrapSandbox``); ``info_command``, ``manifest_command`` and
  ``image_command`` build the argument lists, validating every ``VAR=value``.
- ``parse_info``, ``parse_manifest``, ``package_selection_error``, ``image_too_big`` and
  ``diff_packages`` read and write the ImageBuilder's text formats.
"""

from firmforge.imagebuilder._cache import CacheStats, ImageBuilderCache, ImageBuilderSourceLike
from firmforge.imagebuilder._commands import (
    image_command,
    info_command,
    make_variable,
    manifest_command,
)
from firmforge.imagebuilder._output import (
    ImageBuilderInfo,
    ProfileInfo,
    diff_packages,
    image_too_big,
    package_selection_error,
    parse_info,
    parse_manifest,
)
from firmforge.imagebuilder._runner import (
    BubblewrapSandbox,
    MakeResult,
    NoSandbox,
    Sandbox,
    run_make,
)

__all__ = [
    "BubblewrapSandbox",
    "CacheStats",
    "ImageBuilderCache",
    "ImageBuilderInfo",
    "ImageBuilderSourceLike",
    "MakeResult",
    "NoSandbox",
    "ProfileInfo",
    "Sandbox",
    "diff_packages",
    "image_command",
    "image_too_big",
    "info_command",
    "make_variable",
    "manifest_command",
    "package_selection_error",
    "parse_info",
    "parse_manifest",
    "run_make",
]
