"""The objects the API works with, made once at start-up and handed to the routes."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request

from firmforge.api._hits import FinishedResponses
from firmforge.catalog import Catalog
from firmforge.config import Settings
from firmforge.db import Database
from firmforge.distributions import Distributions
from firmforge.downloads import DownloadCounter
from firmforge.queue import BuildQueue
from firmforge.request import BuildRequest
from firmforge.store import LocalStore

__all__ = ["Services", "services"]


@dataclass
class Services:
    settings: Settings
    queue: BuildQueue
    catalog: Catalog
    store: LocalStore
    database: Database
    request_model: type[BuildRequest]
    finished: FinishedResponses = field(default_factory=FinishedResponses)
    downloads: DownloadCounter = field(init=False)
    """Counts ``/store`` downloads in memory; ``server.running`` starts and stops its flusher."""
    distributions: Distributions = field(init=False)
    """OpenWrt and the distributions built on it; ``catalog`` is OpenWrt's and theirs."""

    def __post_init__(self) -> None:
        self.downloads = DownloadCounter(self.database)
        self.distributions = Distributions(
            self.settings.distribution_configs, self.catalog, self.catalog.upstream.client,
            refresh_interval=self.settings.catalog_refresh_interval,
        )


def services(request: Request) -> Services:
    """FastAPI dependency: the app's services (set in the app factory, not at import)."""
    return request.app.state.services  # type: ignore[no-any-return]
