"""The queue's farm logic against a real (embedded) Redis, without workers: recovery of
abandoned and lost jobs, locality routing and rebalancing, the worker list."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from redis import Redis
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry

from firmforge.heartbeat import WorkerInfo, announce
from firmforge.queue import MAX_ATTEMPTS, QUEUE_NAME, BuildQueue

REQUEST = {"version": "24.10.5", "target": "x86/64", "profile": "generic"}
WARM_QUEUE = f"{QUEUE_NAME}@24.10.5@x86@64"


@pytest.fixture
def queue(redis_url: str) -> Iterator[BuildQueue]:
    redis = Redis.from_url(redis_url)
    redis.flushdb()
    yield BuildQueue(redis)


def worker(name: str, state: str = "idle", warm: tuple[str, ...] = ()) -> WorkerInfo:
    now = datetime.now(UTC).isoformat()
    return WorkerInfo(name=name, host="h", kind="remote", state=state,  # type: ignore[arg-type]
                      current_job=None, stage=None, started_at=now, uptime_seconds=1.0,
                      builds_done=0, builds_failed=0, imagebuilders_cached=len(warm),
                      last_heartbeat=now, warm=warm)


def start(queue: BuildQueue, digest: str, expires: float) -> Job:
    """What a worker does when it takes a job, then its death (no more heartbeats)."""
    job = Job.fetch(digest, connection=queue.redis)
    queue._queue(job.origin).remove(job)
    job.set_status(JobStatus.STARTED)
    queue.redis.zadd(StartedJobRegistry(job.origin, connection=queue.redis).key,
                     {f"{digest}:exec1": expires})
    return job


def test_an_abandoned_job_is_queued_again_then_failed_saying_why(queue: BuildQueue) -> None:
    digest = "a" * 64
    queue.enqueue(digest, REQUEST, result_ttl=60, failure_ttl=60, job_timeout=60)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        start(queue, digest, expires=time.time() + 30)
        assert queue.recover_abandoned() == 0  # still beating
        assert queue.recover_abandoned(now=time.time() + 31) == 1
        view = queue.fetch(digest)
        assert view is not None
        if attempt < MAX_ATTEMPTS:
            assert view.status == "queued" and len(queue) == 1
    assert view.status == "failed" and view.failure is not None
    assert "stopped responding 3 times" in view.failure["detail"]
    assert len(queue) == 0


def test_a_job_taken_but_never_started_is_put_back(queue: BuildQueue) -> None:
    digest = "b" * 64
    queue.enqueue(digest, REQUEST, result_ttl=60, failure_ttl=60, job_timeout=60)
    taken = IntermediateQueue.get_intermediate_queue_key(queue.queue.key)
    queue.redis.lmove(queue.queue.key, taken)  # a worker took it, then died
    assert len(queue) == 0
    now = time.time()
    assert queue.recover_abandoned(now=now) == 0  # first seen: it may be starting
    assert queue.recover_abandoned(now=now + 10) == 1
    assert len(queue) == 1 and queue.redis.llen(taken) == 0


def test_jobs_go_to_warm_workers_and_move_on_when_those_are_busy(queue: BuildQueue) -> None:
    queue.enqueue("c" * 64, REQUEST, result_ttl=60, failure_ttl=60, job_timeout=60)
    assert queue.fetch("c" * 64) is not None
    assert Job.fetch("c" * 64, connection=queue.redis).origin == QUEUE_NAME  # nobody warm
    announce(queue.redis, worker("warm", state="idle", warm=("24.10.5/x86/64",)))
    queue.enqueue("e" * 64, REQUEST, result_ttl=60, failure_ttl=60, job_timeout=60)
    assert Job.fetch("e" * 64, connection=queue.redis).origin == QUEUE_NAME  # everyone warm
    queue.queue.remove("e" * 64)
    announce(queue.redis, worker("cold", state="idle"))
    queue.enqueue("d" * 64, REQUEST, result_ttl=60, failure_ttl=60, job_timeout=60)
    assert Job.fetch("d" * 64, connection=queue.redis).origin == WARM_QUEUE
    assert len(queue) == 2
    assert queue.rebalance() == 0  # the warm worker is idle: it takes the job
    announce(queue.redis, worker("warm", state="busy", warm=("24.10.5/x86/64",)))
    assert queue.rebalance() == 1  # busy: the idle cold worker gets it
    assert Job.fetch("d" * 64, connection=queue.redis).origin == QUEUE_NAME
    assert queue.redis.lindex(queue.queue.key, 0) == b"d" * 64  # at the front
    assert queue.stats()["queue_length"] == 2


def test_dead_workers_leave_the_list(queue: BuildQueue) -> None:
    announce(queue.redis, worker("alive"))
    announce(queue.redis, worker("dead"))
    queue.redis.delete("firmforge:worker:dead")  # its presence expired
    assert [w.name for w in queue.workers()] == ["alive"]
    assert set(worker("x").as_json()) == {
        "name", "host", "kind", "state", "current_job", "stage", "started_at",
        "uptime_seconds", "builds_done", "builds_failed", "imagebuilders_cached",
        "last_heartbeat"}
