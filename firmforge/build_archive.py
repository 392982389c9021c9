"""Finished builds answered from the database and the store when Redis no longer has the job.

Redis holds a job's result only as long as the job; a Redis that was restarted without its
data, flushed or replaced would otherwise turn every finished build back into a new one. The
build record (request, manifest, command) and the stored ``profiles.json`` are enough to give
the same 200 body again (without ``make``'s output), for as long as the result would have been
kept (the same TTL policy as the queue) and the files are still in the store.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from firmforge.builder import archived_response
from firmforge.config import Settings
from firmforge.db import Database
from firmforge.queue import JobView, Stage
from firmforge.store import LocalStore

__all__ = ["BuildArchive"]


class BuildArchive:
    def __init__(self, database: Database, store: LocalStore, settings: Settings) -> None:
        self.database = database
        self.store = store
        self.settings = settings

    def __call__(self, request_hash: str) -> JobView | None:
        """The finished build ``request_hash`` as a job view, or None."""
        if not self.store.has(request_hash):
            return None  # checked first: cheap, and a malformed hash never reaches the DB
        record = self.database.latest_done(request_hash)
        profiles_path = self.store.file(request_hash, "profiles.json")
        if record is None or record.finished_at is None or profiles_path is None:
            return None
        if record.finished_at + timedelta(seconds=self._ttl(record.request)) < datetime.now(UTC):
            return None
        try:
            result = archived_response(record.request, request_hash,
                                       json.loads(profiles_path.read_text()),
                                       record.manifest or {}, record.build_cmd or [])
        except (ValueError, KeyError):  # a record or file of another version: build again
            return None
        return JobView(
            request_hash=request_hash,
            status="finished",
            stage=Stage.DONE.value,
            queue_position=0,
            enqueued_at=record.enqueued_at,
            result=result,
            failure=None,
            request=record.request,
        )

    def _ttl(self, request: dict[str, Any]) -> int:
        # the queue's result TTL policy (api._build.result_ttl), on the stored request
        if request.get("defaults"):
            return self.settings.build_defaults_ttl
        if request.get("packages_versions"):
            return self.settings.build_ttl
        return self.settings.build_ttl_unversioned
