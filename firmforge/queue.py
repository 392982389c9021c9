"""The build queue: RQ on Redis, one job per request hash.

The job id *is* the request hash, and jobs are enqueued with ``unique=True``, so any number of
identical concurrent requests make exactly one build. A job's progress is its ``Stage``, kept
in the job's meta under one key; its result is the finished build's response body.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from rq import Queue
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus

__all__ = [
    "BUILD_FUNCTION",
    "QUEUE_NAME",
    "BuildQueue",
    "JobView",
    "Stage",
    "client_status",
    "set_failure",
    "set_stage",
]

QUEUE_NAME = "builds"
BUILD_FUNCTION = "firmforge.builder.run_build_job"
_STAGE_KEY = "imagebuilder_status"
_FAILURE_KEY = "failure"


class Stage(enum.StrEnum):
    """Where a build is; the names are upstream's, which LuCI and owut display."""

    QUEUED = "queued"
    INIT = "init"
    CONTAINER_SETUP = "container_setup"  # fetching and unpacking the ImageBuilder
    VALIDATE_REVISION = "validate_revision"
    VALIDATE_MANIFEST = "validate_manifest"
    BUILDING_IMAGE = "building_image"
    SIGNING_IMAGES = "signing_images"
    STORING = "storing"
    DONE = "done"
    FAILED = "failed"


# What clients are shown while a build runs. Every LuCI since 22.03 and the Firmware Selector
# know these five values; LuCI before October 2024 breaks on any other (asu-clients.md §2.4).
_CLIENT_STATUS = {
    Stage.INIT: "init",
    Stage.CONTAINER_SETUP: "download_imagebuilder",
    Stage.VALIDATE_REVISION: "calculate_packages_hash",
    Stage.VALIDATE_MANIFEST: "calculate_packages_hash",
    Stage.BUILDING_IMAGE: "building_image",
    Stage.SIGNING_IMAGES: "building_image",
    Stage.STORING: "building_image",
    # The worker records `done` a moment before RQ stores the result and marks the job
    # finished; a poll in between still gets a 202 and must not show a key no client knows.
    Stage.DONE: "building_image",
}


def client_status(stage: str) -> str:
    """The ``imagebuilder_status`` a client may display for an internal stage."""
    try:
        return _CLIENT_STATUS.get(Stage(stage), stage)
    except ValueError:
        return "init"


@dataclass(frozen=True)
class JobView:
    """What the API needs to answer for one job, read in one place."""

    request_hash: str
    status: str  # "queued", "started", "finished", "failed"
    stage: str
    queue_position: int
    enqueued_at: datetime | None
    result: dict[str, Any] | None
    failure: dict[str, Any] | None
    request: dict[str, Any]


class BuildQueue:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.queue = Queue(QUEUE_NAME, connection=redis)

    def __len__(self) -> int:
        return len(self.queue)

    def fetch(self, request_hash: str) -> JobView | None:
        try:
            job = Job.fetch(request_hash, connection=self.redis)
        except NoSuchJobError:
            return None
        return self._view(job)

    def enqueue(
        self,
        request_hash: str,
        request: dict[str, Any],
        result_ttl: int,
        failure_ttl: int,
        job_timeout: int,
    ) -> JobView:
        """Enqueue a build, or return the job an identical request already made."""
        try:
            job = self.queue.enqueue_call(
                BUILD_FUNCTION,
                args=(request_hash, request),
                job_id=request_hash,
                result_ttl=result_ttl,
                failure_ttl=failure_ttl,
                timeout=job_timeout,
                meta={_STAGE_KEY: Stage.QUEUED.value},
                unique=True,
            )
        except DuplicateJobError:
            existing = self.fetch(request_hash)
            if existing is not None:
                return existing
            return self.enqueue(request_hash, request, result_ttl, failure_ttl, job_timeout)
        return self._view(job)

    def _view(self, job: Job) -> JobView:
        status = job.get_status(refresh=False)
        position = job.get_position() if status == JobStatus.QUEUED else None
        result = job.return_value(refresh=False) if status == JobStatus.FINISHED else None
        meta = job.meta or {}
        args = job.args or ()
        return JobView(
            request_hash=job.id,
            status=str(status.value if status else "queued"),
            stage=str(meta.get(_STAGE_KEY, Stage.QUEUED.value)),
            queue_position=position or 0,
            enqueued_at=job.enqueued_at.replace(tzinfo=UTC) if job.enqueued_at else None,
            result=result,
            failure=meta.get(_FAILURE_KEY) or (
                _unrecorded_failure(job) if status == JobStatus.FAILED else None
            ),
            request=args[1] if len(args) > 1 else {},
        )


def _unrecorded_failure(job: Job) -> dict[str, Any]:
    """A job that failed without saying why: its worker died or RQ stopped it (timeout).

    Never the opaque "failed" upstream answers with: say what happened and what to do.
    """
    result = job.latest_result()
    stage = str((job.meta or {}).get(_STAGE_KEY, Stage.INIT.value))
    return {
        "detail": f"Error: the build stopped unexpectedly in stage {stage} (its worker died "
        "or it ran out of time); request it again once this answer has expired",
        "failed_stage": stage,
        "stdout": "",
        "stderr": (result.exc_string or "") if result else "",
    }


def set_stage(job: Job, stage: Stage) -> None:
    """Record the running job's stage (called in the worker)."""
    job.meta[_STAGE_KEY] = stage.value
    job.save_meta()


def set_failure(job: Job, failure: dict[str, Any]) -> None:
    """Record why the running job failed before it raises (called in the worker)."""
    job.meta[_STAGE_KEY] = Stage.FAILED.value
    job.meta[_FAILURE_KEY] = failure
    job.save_meta()
