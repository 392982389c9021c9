"""The build queue: RQ on Redis, one job per request hash.

The job id *is* the request hash, and jobs are enqueued with ``unique=True``, so any number of
identical concurrent requests make exactly one build. A job's progress is its ``Stage``, kept
in the job's meta under one key; its result is the finished build's response body.

Locality: besides the general queue ``builds`` there is one queue per ImageBuilder
(``builds@<version>@<target>``). Every worker listens first on the queues of the ImageBuilders
it has unpacked, then on ``builds``. A job goes to its ImageBuilder's queue when a live worker
is warm for it, else to ``builds``; ``rebalance`` moves a job that waits for a busy warm worker
to ``builds`` as soon as any worker is idle, so no job waits while a worker has nothing to do.

Crash safety: a job whose worker stopped beating (``firmforge.heartbeat``) is re-queued by
``recover_abandoned`` at most ``MAX_ATTEMPTS - 1`` times, then failed with a detail saying why.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from rq import Queue
from rq.exceptions import DequeueTimeout, DuplicateJobError, NoSuchJobError
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job, JobStatus
from rq.job_lifecycle import record_job_failure
from rq.registry import StartedJobRegistry

from firmforge.heartbeat import WorkerInfo, cache_hit_counts, list_workers

__all__ = [
    "BUILD_FUNCTION",
    "MAX_ATTEMPTS",
    "QUEUE_NAME",
    "BuildQueue",
    "FarmQueue",
    "JobView",
    "Stage",
    "client_status",
    "listen_queues",
    "locality_key",
    "set_failure",
    "set_stage",
]

log = logging.getLogger(__name__)

QUEUE_NAME = "builds"
BUILD_FUNCTION = "firmforge.builder.run_build_job"
MAX_ATTEMPTS = 3
"""Times a job is started at most when its workers keep dying under it (SIGKILL, OOM)."""

_STAGE_KEY = "imagebuilder_status"
_FAILURE_KEY = "failure"
_ATTEMPTS_KEY = "attempts"
_LOCALITY_KEY = "locality"
_QUEUES_KEY = "firmforge:queues"  # every build queue that was ever used, for counts and sweeps
_TAKEN_KEY = "firmforge:taken"  # job id → when a sweep first saw it taken but not started
_TAKEN_GRACE = 5.0
"""Seconds a job may sit taken from its queue (RQ's intermediate list) without starting."""
_LISTEN_SLICE = 0.2
"""Seconds a worker of several queues blocks on ``builds`` before it looks at the others
(``BLMOVE`` takes one list): a warm job waits 0.1 s on average; an idle worker costs Redis
about 5 calls a second per queue it listens on."""


def locality_key(version: str, target: str) -> str:
    """What makes two builds share an ImageBuilder."""
    return f"{version}/{target}"


def _locality_queue(key: str) -> str:
    return f"{QUEUE_NAME}@{key.replace('/', '@')}"


def _locality_of(queue_name: str) -> str:
    return queue_name.removeprefix(f"{QUEUE_NAME}@").replace("@", "/")


def listen_queues(warm: list[str]) -> list[str]:
    """The queues a worker with these ImageBuilders unpacked takes jobs from, in order."""
    return [*(_locality_queue(key) for key in warm), QUEUE_NAME]


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


class FarmQueue(Queue):
    """RQ's queue, but every job a worker takes passes through its queue's intermediate list
    (RQ's ``LMOVE``), also for a worker of several queues (RQ ``BLPOP``s those: a job taken by
    a worker that dies, or by a Redis that restarts, before it starts would be lost).
    ``BuildQueue.recover_abandoned`` puts a job that stays there back in its queue."""

    @classmethod
    def dequeue_any(  # type: ignore[override]
        cls,
        queues: list[Queue],
        timeout: int | None,
        connection: Redis,
        job_class: type[Job] | None = None,
        serializer: Any = None,
        death_penalty_class: Any = None,
    ) -> tuple[Job, Queue] | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        *first, last = queues
        while True:
            result = next((taken for queue in first
                           if (taken := cls.lmove(connection, queue.key, None))), None)
            if result is None:
                if deadline is None:
                    result = cls.lmove(connection, last.key, None)
                    if result is None:
                        return None
                else:
                    left = deadline - time.monotonic()
                    wait = max(1, int(left)) if not first else _LISTEN_SLICE
                    try:
                        result = cls.lmove(connection, last.key, wait)
                    except DequeueTimeout:
                        if time.monotonic() >= deadline:
                            raise DequeueTimeout(timeout, [q.key for q in queues]) from None
                        continue
            queue_key, job_id = (part.decode() if isinstance(part, bytes) else part
                                 for part in result)
            fetched = cls._fetch_dequeued_job(connection, queue_key, job_id, job_class=job_class,
                                              serializer=serializer,
                                              death_penalty_class=death_penalty_class)
            if fetched is not None:
                return fetched


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
    def __init__(self, redis: Redis, archive: Callable[[str], JobView | None] | None = None
                 ) -> None:
        self.redis = redis
        self.queue = FarmQueue(QUEUE_NAME, connection=redis)
        # finished builds Redis no longer knows (lost, or the job expired): from DB and store
        self.archive = archive
        self._move_script = redis.register_script(
            "if redis.call('lrem', KEYS[1], 1, ARGV[1]) == 1 then "
            "redis.call('lpush', KEYS[2], ARGV[1]) return 1 end return 0"
        )

    def _queue(self, name: str) -> Queue:
        return self.queue if name == QUEUE_NAME else FarmQueue(name, connection=self.redis)

    def queue_names(self) -> list[str]:
        names = {n.decode() for n in self.redis.smembers(_QUEUES_KEY)}
        return [QUEUE_NAME, *sorted(names - {QUEUE_NAME})]

    def __len__(self) -> int:
        """Jobs waiting for a worker, in every build queue."""
        with self.redis.pipeline() as pipe:
            for name in self.queue_names():
                pipe.llen(self._queue(name).key)
            return sum(pipe.execute())

    def workers(self) -> list[WorkerInfo]:
        return list_workers(self.redis)

    def stats(self) -> dict[str, Any]:
        """Queue length and the ImageBuilder cache hit rate of all workers."""
        hits, misses = cache_hit_counts(self.redis)
        return {
            "queue_length": len(self),
            "imagebuilder_cache_hits": hits,
            "imagebuilder_cache_misses": misses,
            "imagebuilder_cache_hit_rate": round(hits / (hits + misses), 3)
            if hits + misses else None,
        }

    def fetch(self, request_hash: str) -> JobView | None:
        try:
            job = Job.fetch(request_hash, connection=self.redis)
        except NoSuchJobError:
            return self.archive(request_hash) if self.archive is not None else None
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
        locality = locality_key(str(request.get("version")), str(request.get("target")))
        try:
            job = self._route(locality, self.workers()).enqueue_call(
                BUILD_FUNCTION,
                args=(request_hash, request),
                job_id=request_hash,
                result_ttl=result_ttl,
                failure_ttl=failure_ttl,
                timeout=job_timeout,
                meta={_STAGE_KEY: Stage.QUEUED.value, _LOCALITY_KEY: locality},
                unique=True,
            )
        except DuplicateJobError:
            existing = self.fetch(request_hash)
            if existing is not None:
                return existing
            return self.enqueue(request_hash, request, result_ttl, failure_ttl, job_timeout)
        return self._view(job)

    def _route(self, locality: str, workers: list[WorkerInfo]) -> Queue:
        """The ImageBuilder's queue when some live workers have it unpacked and others not;
        else ``builds`` (no choice to make, and ``builds`` wakes a worker at once)."""
        warm = sum(locality in w.warm for w in workers)
        if warm in (0, len(workers)):
            return self.queue
        name = _locality_queue(locality)
        self.redis.sadd(_QUEUES_KEY, name)
        return self._queue(name)

    def rebalance(self) -> int:
        """Move jobs that wait for busy (or gone) warm workers to the front of ``builds``
        while other workers idle. Returns how many jobs moved."""
        workers = self.workers()
        idle = sum(w.state == "idle" for w in workers)
        moved = 0
        for name in self.queue_names()[1:]:
            key = _locality_of(name)
            warm = [w for w in workers if key in w.warm]
            if warm and (idle == 0 or any(w.state == "idle" for w in warm)):
                continue  # a warm worker takes it next, or nobody else could
            # nobody warm any more: move them all; else one job per idle worker
            budget = idle if warm else None
            for job_id in self.redis.lrange(self._queue(name).key, 0, -1):
                if budget is not None and budget <= 0:
                    break
                if self._move_to_general(job_id.decode(), name):
                    moved += 1
                    idle = max(0, idle - 1)
                    budget = None if budget is None else budget - 1
        return moved

    def _move_to_general(self, job_id: str, source: str) -> bool:
        self.redis.hset(Job.key_for(job_id), "origin", QUEUE_NAME)
        # atomic: a job taken by a worker meanwhile is not queued a second time
        return bool(self._move_script(keys=[self._queue(source).key, self.queue.key],
                                      args=[job_id]))

    def _requeue(self, job_id: str, queue: Queue) -> None:
        try:
            job = Job.fetch(job_id, connection=self.redis)
        except NoSuchJobError:
            return
        job.origin = queue.name
        queue.enqueue_job(job)

    def recover_abandoned(self, now: float | None = None) -> int:
        """Re-queue (or, after ``MAX_ATTEMPTS``, fail) jobs whose worker stopped beating.

        Any number of servers may sweep at once: removing the registry entry is the claim,
        and only the one whose removal succeeded acts on the job.
        """
        recovered = 0
        now = time.time() if now is None else now
        for name in self.queue_names():
            recovered += self._recover_taken(name, now)
            registry = StartedJobRegistry(name, connection=self.redis)
            for member in self.redis.zrangebyscore(registry.key, 0, now):
                if not self.redis.zrem(registry.key, member):
                    continue  # another server claimed it
                job_id = member.decode().split(":", 1)[0]
                try:
                    job = Job.fetch(job_id, connection=self.redis)
                except NoSuchJobError:
                    continue
                if job.get_status(refresh=False) != JobStatus.STARTED:
                    continue  # finished or failed meanwhile; the entry was a leftover
                self._recover(job)
                recovered += 1
        return recovered

    def _recover_taken(self, name: str, now: float) -> int:
        """Put jobs taken from queue ``name`` but never started back at its front."""
        queue = self._queue(name)
        taken = IntermediateQueue.get_intermediate_queue_key(queue.key)
        moved = 0
        for raw in self.redis.lrange(taken, 0, -1):
            job_id = raw.decode()
            try:
                status = Job.fetch(job_id, connection=self.redis).get_status(refresh=False)
            except NoSuchJobError:
                status = None
            if status != JobStatus.QUEUED:  # started (RQ forgot to tidy up) or gone
                self.redis.lrem(taken, 1, job_id)
                self.redis.hdel(_TAKEN_KEY, job_id)
                continue
            first_seen = float(self.redis.hget(_TAKEN_KEY, job_id) or 0)
            if not first_seen:
                self.redis.hset(_TAKEN_KEY, job_id, now)
            elif now - first_seen > _TAKEN_GRACE:
                log.warning("job %s was taken but never started; queueing it again", job_id)
                self.redis.hdel(_TAKEN_KEY, job_id)
                moved += int(self._move_script(keys=[taken, queue.key], args=[job_id]))
        return moved

    def _recover(self, job: Job) -> None:
        meta = job.meta or {}
        attempts = int(meta.get(_ATTEMPTS_KEY, 1))
        stage = str(meta.get(_STAGE_KEY, Stage.INIT.value))
        if attempts >= MAX_ATTEMPTS:
            log.warning("job %s abandoned %d times; failing it", job.id, attempts)
            set_failure(job, {
                "detail": f"Error: the build's worker stopped responding {attempts} times "
                f"(last in stage {stage}: killed, out of memory or cut off); request it "
                "again once this answer has expired",
                "failed_stage": stage,
                "stdout": "",
                "stderr": "",
            })
            with self.redis.pipeline() as pipe:
                record_job_failure(job, f"abandoned {attempts} times", pipe)
                pipe.execute()
            return
        log.warning("job %s abandoned in stage %s; queueing attempt %d", job.id, stage,
                    attempts + 1)
        job.meta[_ATTEMPTS_KEY] = attempts + 1
        job.meta[_STAGE_KEY] = Stage.QUEUED.value
        job.save_meta()
        locality = str(meta.get(_LOCALITY_KEY, ""))
        self._requeue(job.id, self._route(locality, self.workers()))

    def forget(self, request_hash: str) -> None:
        """Drop a finished job (its files were collected): the next request builds again."""
        try:
            job = Job.fetch(request_hash, connection=self.redis)
        except NoSuchJobError:
            return
        if job.get_status(refresh=False) == JobStatus.FINISHED:
            job.delete()

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
