"""Device reports and release channels.

    POST /api/v1/report
    {"request_hash": "…", "outcome": "success"}
    {"version": "24.10.5", "target": "ath79/generic", "profile": "tplink,archer-c7-v5",
     "outcome": "failure", "message": "no wifi after the upgrade"}

    201 {"id": 7, "version": "24.10.5", "target": "ath79/generic",
         "profile": "tplink_archer-c7-v5", "outcome": "failure", "successes": 4, "failures": 1,
         "failure_rate": 0.2, "channel": "caution"}

A router reports after upgrading whether the image works. Reports are counted per version +
target + profile; from the counts each release gets a channel on that profile:
``recommended`` with at least ``channel_min_successes`` successes and a failure rate below
``channel_max_failure_rate``, ``caution`` with reports that do not qualify, ``unknown`` without
any. ``GET /api/v1/stats/reports`` lists them; upgrade-check answers show the channel of every
release they offer.

Each client address (the ASGI scope's, i.e. the proxy's when behind one that does not rewrite
it) may send ``report_rate_limit`` reports per UTC hour, counted in Redis; more get 429 with
``Retry-After``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any, Literal, Self

from fastapi import APIRouter, Body, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from starlette.concurrency import run_in_threadpool

from firmforge.api._json import DEFAULT_MEMO_TTL
from firmforge.api._services import Services, services
from firmforge.config import Settings
from firmforge.db import ReportCounts
from firmforge.errors import NotFoundError, UnsupportedError
from firmforge.request import STRING, TARGET

__all__ = [
    "Channel",
    "ReportChannels",
    "ReportRequest",
    "channel",
    "report_channels",
    "router",
]

Channel = Literal["recommended", "caution", "unknown"]

MAX_MESSAGE_LENGTH = 500
_RATE_WINDOW = 3600
_RATE_PREFIX = "firmforge:reports:rate:"
_CHANNEL_LIMIT = 4096

Name = Annotated[str, StringConstraints(pattern=STRING, min_length=1, max_length=200)]

# C0 controls but tab and newline, DEL: kept out of stored text (PostgreSQL refuses NUL).
_CONTROLS = dict.fromkeys([*range(0, 9), *range(11, 32), 127])


class ReportRequest(BaseModel):
    """A router's report: which image (by build hash, or by release), and did it work."""

    model_config = ConfigDict(extra="forbid")

    request_hash: Annotated[
        str, StringConstraints(pattern=r"^[0-9A-Za-z]+$", max_length=64)
    ] | None = Field(None, description="Hash of the build the image came from.")
    distro: Name = Field("openwrt", description="Distribution: `openwrt`, or another the "
                         "server offers (overview `distributions`).")
    version: Name | None = Field(None, description="Release running now, e.g. `24.10.5`.")
    target: Annotated[str, StringConstraints(pattern=TARGET, max_length=128)] | None = Field(
        None, description="Target/subtarget, e.g. `ath79/generic`."
    )
    profile: Name | None = Field(None, description="Profile id or board name.")
    outcome: Literal["success", "failure"] = Field(description="Did the upgraded image work.")
    message: str | None = Field(
        None, max_length=MAX_MESSAGE_LENGTH, description="What went wrong or right, plain text."
    )

    @model_validator(mode="after")
    def _one_image(self) -> Self:
        release = (self.version, self.target, self.profile)
        if self.request_hash is not None:
            if any(field is not None for field in release):
                raise ValueError("give either request_hash or version, target and profile")
        elif any(field is None for field in release):
            raise ValueError("give request_hash, or version, target and profile")
        return self

    def plain_message(self) -> str | None:
        """The message as stored: control characters dropped, blank means none."""
        if self.message is None:
            return None
        text = self.message.translate(_CONTROLS).strip()
        return text or None


def channel(counts: ReportCounts | None, settings: Settings) -> Channel:
    """The release channel of one version on one profile, from its report counts."""
    if counts is None or counts.reports == 0:
        return "unknown"
    if (counts.successes >= settings.channel_min_successes
            and counts.failure_rate < settings.channel_max_failure_rate):
        return "recommended"
    return "caution"


class ReportChannels:
    """Report counts per (target, profile), by version, for ``ttl`` seconds.

    Upgrade checks read these on the event loop; a miss reads the database in the thread pool.
    A report sent to this process forgets its (target, profile) at once; other processes see
    it within ``ttl`` seconds.
    """

    def __init__(self, ttl: float = DEFAULT_MEMO_TTL, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[tuple[str, str], tuple[float, dict[str, ReportCounts]]] = {}

    async def counts(self, svc: Services, target: str, profile: str) -> dict[str, ReportCounts]:
        key = (target, profile)
        entry = self._entries.get(key)
        if entry is not None and entry[0] > self._clock():
            return entry[1]
        rows = await run_in_threadpool(svc.database.report_counts, target=target,
                                       profile=profile)
        found = {row.version: row for row in rows}
        if len(self._entries) >= _CHANNEL_LIMIT:
            self._entries.clear()
        self._entries[key] = (self._clock() + self.ttl, found)
        return found

    async def channels(self, svc: Services, target: str, profile: str,
                       versions: list[str]) -> dict[str, Channel]:
        """The channel of each of ``versions`` on ``target``/``profile``."""
        if not versions:
            return {}
        counts = await self.counts(svc, target, profile)
        return {version: channel(counts.get(version), svc.settings) for version in versions}

    def forget(self, target: str, profile: str) -> None:
        self._entries.pop((target, profile), None)


async def report_channels(request: Request) -> ReportChannels:
    """FastAPI dependency: the app's ``ReportChannels``, made on first use."""
    state = request.app.state
    found = getattr(state, "report_channels", None)
    if found is None:
        found = state.report_channels = ReportChannels()
    return found  # type: ignore[no-any-return]


def _rate_limit(svc: Services, client: str) -> None:
    """Count this report against the client's hour; 429 once past the limit."""
    now = int(time.time())
    window = now // _RATE_WINDOW
    key = f"{_RATE_PREFIX}{client}:{window}"
    pipe = svc.queue.redis.pipeline()
    pipe.incr(key)
    pipe.expire(key, _RATE_WINDOW + 60)
    sent = int(pipe.execute()[0])
    limit = svc.settings.report_rate_limit
    if sent > limit:
        retry = (window + 1) * _RATE_WINDOW - now
        raise HTTPException(
            429,
            f"Too many reports: at most {limit} per hour from one client; "
            f"try again in {retry} s",
            headers={"Retry-After": str(retry)},
        )


def _release(report: ReportRequest, svc: Services) -> tuple[str, str, str, str]:
    """(distro, version, target, profile) of the reported image, checked like a build's."""
    if report.request_hash is not None:
        record = svc.database.latest_done(report.request_hash)
        if record is None:
            raise NotFoundError("could not find provided request hash")
        return record.distro, record.version, record.target, record.profile
    if not (report.version and report.target and report.profile):  # the model checks this
        raise UnsupportedError("give version, target and profile")
    distribution = svc.distributions.get(report.distro)
    distribution.check_version(report.version)
    catalog = svc.catalog
    catalog.check_target(report.version, report.target)
    profile = catalog.resolve_profile(report.version, report.target, report.profile)
    return distribution.name, report.version, report.target, profile


def _counts_json(counts: ReportCounts, settings: Settings) -> dict[str, Any]:
    return {
        "version": counts.version,
        "target": counts.target,
        "profile": counts.profile,
        "successes": counts.successes,
        "failures": counts.failures,
        "reports": counts.reports,
        "failure_rate": round(counts.failure_rate, 4),
        "channel": channel(counts, settings),
    }


router = APIRouter(tags=["reports"])


@router.post("/api/v1/report", status_code=201, operation_id="report_post")
def report_post(
    report: Annotated[ReportRequest, Body()],
    http_request: Request,
    svc: Annotated[Services, Depends(services)],
    channels: Annotated[ReportChannels, Depends(report_channels)],
) -> JSONResponse:
    """A router reports whether its upgraded image works.

    The image is named by `request_hash` (a finished build; unknown: 404) or by `version`,
    `target` and `profile` (profile id or board name, checked against the catalog like a
    build: unknown is a 400). `outcome` is `success` or `failure`; `message` (≤ 500
    characters) is kept as plain text. A malformed body is a 422. Each client address may
    send `FIRMFORGE_REPORT_RATE_LIMIT` reports per hour; more get 429 with `Retry-After`.
    The answer (201) holds the release's counts and channel after this report.
    """
    client = http_request.client.host if http_request.client else "unknown"
    _rate_limit(svc, client)
    distro, version, target, profile = _release(report, svc)
    report_id = svc.database.add_report(
        distro=distro, version=version, target=target, profile=profile,
        outcome=report.outcome, message=report.plain_message(),
        request_hash=report.request_hash,
    )
    channels.forget(target, profile)
    found = svc.database.report_counts(version=version, target=target, profile=profile)
    counts = found[0] if found else ReportCounts(version, target, profile, 0, 0)
    body = {"id": report_id, "outcome": report.outcome, **_counts_json(counts, svc.settings)}
    return JSONResponse(body, status_code=201)


@router.get("/api/v1/stats/reports", tags=["stats"], operation_id="stats_reports")
def report_stats(svc: Annotated[Services, Depends(services)]) -> dict[str, Any]:
    """Reports per version/target/profile (by version, target, profile): counts, failure rate
    and release channel, with the thresholds the channels follow."""
    settings = svc.settings
    rows = svc.database.report_counts()
    return {
        "min_successes": settings.channel_min_successes,
        "max_failure_rate": settings.channel_max_failure_rate,
        "total": sum(row.reports for row in rows),
        "releases": [_counts_json(row, settings) for row in rows],
    }
