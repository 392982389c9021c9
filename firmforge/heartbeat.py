"""Worker presence in Redis: who is alive, what each worker is doing, and what a dead one left.

Every worker, local or remote, runs a ``Heartbeat`` thread beside its RQ ``SimpleWorker``. Every
``HEARTBEAT_INTERVAL`` seconds it writes the worker's description (``WorkerInfo``) to
``firmforge:worker:<name>`` with a TTL of ``PRESENCE_TTL`` and, while a build runs, pushes that
job's entry in RQ's ``StartedJobRegistry`` to ``PRESENCE_TTL`` seconds ahead. A worker that
stops beating (SIGKILL, power loss, a lost network) therefore vanishes from ``list_workers``
within ``PRESENCE_TTL`` seconds, and its job's registry entry expires just as soon;
``firmforge.queue.BuildQueue.recover_abandoned`` then re-queues the job.

RQ's own heartbeats cannot serve: a ``SimpleWorker`` runs the job in its only thread, so RQ
extends a running job's registry entry to the whole job timeout (30 min by default) at start
and never again.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError
from rq import SimpleWorker
from rq.job import Job
from rq.registry import StartedJobRegistry

__all__ = [
    "HEARTBEAT_INTERVAL",
    "PRESENCE_TTL",
    "Heartbeat",
    "WorkerInfo",
    "announce",
    "cache_hit_counts",
    "list_workers",
    "worker_name",
]

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 2.0
"""Seconds between two beats of a worker."""

PRESENCE_TTL = 10
"""Seconds without a beat after which a worker counts as dead and its job as abandoned."""

_WORKERS_KEY = "firmforge:workers"
_WORKER_KEY = "firmforge:worker:{}"
_CACHE_COUNTS_KEY = "firmforge:imagebuilder-cache"

WorkerKind = Literal["local", "remote"]


@dataclass(frozen=True)
class WorkerInfo:
    """One worker as ``GET /api/v1/workers`` shows it."""

    name: str
    host: str
    kind: WorkerKind
    state: Literal["idle", "busy"]
    current_job: str | None
    stage: str | None
    started_at: str
    uptime_seconds: float
    builds_done: int
    builds_failed: int
    imagebuilders_cached: int
    last_heartbeat: str
    warm: tuple[str, ...] = ()
    """Locality keys (``version/target``) of the ImageBuilders this worker has unpacked."""

    def as_json(self) -> dict[str, Any]:
        body = asdict(self)
        del body["warm"]  # internal: the API contract lists exactly the other fields
        return body


class Heartbeat:
    """The beating thread of one worker process (see the module doc)."""

    def __init__(
        self,
        redis: Redis,
        worker: SimpleWorker,
        kind: WorkerKind,
        warm: Callable[[], list[str]],
        cache_counts: Callable[[], tuple[int, int]],
    ) -> None:
        self.redis = redis
        self.worker = worker
        self.kind = kind
        self.warm = warm
        self.cache_counts = cache_counts
        self.started = datetime.now(UTC)
        self._reported_counts = (0, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        self.beat()  # present before the first job can be taken
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=HEARTBEAT_INTERVAL * 2)
        try:
            self.redis.delete(_WORKER_KEY.format(self.worker.name))
            self.redis.srem(_WORKERS_KEY, self.worker.name)
        except RedisError:
            log.warning("could not unregister worker %s", self.worker.name)

    def _run(self) -> None:
        while not self._stop.wait(HEARTBEAT_INTERVAL):
            try:
                self.beat()
            except RedisError as exc:  # Redis restarting: beat again when it is back
                log.warning("heartbeat of %s failed: %s", self.worker.name, exc)
            except Exception:
                log.exception("heartbeat of %s failed", self.worker.name)

    def beat(self) -> None:
        job_id = self.worker.get_current_job_id()
        job = Job.fetch(job_id, connection=self.redis) if job_id else None
        if job is not None:
            self._extend(job)
        # RQ keeps the counts in the worker's registry entry only
        done, failed = self.redis.hmget(self.worker.key, "successful_job_count",
                                        "failed_job_count")
        now = datetime.now(UTC)
        warm = self.warm()
        info = WorkerInfo(
            name=self.worker.name,
            host=socket.gethostname(),
            kind=self.kind,
            state="busy" if job is not None else "idle",
            current_job=job.id if job is not None else None,
            # the queue's stage key (firmforge.queue imports this module, not the reverse)
            stage=str(job.meta.get("imagebuilder_status")) if job is not None else None,
            started_at=self.started.isoformat(),
            uptime_seconds=round((now - self.started).total_seconds(), 1),
            builds_done=int(done or 0),
            builds_failed=int(failed or 0),
            imagebuilders_cached=len(warm),
            last_heartbeat=now.isoformat(),
            warm=tuple(warm),
        )
        hits, misses = self.cache_counts()
        with self.redis.pipeline() as pipe:
            announce(pipe, info)
            # cache hits and misses of every worker, added up for the stats
            pipe.hincrby(_CACHE_COUNTS_KEY, "hits", hits - self._reported_counts[0])
            pipe.hincrby(_CACHE_COUNTS_KEY, "misses", misses - self._reported_counts[1])
            pipe.execute()
        self._reported_counts = (hits, misses)

    def _extend(self, job: Job) -> None:
        """Keep the running job's registry entry ``PRESENCE_TTL`` seconds ahead of now."""
        registry = StartedJobRegistry(job.origin, connection=self.redis)
        deadline = time.time() + PRESENCE_TTL
        for member, _score in self.redis.zscan_iter(registry.key, match=f"{job.id}:*"):
            self.redis.zadd(registry.key, {member: deadline}, xx=True)


def announce(redis: Redis | Pipeline, info: WorkerInfo) -> None:
    """Show ``info`` in the worker list for ``PRESENCE_TTL`` seconds."""
    redis.set(_WORKER_KEY.format(info.name), json.dumps(asdict(info)), ex=PRESENCE_TTL)
    redis.sadd(_WORKERS_KEY, info.name)


def list_workers(redis: Redis) -> list[WorkerInfo]:
    """Every live worker, by name; dead ones (no beat for ``PRESENCE_TTL``) are dropped."""
    names = sorted(n.decode() for n in redis.smembers(_WORKERS_KEY))
    if not names:
        return []
    raw = redis.mget([_WORKER_KEY.format(name) for name in names])
    workers = []
    for name, data in zip(names, raw, strict=True):
        if data is None:
            redis.srem(_WORKERS_KEY, name)
            continue
        fields = json.loads(data)
        fields["warm"] = tuple(fields.get("warm", ()))
        workers.append(WorkerInfo(**fields))
    return workers


def cache_hit_counts(redis: Redis) -> tuple[int, int]:
    """ImageBuilder cache hits and misses of every worker so far."""
    counts = redis.hgetall(_CACHE_COUNTS_KEY)
    return int(counts.get(b"hits", 0)), int(counts.get(b"misses", 0))


def worker_name(index: int | str) -> str:
    """A name no other worker has had: host, process and start time."""
    return f"{socket.gethostname()}-{os.getpid()}-{index}-{int(time.time())}"
