"""Server-rendered HTML pages: Jinja2 templates shipped in the package, autoescaped."""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

__all__ = ["filesize", "render"]


@cache
def _environment() -> Environment:
    # Autoescape every template: pages show user-controlled strings (request fields, names).
    environment = Environment(
        loader=PackageLoader("firmforge.web", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["filesize"] = filesize
    return environment


def filesize(size: int) -> str:
    """``size`` bytes for people: ``512 B``, ``3.4 KiB``, ``12.0 MiB``."""
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def render(template: str, **context: Any) -> str:
    """``templates/<template>`` rendered with ``context``."""
    return _environment().get_template(template).render(**context)
