"""What clients are shown of a running build's stage."""

from __future__ import annotations

import pytest

from firmforge.queue import Stage, client_status

# every LuCI generation and the Firmware Selector know these (asu-clients.md §2.4)
UNIVERSAL = {"init", "download_imagebuilder", "unpack_imagebuilder", "calculate_packages_hash",
             "building_image"}


@pytest.mark.parametrize("stage", [s for s in Stage if s not in (
    Stage.QUEUED, Stage.DONE, Stage.FAILED)])
def test_running_stages_map_to_values_every_client_displays(stage: Stage) -> None:
    assert client_status(stage.value) in UNIVERSAL


def test_unknown_stage_is_shown_as_init() -> None:
    assert client_status("something-new") == "init"
