"""Build workers: processes that take jobs from the queue and run them with ``builder``.

Each worker is an RQ ``SimpleWorker``: its modules, HTTP client, database pool and ImageBuilder
cache stay loaded between jobs (upstream forks and re-imports for every job, ~3 s each; see
research/peer-baseline.md). A build's commands run in their own process group with a timeout,
so a stuck ImageBuilder cannot stall the worker.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from multiprocessing.process import BaseProcess
from typing import Any

import httpx
from redis import Redis
from rq import Queue, SimpleWorker

from firmforge.builder import BuildContext, install_context
from firmforge.config import Settings
from firmforge.db import Database
from firmforge.imagebuilder import ImageBuilderCache
from firmforge.queue import QUEUE_NAME
from firmforge.signing import SigningKeyError, load_key
from firmforge.store import LocalStore
from firmforge.upstream import Upstream
from firmforge.usign import read_public_key

__all__ = ["LocalWorkers", "build_context", "run_worker"]

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def build_context(settings: Settings, name: str) -> BuildContext:
    """The worker's tools. The signing key is read from the data dir, where the server made
    it before starting this worker: local workers only (a remote worker must not hold the
    key; it will ask the server to sign, a later issue)."""
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


def _die_with_parent() -> None:
    """Linux: end this worker when the process that started it ends, however it ends.

    A server killed with SIGKILL (or one whose signal handling skipped its clean-up) would
    otherwise leave workers taking jobs with nobody to answer for them.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the supervisor's stop() still applies
        log.debug("parent-death signal not available")


def run_worker(settings_data: dict[str, Any], name: str, burst: bool = False) -> None:
    """Process entry point: work on the build queue until stopped (or empty, with ``burst``)."""
    _die_with_parent()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings(**settings_data)
    if not settings.redis_url:
        raise RuntimeError("a worker needs a Redis URL")
    install_context(build_context(settings, name))
    redis = Redis.from_url(settings.redis_url)
    worker = SimpleWorker([Queue(QUEUE_NAME, connection=redis)], connection=redis, name=name)
    worker.work(burst=burst, logging_level="INFO")


class LocalWorkers:
    """The embedded mode's worker processes, restarted if one dies."""

    def __init__(self, settings: Settings, count: int) -> None:
        self.settings_data = settings.model_dump(mode="json")
        self.count = count
        self.processes: list[BaseProcess] = []
        self._stopping = threading.Event()
        self._context = multiprocessing.get_context("spawn")
        self._supervisor = threading.Thread(target=self._supervise, daemon=True)

    def _spawn(self, index: int) -> BaseProcess:
        name = f"{socket.gethostname()}-{os.getpid()}-{index}-{int(time.time())}"
        process = self._context.Process(
            target=run_worker, args=(self.settings_data, name), name=f"firmforge-worker-{index}"
        )
        process.start()
        return process

    def start(self) -> None:
        self.processes = [self._spawn(i) for i in range(self.count)]
        self._supervisor.start()

    def _supervise(self) -> None:
        while not self._stopping.wait(2.0):
            for index, process in enumerate(self.processes):
                if not process.is_alive() and not self._stopping.is_set():
                    log.warning("worker %s exited (%s); starting a new one",
                                process.name, process.exitcode)
                    self.processes[index] = self._spawn(index)

    def stop(self) -> None:
        """Stop every worker: RQ's warm shutdown, then its cold one, then SIGKILL."""
        self._stopping.set()
        for signal_number, wait in ((signal.SIGTERM, 1.0), (signal.SIGTERM, 5.0)):
            for process in self.processes:
                if process.is_alive() and process.pid is not None:
                    os.kill(process.pid, signal_number)
            deadline = time.monotonic() + wait
            for process in self.processes:
                process.join(timeout=max(0.0, deadline - time.monotonic()))
        for process in self.processes:
            if process.is_alive():
                process.kill()
                process.join(timeout=5)

