"""What the server offers: overview, branches and latest versions, and the queue length.

Shapes are upstream ASU's (research/asu-upstream.md §2.5, asu-clients.md §7): owut reads
``/json/v1/overview.json``, auc ``/json/v1/branches.json``, LuCI ``/api/v1/overview`` and old
LuCI ``/api/overview``. The aliases answer with the same JSON instead of upstream's 301, so a
client that does not follow redirects works too, and a browser makes one request, not two.

Everything comes from the catalog's memory (a rendered document is reused for a few seconds,
see ``_json``); a branch's ``targets`` is the ``.targets.json`` of its newest version (``{}`` if
the mirror lacks it, as upstream).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from firmforge import __version__
from firmforge.api._hits import render_json
from firmforge.api._json import JSONMemo, app_services, json_response
from firmforge.api._services import Services
from firmforge.catalog import Catalog, branch_of
from firmforge.config import BRANCH_OFF_REVISIONS, PACKAGE_CHANGES, PackageChange, Settings
from firmforge.distributions import Distribution
from firmforge.errors import FirmforgeError
from firmforge.signing import public_key

__all__ = ["Overview", "make_router"]

_REVISION = re.compile(r"^r(\d+)\b")


class Overview:
    """Upstream ASU's overview documents for one catalog and its settings.

    ``derived`` remembers branch-off revisions read from the mirror (for branches missing
    from ``branch_off``); pass the same dict to every instance to read each one once.
    """

    def __init__(
        self,
        catalog: Catalog,
        settings: Settings,
        *,
        changes: Sequence[PackageChange] = PACKAGE_CHANGES,
        branch_off: Mapping[str, int] = BRANCH_OFF_REVISIONS,
        derived: dict[tuple[str, str], int] | None = None,
        distributions: Iterable[Distribution] = (),
    ) -> None:
        self.catalog = catalog
        self.distributions = list(distributions)
        self.settings = settings
        self.changes = changes
        self.branch_off = branch_off
        self.derived = {} if derived is None else derived

    def latest(self) -> dict[str, Any]:
        return {"latest": self.catalog.latest}

    def branches(self) -> dict[str, dict[str, Any]]:
        """Branch objects by name, newest branch first (``SNAPSHOT`` before releases)."""
        by_branch: dict[str, list[str]] = {}
        for version in self.catalog.versions:  # newest first
            by_branch.setdefault(branch_of(version), []).append(version)
        return {name: self.branch(name, versions) for name, versions in by_branch.items()}

    def document(self) -> dict[str, Any]:
        settings = self.settings
        return {
            "latest": self.catalog.latest,
            "branches": self.branches(),
            "upstream_url": settings.upstream_url.rstrip("/"),
            # what `distro` may be: OpenWrt and those built on it (firmforge's addition)
            "distributions": [d.as_json() for d in self.distributions],
            "server": {
                "version": __version__,
                # no contact setting yet: read it once one exists
                "contact": str(getattr(settings, "contact", "") or ""),
                "allow_defaults": settings.allow_defaults,
                "repository_allow_list": list(settings.repository_allow_list),
                "max_custom_rootfs_size_mb": settings.max_custom_rootfs_size_mb,
                "max_defaults_length": settings.max_defaults_length,
                # the key at /api/v1/key that signs every build (None: the server has none)
                "signing_key_fingerprint": self._fingerprint(),
            },
        }

    def _fingerprint(self) -> str | None:
        public = public_key(self.settings.signing_key_path)
        return public.fingerprint_hex if public is not None else None

    def branch(self, name: str, versions: list[str]) -> dict[str, Any]:
        """One branch object; ``versions`` newest first."""
        snapshot = name == "SNAPSHOT"
        branch: dict[str, Any] = {
            "path": "snapshots" if snapshot else "releases/{version}",
            "enabled": True,
            "snapshot": snapshot,
            "path_packages": "DEPRECATED",  # auc skips branch objects without it
        }
        branch_off = None if snapshot else self.branch_off_rev(name, versions)
        if branch_off is not None:
            branch["branch_off_rev"] = branch_off
        branch["package_changes"] = self.package_changes(name, branch_off, snapshot)
        branch["versions"] = list(versions)
        branch["name"] = name
        branch["targets"] = self._targets(versions[0])
        return branch

    def branch_off_rev(self, name: str, versions: list[str]) -> int | None:
        """The configured revision, else that of the branch's first release (an upper bound:
        a release is made after its branch); None when the mirror cannot tell."""
        if name in self.branch_off:
            return self.branch_off[name]
        releases = [v for v in versions if not v.endswith("-SNAPSHOT")]
        first = releases[-1] if releases else versions[-1]
        key = (name, first)
        if key not in self.derived:
            revision = self._revision_of(first)
            if revision is None:
                return None
            self.derived[key] = revision
        return self.derived[key]

    def _revision_of(self, version: str) -> int | None:
        try:
            targets = sorted(self.catalog.targets(version))
            if not targets:
                return None
            code = str(self.catalog.profiles(version, targets[0]).get("version_code", ""))
        except FirmforgeError:
            return None
        match = _REVISION.match(code)
        return int(match.group(1)) if match else None

    def package_changes(
        self, name: str, branch_off: int | None, snapshot: bool = False
    ) -> list[dict[str, object]]:
        """The changes made before the branch left the main branch (all of them for
        ``SNAPSHOT``), then the branch's renames the table lacks, at the branch-off revision."""
        if snapshot:
            published = list(self.changes)
        elif branch_off is None:
            published = []
        else:
            published = [c for c in self.changes if c.revision <= branch_off]
        pairs = {(c.source, c.target) for c in published}
        renames = self.catalog.renames.get(name, {})
        published += [
            PackageChange(branch_off or 0, source, target)
            for source, target in renames.items()
            if (source, target) not in pairs
        ]
        return [change.as_json() for change in published]

    def _targets(self, version: str) -> dict[str, str]:
        try:
            return dict(self.catalog.targets(version))
        except FirmforgeError:
            return {}


def make_router() -> APIRouter:
    """The routes, with their own memory of rendered documents and derived revisions."""
    router = APIRouter(tags=["overview"])
    memo = JSONMemo()
    derived: dict[tuple[str, str], int] = {}

    def overview(svc: Services) -> Overview:
        return Overview(svc.catalog, svc.settings, derived=derived,
                        distributions=svc.distributions)

    @router.get("/json/v1/overview.json", response_model=None)
    async def overview_json(svc: Annotated[Services, Depends(app_services)]) -> Response:
        """Latest versions, branches with their versions, targets and package changes, and
        the server's limits (owut)."""
        return await memo.respond("overview", lambda: overview(svc).document())

    for alias in ("/api/v1/overview", "/api/overview", "/overview"):
        router.add_api_route(
            alias, overview_json, methods=["GET"], include_in_schema=False,
            response_model=None,
        )

    @router.get("/json/v1/branches.json", response_model=None)
    async def branches_json(svc: Annotated[Services, Depends(app_services)]) -> Response:
        """The branch objects as a list (auc)."""
        return await memo.respond(
            "branches", lambda: list(overview(svc).branches().values())
        )

    @router.get("/json/v1/latest.json", response_model=None)
    async def latest_json(svc: Annotated[Services, Depends(app_services)]) -> Response:
        """``{"latest": [upcoming, stable, oldstable]}`` without the empty ones."""
        return await memo.respond("latest", lambda: overview(svc).latest())

    router.add_api_route(
        "/api/v1/latest", latest_json, methods=["GET"], include_in_schema=False,
        response_model=None,
    )

    @router.get("/api/v1/stats", tags=["stats"], response_model=None)
    def stats(svc: Annotated[Services, Depends(app_services)]) -> Response:
        """``{"queue_length": N, ...}``: builds waiting, the workers' ImageBuilder cache hits."""
        return json_response(render_json(svc.queue.stats()))

    return router
