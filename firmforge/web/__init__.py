"""Server-rendered HTML pages: Jinja2 templates shipped in the package, autoescaped.

``static/`` holds the pages' stylesheet and scripts (served at ``/static``) and, in
``static/vendor/``, the chart library that ``python -m firmforge.web.vendor`` installs.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

__all__ = ["CHART_SCRIPT", "STATIC_DIR", "STYLESHEET", "filesize", "render"]

STATIC_DIR = Path(__file__).parent / "static"
STYLESHEET = "firmforge.css"
CHART_SCRIPT = "vendor/chart.umd.min.js"
"""The chart library (Chart.js, UMD build), relative to ``STATIC_DIR``."""


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
    environment.globals["inline_stylesheet"] = inline_stylesheet
    return environment


@cache
def inline_stylesheet() -> Markup:
    """The stylesheet's text, for pages whose policy allows no stylesheet request (build
    info); our own file, so it is trusted markup inside ``<style>``."""
    return Markup((STATIC_DIR / STYLESHEET).read_text())  # noqa: S704


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
