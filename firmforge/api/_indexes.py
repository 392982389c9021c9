"""Per-release data for upgrade clients: package indexes, device profiles and revisions.

    GET /json/v1/{path}/targets/{t}/{s}/index.json    {"architecture", "packages"}  (owut, auc)
    GET /json/v1/{path}/packages/{arch}-index.json    {name: version}               (owut, auc)
    GET /json/v1/{path}/targets/{t}/{s}/{profile}.json  profile metadata or {}      (auc)
    GET /api/v1/revision/{version}/{t}/{s}            {"revision": version_code}    (LuCI)
    GET /api/v1/distributions/{d}/{version}/{t}/{s}/packages  a distribution's own feeds (pages)

``{path}`` is ``snapshots`` or ``releases/<version>``, as in the mirror. Package names are
those clients send (ABI suffix stripped) and the target index includes the kmods. Everything
comes from the catalog's memory; a rendered document is reused for a few seconds (``_json``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from firmforge.api._json import JSONMemo, app_services, json_response
from firmforge.api._services import Services
from firmforge.catalog import Catalog
from firmforge.errors import NotFoundError, UnsupportedError

__all__ = ["make_router", "profile_document", "version_of_path"]

_EMPTY = b"{}"


def version_of_path(path: str) -> str:
    """``snapshots`` → ``SNAPSHOT``, ``releases/24.10.5`` → ``24.10.5``; else 404."""
    if path == "snapshots":
        return "SNAPSHOT"
    kind, _, version = path.partition("/")
    if kind != "releases" or not version or "/" in version:
        raise NotFoundError(f"Not found: no release directory {path}")
    return version


def _check_target(catalog: Catalog, version: str, target: str) -> None:
    """Unknown version or target: 404 with the catalog's explanation (a missing file)."""
    try:
        catalog.check_target(version, target)
    except UnsupportedError as exc:
        raise NotFoundError(exc.detail) from exc


def _build_at(epoch: object) -> str | None:
    if not isinstance(epoch, int | float) or isinstance(epoch, bool):
        return None
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def profile_document(profiles: dict[str, Any], profile_id: str) -> dict[str, Any]:
    """``profiles.json`` without ``profiles``, merged with one profile, ``id`` and ``build_at``
    (from ``source_date_epoch``, as upstream, not the time of a build)."""
    document = {key: value for key, value in profiles.items() if key != "profiles"}
    document.update(profiles["profiles"][profile_id])
    document["id"] = profile_id
    build_at = _build_at(profiles.get("source_date_epoch"))
    if build_at is not None:
        document["build_at"] = build_at
    return document


def make_router() -> APIRouter:
    """The routes, with their own memory of rendered documents."""
    router = APIRouter(tags=["indexes"])
    memo = JSONMemo()

    @router.get("/json/v1/{path:path}/targets/{target}/{subtarget}/index.json",
                response_model=None)
    async def target_index(
        path: str, target: str, subtarget: str, svc: Annotated[Services, Depends(app_services)]
    ) -> Response:
        """The target's packages and kmods: ``{"architecture": arch, "packages": {…}}``."""

        def build() -> dict[str, Any]:
            version, name = version_of_path(path), f"{target}/{subtarget}"
            _check_target(svc.catalog, version, name)
            index = svc.catalog.target_index(version, name)
            return {"architecture": index.architecture, "packages": index.versions}

        return await memo.respond(("target", path, target, subtarget), build)

    @router.get("/json/v1/{path:path}/packages/{arch}-index.json", response_model=None)
    async def arch_index(
        path: str, arch: str, svc: Annotated[Services, Depends(app_services)]
    ) -> Response:
        """The arch feeds (base, luci, packages, …) as one flat ``{name: version}``."""

        def build() -> dict[str, str]:
            version = version_of_path(path)
            try:
                return svc.catalog.arch_index(version, arch).versions
            except UnsupportedError as exc:
                raise NotFoundError(exc.detail) from exc

        return await memo.respond(("arch", path, arch), build)

    @router.get("/api/v1/distributions/{distro}/{version}/{target}/{subtarget}/packages",
                response_model=None)
    async def distribution_index(
        distro: str, version: str, target: str, subtarget: str,
        svc: Annotated[Services, Depends(app_services)],
    ) -> Response:
        """The packages a distribution's own feeds add for a version and target (LibreMesh's
        lime-* packages): ``{"architecture": arch, "packages": {name: version}}``; empty for
        OpenWrt. 400 for an unknown distribution, version or target."""

        def build() -> dict[str, Any]:
            distribution = svc.distributions.get(distro)
            distribution.check_version(version)
            name = f"{target}/{subtarget}"
            svc.catalog.check_target(version, name)
            index = distribution.feed_index(version, name)
            return {"architecture": svc.catalog.arch_of(version, name),
                    "packages": index.versions}

        return await memo.respond(("distribution", distro, version, target, subtarget), build)

    @router.get("/json/v1/{path:path}/targets/{target}/{subtarget}/{profile}.json",
                response_model=None)
    async def profile_json(
        path: str,
        target: str,
        subtarget: str,
        profile: str,
        svc: Annotated[Services, Depends(app_services)],
    ) -> Response:
        """A device's ``profiles.json`` entry with the target's metadata; ``{}`` (200) for a
        profile the target does not have, as upstream. Board names (``vendor,model``) work."""

        def build() -> dict[str, Any] | Response:
            version, name = version_of_path(path), f"{target}/{subtarget}"
            _check_target(svc.catalog, version, name)
            try:
                profile_id = svc.catalog.resolve_profile(version, name, profile)
            except UnsupportedError:
                return json_response(_EMPTY)
            profiles = svc.catalog.profiles(version, name)
            if profile_id not in profiles["profiles"]:  # reloaded in between
                return json_response(_EMPTY)
            return profile_document(profiles, profile_id)

        return await memo.respond(("profile", path, target, subtarget, profile), build)

    @router.get("/api/v1/revision/{version}/{target}/{subtarget}", tags=["build"],
                response_model=None)
    async def revision(
        version: str, target: str, subtarget: str, svc: Annotated[Services, Depends(app_services)]
    ) -> Response:
        """``{"revision": version_code}`` of a version's target (LuCI's upgrade check)."""

        def build() -> dict[str, str]:
            catalog = svc.catalog
            try:
                catalog.check_version(version)
            except UnsupportedError as exc:
                raise UnsupportedError(f"Unsupported version: {version}") from exc
            name = f"{target}/{subtarget}"
            try:
                catalog.check_target(version, name)
            except UnsupportedError as exc:
                raise NotFoundError(f"Failed to fetch revision for {version}/{name}") from exc
            return {"revision": str(catalog.profiles(version, name).get("version_code", ""))}

        return await memo.respond(("revision", version, target, subtarget), build)

    return router
