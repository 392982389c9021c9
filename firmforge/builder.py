"""The job a worker runs: one request → the ImageBuilder → images in the store.

A short pipeline of named steps (research/asu-upstream.md §1.4): fetch the ImageBuilder,
``make info``, check the revision, ``make manifest``, check package versions, ``make image``,
check the output, sign (``firmforge.signing``), publish. Each step reports its ``Stage``; a
failure raises ``BuildError`` carrying the stage, and the job records it so the client is told
which stage failed and why.
"""

from __future__ import annotations

import errno
import json
import logging
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from rq import get_current_job
from rq.timeouts import JobTimeoutException

from firmforge.distributions import BuildAdditions
from firmforge.errors import BuildError, FirmforgeError, ImageTooBigError
from firmforge.imagebuilder import (
    ImageBuilderCache,
    ImageBuilderInfo,
    MakeResult,
    ProfileInfo,
    diff_packages,
    image_command,
    image_too_big,
    info_command,
    manifest_command,
    package_selection_error,
    parse_info,
    parse_manifest,
    run_make,
)
from firmforge.queue import Stage, set_failure, set_stage
from firmforge.repositories import discard_new_downloads, feed_failure, install_repositories
from firmforge.request import BuildRequest, packages_hash
from firmforge.signing import sign_build
from firmforge.store import ArtifactStore
from firmforge.upstream import ImageBuilderSource, Upstream
from firmforge.usign import SecretKey

__all__ = [
    "BuildContext",
    "BuildRecords",
    "archived_response",
    "build",
    "install_context",
    "run_build_job",
]

log = logging.getLogger(__name__)

ProgressCallback = Callable[[Stage], None]
DEFAULTS_PATH = "etc/uci-defaults/99-asu-defaults"
_DISK_FULL = "No space left on device"
NO_ADDITIONS = BuildAdditions()


class BuildRecords(Protocol):
    """Where a worker writes its build records: ``firmforge.db.Database`` on the server's
    side, the server's API for a remote worker (``firmforge.remote_worker``)."""

    def record_queued(self, request_hash: str, request: dict[str, Any], distro: str,
                      version: str, target: str, profile: str, packages: Sequence[str],
                      enqueued_at: datetime | None = None) -> int: ...
    def record_started(self, build_id: int, worker: str) -> None: ...
    def record_stage(self, build_id: int, stage: str, seconds: float) -> None: ...
    def record_done(self, build_id: int, *, manifest: dict[str, Any],
                    images: list[dict[str, Any]], bin_dir: str, imagebuilder: dict[str, Any],
                    build_cmd: Sequence[str]) -> None: ...
    def record_failed(self, build_id: int, *, stage: str, detail: str) -> None: ...


@dataclass
class BuildContext:
    """Everything a worker process builds with; made once per process."""

    upstream: Upstream
    cache: ImageBuilderCache
    store: ArtifactStore
    database: BuildRecords
    stage_timeout: float
    worker_name: str = field(default_factory=socket.gethostname)
    # the server's key; None builds unsigned (only tests and tools that make no server)
    signing_key: SecretKey | None = None
    # `make info` of an ImageBuilder never changes: asked once per ImageBuilder and process
    infos: dict[tuple[str, str], ImageBuilderInfo] = field(default_factory=dict)


@dataclass
class _Outcome:
    """What a finished build hands back to the job: the response body and the record."""

    response: dict[str, Any]
    stage_seconds: dict[str, float]


class _StageClock:
    """Reports each stage and measures how long it took."""

    def __init__(self, report: ProgressCallback) -> None:
        self.report = report
        self.current = Stage.INIT
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, stage: Stage) -> Iterator[None]:
        self.current = stage
        self.report(stage)
        started = time.monotonic()
        try:
            yield
        finally:  # a stage entered twice (setup, then the workspace's files) adds up
            elapsed = time.monotonic() - started
            self.seconds[stage.value] = round(self.seconds.get(stage.value, 0.0) + elapsed, 3)


def _check_versions(manifest: dict[str, str], wanted: dict[str, str]) -> None:
    for package, version in wanted.items():
        if package not in manifest:
            raise BuildError(
                f"Impossible package selection: {package} not in manifest",
                stage=Stage.VALIDATE_MANIFEST,
            )
        if manifest[package] != version:
            raise BuildError(
                f"Impossible package selection: {package} version not as requested: "
                f"{version} vs. {manifest[package]}",
                stage=Stage.VALIDATE_MANIFEST,
            )


def _check_disk(result: MakeResult, stage: Stage) -> None:
    """A full disk fails with a message that says so, not as a puzzling make error."""
    if result.returncode != 0 and _DISK_FULL in result.stderr:
        raise BuildError(f"The build host's disk is full (stage {stage.value}): {_DISK_FULL}",
                         stage=stage.value, stdout=result.stdout, stderr=result.stderr)


def _run(workdir: Path, args: list[str], ctx: BuildContext, stage: Stage) -> tuple[str, str]:
    result = run_make(workdir, args, timeout=ctx.stage_timeout, stage=stage.value)
    _check_disk(result, stage)
    if result.returncode != 0:
        selection = package_selection_error(result.stderr, stage.value)
        if selection is not None:
            selection.stdout = result.stdout
            raise selection
        raise BuildError(
            f"{' '.join(args[:2])} failed with exit code {result.returncode} "
            f"(stage {stage.value}). See stdout/stderr",
            stage=stage.value,
            stdout=result.stdout,
            stderr=result.stderr,
        )
    return result.stdout, result.stderr


def build(
    request: BuildRequest,
    request_hash: str,
    ctx: BuildContext,
    report: ProgressCallback,
    additions: BuildAdditions = NO_ADDITIONS,
) -> _Outcome:
    """Build ``request`` (with what its distribution adds) and publish its images as
    ``request_hash`` in the store."""
    request = additions.with_feeds(request)
    clock = _StageClock(report)
    with clock.stage(Stage.INIT):
        source = ctx.upstream.imagebuilder(request.version, request.target)
    with clock.stage(Stage.CONTAINER_SETUP):
        ctx.cache.ensure(source)
    with ctx.cache.workspace(source) as workdir:
        if request.repositories or request.repository_keys:
            with clock.stage(Stage.CONTAINER_SETUP):
                install_repositories(workdir, request.repositories, request.repository_keys,
                                     request.repositories_mode)
        with clock.stage(Stage.VALIDATE_REVISION):
            info = _info(workdir, source, ctx)
            profile = _check_revision_and_profile(info, request)
        requested = additions.packages_for(request.requested_packages)  # renamed by the API
        packages = (
            diff_packages(requested, info.default_packages, profile.packages)
            if request.diff_packages
            else requested
        )
        if request.packages_versions:
            # exact versions asked for: resolve first, so a mismatch fails before a build
            with clock.stage(Stage.VALIDATE_MANIFEST):
                stdout, _ = _run(workdir, manifest_command(request.profile, packages), ctx,
                                 Stage.VALIDATE_MANIFEST)
                _check_versions(parse_manifest(stdout), request.packages_versions)
        relative_bin_dir = f"firmforge-bin/{request_hash}"
        bin_dir = workdir / relative_bin_dir
        command = image_command(
            request.profile,
            packages,
            bin_dir=relative_bin_dir,
            extra_image_name=packages_hash(packages)[:12],
            files=_write_defaults(workdir, request.defaults),
            rootfs_partsize=request.rootfs_size_mb,
            filesystem=request.filesystem,
        )
        with clock.stage(Stage.BUILDING_IMAGE):
            result = _image(workdir, command, ctx, request)
            profiles = _built_profiles(bin_dir, request.profile, result)
        with clock.stage(Stage.VALIDATE_MANIFEST):
            manifest = _installed(bin_dir, request, ctx)
            _check_versions(manifest, request.packages_versions)
        if ctx.signing_key is not None:
            with clock.stage(Stage.SIGNING_IMAGES):
                profiles = sign_build(bin_dir, ctx.signing_key)
        with clock.stage(Stage.STORING):
            # a remote worker's store is the server, which signs on arrival and says how
            profiles = ctx.store.publish(request_hash, bin_dir) or profiles
        if request.repositories:  # files from extra feeds stay out of the shared download pool
            discard_new_downloads(workdir / "dl")
    response = _response(request, request_hash, profiles, manifest, command, packages, result)
    response["imagebuilder"] = {"name": source.name, "sha256": source.sha256}
    return _Outcome(response=response, stage_seconds=clock.seconds)


def _info(workdir: Path, source: ImageBuilderSource, ctx: BuildContext) -> ImageBuilderInfo:
    """``make info`` of this ImageBuilder, asked once per worker process."""
    key = (source.name, source.sha256)
    if key not in ctx.infos:
        stdout, _ = _run(workdir, info_command(), ctx, Stage.VALIDATE_REVISION)
        ctx.infos[key] = parse_info(stdout)
    return ctx.infos[key]


def _check_revision_and_profile(info: ImageBuilderInfo, request: BuildRequest) -> ProfileInfo:
    if request.version_code and request.version_code != info.revision:
        raise BuildError(
            f"Received incorrect version {info.revision} (requested {request.version_code})",
            stage=Stage.VALIDATE_REVISION,
        )
    profile = info.profiles.get(request.profile)
    if profile is None:
        raise BuildError(
            f"Profile {request.profile} is not in this ImageBuilder",
            stage=Stage.VALIDATE_REVISION,
        )
    return profile


def _write_defaults(workdir: Path, defaults: str | None) -> str | None:
    """The first-boot script as ``FILES``; relative, so build_cmd shows no server paths."""
    if not defaults:
        return None
    files = "firmforge-files"
    script = workdir / files / DEFAULTS_PATH
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(defaults)
    return files


def _installed(bin_dir: Path, request: BuildRequest, ctx: BuildContext) -> dict[str, str]:
    """The image's own manifest (what was really installed), names as clients know them."""
    index = ctx.upstream.package_index(request.version, request.target)
    return {
        index.strip_abi(name): version
        for name, version in _image_manifest(bin_dir, request.profile).items()
    }


def _image(
    workdir: Path, command: list[str], ctx: BuildContext, request: BuildRequest
) -> MakeResult:
    result = run_make(workdir, command, timeout=ctx.stage_timeout, stage="building_image")
    _check_disk(result, Stage.BUILDING_IMAGE)
    if image_too_big(result.stderr):
        raise ImageTooBigError(
            stage=Stage.BUILDING_IMAGE, stdout=result.stdout, stderr=result.stderr
        )
    if result.returncode != 0:
        selection = package_selection_error(result.stderr, Stage.BUILDING_IMAGE.value,
                                            result.stdout)
        feeds = feed_failure(result.stderr, request.repositories)
        if feeds is not None:  # the cause, e.g. a wrong key, before its effect (missing pkgs)
            raise BuildError(
                feeds + (f"; {selection.detail}" if selection is not None else ""),
                stage=Stage.BUILDING_IMAGE,
                stdout=result.stdout,
                stderr=result.stderr,
            )
        if selection is not None:
            raise selection
        raise BuildError(
            f"Error while building firmware: make image exited with {result.returncode}. "
            "See stdout/stderr",
            stage=Stage.BUILDING_IMAGE,
            stdout=result.stdout,
            stderr=result.stderr,
        )
    return result


def _built_profiles(bin_dir: Path, profile: str, result: MakeResult) -> dict[str, Any]:
    """The ImageBuilder's ``profiles.json``, which must describe the requested profile."""
    profiles_path = bin_dir / "profiles.json"
    if not profiles_path.is_file():
        raise BuildError("No JSON file found", stage=Stage.BUILDING_IMAGE,
                         stdout=result.stdout, stderr=result.stderr)
    profiles: dict[str, Any] = json.loads(profiles_path.read_text())
    if profile not in profiles.get("profiles", {}):
        raise BuildError("Profile not found in JSON file", stage=Stage.BUILDING_IMAGE,
                         stdout=result.stdout, stderr=result.stderr)
    return profiles


def _image_manifest(bin_dir: Path, profile: str) -> dict[str, str]:
    candidates = sorted(bin_dir.glob(f"*-{profile.lower()}.manifest")) or sorted(
        bin_dir.glob("*.manifest"))
    if not candidates:
        raise BuildError("No manifest file found in the ImageBuilder output",
                         stage=Stage.VALIDATE_MANIFEST)
    return parse_manifest(candidates[0].read_text())


def _response(
    request: BuildRequest,
    request_hash: str,
    profiles: dict[str, Any],
    manifest: dict[str, str],
    command: list[str],
    packages: list[str],
    result: MakeResult,
) -> dict[str, Any]:
    """The 200 body (research asu-upstream.md §2.4), key order as upstream emits it."""
    top_level = {k: v for k, v in profiles.items() if k != "profiles"}
    profile = profiles["profiles"][request.profile]
    build_at = datetime.fromtimestamp(int(profiles.get("source_date_epoch", 0)), UTC)
    return {
        "detail": "done",
        "imagebuilder_status": "done",
        "request": request.model_dump(mode="json"),
        "stdout": result.stdout,
        "stderr": result.stderr,
        "build_cmd": command,
        "status": 200,
        **top_level,
        "manifest": manifest,
        **profile,
        "id": request.profile,
        "bin_dir": request_hash,
        "build_cmd_packages": packages,
        "build_at": build_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }


def archived_response(
    request_data: dict[str, Any],
    request_hash: str,
    profiles: dict[str, Any],
    manifest: dict[str, str],
    command: list[str],
) -> dict[str, Any]:
    """The 200 body of a finished build from its build record and its stored ``profiles.json``
    (for when Redis lost the job): the same body, without ``make``'s output."""
    packages = next((arg.removeprefix("PACKAGES=").split() for arg in command
                     if arg.startswith("PACKAGES=")), [])
    request = BuildRequest.model_validate(request_data)
    return _response(request, request_hash, profiles, manifest, command, packages,
                     MakeResult(returncode=0, stdout="", stderr="", seconds=0.0))


def _record_failure(
    ctx: BuildContext, job: Any, record_id: int, request_hash: str, error: Exception, at: Stage
) -> None:
    """Tell the client which stage failed and why, in the job and in the build record."""
    error = _explained(error, at, job.timeout if job is not None else None)
    if isinstance(error, FirmforgeError):
        detail = error.detail
        stage = getattr(error, "stage", "") or at.value
    else:  # a bug or an environment problem: still say where, never a bare "failed"
        log.exception("build %s crashed in stage %s", request_hash, at.value)
        stage = at.value
        detail = f"Internal error in stage {stage}: {type(error).__name__}: {error}"
    failure = {
        "detail": f"Error: {detail}",
        "failed_stage": str(stage),
        "stdout": getattr(error, "stdout", ""),
        "stderr": getattr(error, "stderr", ""),
    }
    if job is not None:
        set_failure(job, failure)
    ctx.database.record_failed(record_id, stage=str(stage), detail=detail)
    log.info("build %s failed at %s: %s", request_hash, stage, detail)


def _explained(error: Exception, at: Stage, timeout: float | None) -> Exception:
    """The build host's own limits said plainly: out of time, out of disk."""
    if isinstance(error, JobTimeoutException):
        return BuildError(f"The build took longer than its limit of {timeout or 0:.0f} s and "
                          f"was stopped in stage {at.value}", stage=at.value)
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return BuildError(f"The build host's disk is full (stage {at.value}): {error}",
                          stage=at.value)
    return error


_CONTEXT: BuildContext | None = None


def install_context(context: BuildContext) -> None:
    """Set the worker process's build context (called once by the worker at start)."""
    global _CONTEXT
    _CONTEXT = context


def run_build_job(request_hash: str, request_data: dict[str, Any]) -> dict[str, Any]:
    """The RQ job: build, record, and return the response body (or raise after recording)."""
    if _CONTEXT is None:
        raise RuntimeError("worker started without a build context")
    ctx = _CONTEXT
    job = get_current_job()
    request = BuildRequest.model_validate(request_data)
    record_id = ctx.database.record_queued(
        request_hash,
        request=request_data,
        distro=request.distro,
        version=request.version,
        target=request.target,
        profile=request.profile,
        packages=request.requested_packages,
        enqueued_at=job.enqueued_at.replace(tzinfo=UTC) if job and job.enqueued_at else None,
    )
    ctx.database.record_started(record_id, ctx.worker_name)

    reached = [Stage.INIT]

    def report(stage: Stage) -> None:
        reached[0] = stage
        if job is not None:
            set_stage(job, stage)

    started = time.monotonic()
    try:
        outcome = build(request, request_hash, ctx, report, BuildAdditions.from_job(request_data))
    except Exception as error:
        _record_failure(ctx, job, record_id, request_hash, error, reached[0])
        raise
    for stage_name, seconds in outcome.stage_seconds.items():
        ctx.database.record_stage(record_id, stage_name, seconds)
    ctx.database.record_done(
        record_id,
        manifest=outcome.response["manifest"],
        images=outcome.response.get("images", []),
        bin_dir=request_hash,
        imagebuilder=outcome.response.pop("imagebuilder"),
        build_cmd=outcome.response["build_cmd"],
    )
    report(Stage.DONE)
    log.info("build %s done in %.1f s", request_hash, time.monotonic() - started)
    return outcome.response
