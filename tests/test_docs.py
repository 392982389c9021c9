"""The README is the user's entry: it must not drift from the code."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from firmforge.cli import app
from firmforge.config import Settings

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_readme_starts_with_the_two_commands() -> None:
    first_block = README.split("```sh", 1)[1].split("```", 1)[0]
    assert re.search(r"^make demo\b", first_block, re.MULTILINE)
    assert re.search(r"^make test\b", first_block, re.MULTILINE)


def test_every_setting_is_documented() -> None:
    for name in Settings.model_fields:
        assert f"`FIRMFORGE_{name.upper()}`" in README, name


def test_every_serve_flag_is_documented() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    flags = set(re.findall(r"--[a-z][a-z-]+", result.output)) - {"--help"}
    assert flags
    for flag in flags:
        assert flag in README, flag
