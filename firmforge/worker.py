"""Build workers: processes that take jobs from the queues and run them with ``builder``.

Each worker is an RQ ``SimpleWorker`` that beats (``firmforge.heartbeat``) and prefers jobs
for the ImageBuilders it has unpacked (``FarmWorker``). Its modules, HTTP client, database
pool and ImageBuilder cache stay loaded between jobs (upstream forks and re-imports for every
job, ~3 s each; see research/peer-baseline.md). A build's commands run in their own process
group with a timeout, so a stuck ImageBuilder cannot stall the worker.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import Any

import httpx
from redis import Redis
from rq import Queue, SimpleWorker
from rq.job import Job

from firmforge.builder import BuildContext, install_context
from firmforge.config import Settings
from firmforge.db import Database
from firmforge.heartbeat import Heartbeat, WorkerKind, worker_name
from firmforge.imagebuilder import ImageBuilderCache
from firmforge.queue import FarmQueue, listen_queues
from firmforge.signing import SigningKeyError, load_key
from firmforge.store import LocalStore
from firmforge.upstream import Upstream
from firmforge.usign import read_public_key

__all__ = [
    "FarmWorker",
    "LocalWorkers",
    "WorkerProcesses",
    "build_context",
    "die_with_parent",
    "run_worker",
    "work",
]

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def build_context(settings: Settings, name: str) -> BuildContext:
    """A local worker's tools. The signing key is read from the data dir, where the server
    made it before starting this worker (a remote worker never holds it: the server signs
    its uploads; see ``firmforge.remote_worker``)."""
    try:
        signing_key = load_key(settings.signing_key_path)
    except FileNotFoundError as exc:
        raise SigningKeyError(
            f"no signing key at {settings.signing_key_path}: start workers with `firmforge serve`"
        ) from exc
    client = httpx.Client(timeout=httpx.Timeout(60.0, connect=10.0), follow_redirects=True)
    upstream = Upstream(
        settings.upstream_url, [read_public_key(p) for p in settings.upstream_key], client
    )
    cache = ImageBuilderCache(
        settings.cache_dir,
        max_bytes=int(settings.max_cache_gb * 2**30),
        client=client,
        upstream_url=settings.upstream_url,
    )
    return BuildContext(
        upstream=upstream,
        cache=cache,
        store=LocalStore(settings.store_dir),
        database=Database(settings.effective_database_url),
        stage_timeout=settings.stage_timeout,
        worker_name=name,
        signing_key=signing_key,
    )


def die_with_parent() -> None:
    """Linux: end this worker when the process that started it ends, however it ends.

    A server killed with SIGKILL (or one whose signal handling skipped its clean-up) would
    otherwise leave workers taking jobs with nobody to answer for them.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the supervisor's stop() still applies
        log.debug("parent-death signal not available")


class FarmWorker(SimpleWorker):
    """A ``SimpleWorker`` that takes jobs for the ImageBuilders it has unpacked first.

    Before each wait for a job it listens anew on ``listen_queues`` of its cache: the queues of
    its warm ImageBuilders, then the general one (see ``firmforge.queue``).
    """

    queue_class = FarmQueue

    def __init__(self, cache: ImageBuilderCache, redis: Redis, name: str) -> None:
        self.cache = cache
        super().__init__(self._queues(redis), connection=redis, name=name)

    def _queues(self, redis: Redis) -> list[Queue]:
        return [FarmQueue(name, connection=redis) for name in listen_queues(self.cache.warm())]

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False
                              ) -> None:
        # every queue's jobs pass its intermediate list (FarmQueue), not only a lone queue's
        super().prepare_job_execution(job, remove_from_intermediate_queue=True)

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Any, Queue] | None:
        self.queues = self._queues(self.connection)
        self._ordered_queues = self.queues[:]
        return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)


def work(context: BuildContext, redis: Redis, kind: WorkerKind, burst: bool = False) -> None:
    """Take and build jobs until stopped (or the queues are empty, with ``burst``)."""
    install_context(context)
    cache = context.cache
    worker = FarmWorker(cache, redis, context.worker_name)
    heartbeat = Heartbeat(redis, worker, kind, warm=cache.warm, cache_counts=cache.counts)
    heartbeat.start()
    try:
        worker.work(burst=burst, logging_level="INFO")
    finally:
        heartbeat.stop()


def run_worker(settings_data: dict[str, Any], index: int, burst: bool = False) -> None:
    """Process entry point of a local worker: work on the build queues until stopped."""
    die_with_parent()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings(**settings_data)
    if not settings.redis_url:
        raise RuntimeError("a worker needs a Redis URL")
    context = build_context(settings, worker_name(index))  # named in here: its own pid
    work(context, Redis.from_url(settings.redis_url), "local", burst)


class WorkerProcesses:
    """Worker processes running ``entry(*args, index)``: restarted if one dies, scaled on
    request. The server's local workers, and those of ``firmforge worker``."""

    def __init__(self, entry: Callable[..., None], args: tuple[Any, ...], count: int) -> None:
        self.entry = entry
        self.args = args
        self.count = count
        self.processes: list[BaseProcess] = []
        self._lock = threading.Lock()  # the supervisor and scale() both change `processes`
        self._stopping = threading.Event()
        self._context = multiprocessing.get_context("spawn")
        self._supervisor = threading.Thread(target=self._supervise, daemon=True)

    def _spawn(self, index: int) -> BaseProcess:
        process = self._context.Process(target=self.entry, args=(*self.args, index),
                                        name=f"firmforge-worker-{index}")
        process.start()
        return process

    def start(self) -> None:
        with self._lock:
            self.processes = [self._spawn(i) for i in range(self.count)]
        self._supervisor.start()

    def scale(self, count: int) -> None:
        """Run ``count`` workers: start new ones, or stop the newest (each finishes its build
        first: RQ's warm shutdown)."""
        with self._lock:
            self.count = count
            surplus = self.processes[count:]
            self.processes = self.processes[:count]
            self.processes += [self._spawn(i) for i in range(len(self.processes), count)]
        threading.Thread(target=_stop_processes, args=(surplus, None), daemon=True).start()

    def _supervise(self) -> None:
        while not self._stopping.wait(2.0):
            with self._lock:
                for index, process in enumerate(self.processes):
                    if not process.is_alive() and not self._stopping.is_set():
                        log.warning("worker %s exited (%s); starting a new one",
                                    process.name, process.exitcode)
                        self.processes[index] = self._spawn(index)

    def stop(self) -> None:
        """Stop every worker: RQ's warm shutdown, then its cold one, then SIGKILL."""
        self._stopping.set()
        with self._lock:
            _stop_processes(self.processes, 1.0)


class LocalWorkers(WorkerProcesses):
    """The embedded mode's worker processes, beside the API."""

    def __init__(self, settings: Settings, count: int) -> None:
        super().__init__(run_worker, (settings.model_dump(mode="json"),), count)


def _stop_processes(processes: list[BaseProcess], warm: float | None) -> None:
    """SIGTERM (warm shutdown: the build in hand finishes, for ``warm`` seconds, or for as
    long as it takes with None), a second SIGTERM (cold: the build stops and is re-queued by
    the recovery), then SIGKILL."""
    for signal_number, wait in ((signal.SIGTERM, warm), (signal.SIGTERM, 5.0)):
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal_number)
        deadline = None if wait is None else time.monotonic() + wait
        for process in processes:
            process.join(timeout=None if deadline is None else
                         max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join(timeout=5)
