"""What clients are shown of a running build's stage."""

from __future__ import annotations

import pytest

from firmforge.queue import Stage, client_status

# every LuCI generation and the Firmware Selector know these (asu-clients.md §2.4)
UNIVERSAL = {"init", "download_imagebuilder", "unpack_imagebuilder", "calculate_packages_hash",
             "building_image"}


# `done` included: the worker records it just before RQ marks the job finished, so a poll
# can see a started job whose stage is already `done`.
@pytest.mark.parametrize("stage", [s for s in Stage if s not in (Stage.QUEUED, Stage.FAILED)])
def test_running_stages_map_to_values_every_client_displays(stage: Stage) -> None:
    assert client_status(stage.value) in UNIVERSAL


def test_unknown_stage_is_shown_as_init() -> None:
    assert client_status("something-new") == "init"


def test_a_job_that_died_without_a_word_still_says_what_happened(redis_url: str) -> None:
    from redis import Redis
    from rq.job import Job, JobStatus

    from firmforge.queue import BuildQueue

    queue = BuildQueue(Redis.from_url(redis_url))
    queue.redis.flushdb()
    digest = "f" * 64
    queue.enqueue(digest, {"version": "24.10.5"}, result_ttl=60, failure_ttl=60, job_timeout=60)
    job = Job.fetch(digest, connection=queue.redis)
    job.meta["imagebuilder_status"] = Stage.BUILDING_IMAGE.value
    job.save_meta()
    job.set_status(JobStatus.FAILED)  # as when a worker is killed mid-build
    view = queue.fetch(digest)
    assert view is not None and view.failure is not None
    assert view.failure["failed_stage"] == "building_image"
    assert view.failure["detail"].startswith("Error: the build stopped unexpectedly")
    assert view.request == {"version": "24.10.5"}
