"""What the client shows: progress on stderr, results on stdout, as text or as JSON.

Progress (build stages, queue position, download bytes) is a live rich display when stderr is
a terminal, and plain lines otherwise or with ``--json``, so logs and scripts get readable
text. Results go to stdout: one JSON document with ``--json``, text otherwise.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from firmforge.client._api import BuildState
from firmforge.client._errors import ClientError

__all__ = ["Output"]


def _describe(state: BuildState) -> str:
    if state.finished:
        return "build done"
    if state.stage == "queued":
        position = state.queue_position
        return "queued" + (f", position {position}" if position is not None else "")
    return f"building: {state.stage}"


class _PlainDownload:
    def __init__(self, output: Output) -> None:
        self.output = output
        self.total: int | None = None
        self.done = 0
        self.name = ""

    def start(self, name: str, total: int | None, offset: int) -> None:
        self.name, self.total, self.done = name, total, offset
        size = f"{total} bytes" if total is not None else "unknown size"
        resumed = f", resuming at byte {offset}" if offset else ""
        self.output.note(f"downloading {name} ({size}{resumed})")

    def advance(self, size: int) -> None:
        self.done += size

    def finish(self) -> None:
        self.output.note(f"downloaded {self.name} ({self.done} bytes)")


class _RichDownload:
    def __init__(self, progress: Progress, output: Output) -> None:
        self.progress = progress
        self.output = output
        self.task: TaskID | None = None

    def start(self, name: str, total: int | None, offset: int) -> None:
        # image names are long: name it on its own line, keep the bar's line short
        resumed = f", resuming at byte {offset}" if offset else ""
        self.output.note(f"downloading {name}{resumed}")
        self.task = self.progress.add_task("download", total=total, completed=offset)

    def advance(self, size: int) -> None:
        if self.task is not None:
            self.progress.advance(self.task, size)

    def finish(self) -> None:
        pass


class Output:
    """One command's output; ``json_mode`` is ``--json``."""

    def __init__(self, json_mode: bool, *, err: Console | None = None) -> None:
        self.json_mode = json_mode
        self.err = err or Console(stderr=True, soft_wrap=True, highlight=False)
        self.live = self.err.is_terminal and not json_mode

    # --- messages on stderr -------------------------------------------------------------------

    def note(self, message: str) -> None:
        self.err.print(escape(message))

    def warn(self, message: str) -> None:
        self.err.print(f"[yellow]warning:[/yellow] {escape(message)}")

    def error(self, error: ClientError) -> None:
        if self.json_mode:
            self.result(error.to_json())
        self.err.print(f"[red]error:[/red] {escape(error.message)}")
        if error.hint:
            self.err.print(escape(error.hint))

    # --- results on stdout ----------------------------------------------------------------------

    def result(self, document: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(document, indent=2, sort_keys=True) + "\n")
        sys.stdout.flush()

    def text(self, line: str = "") -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    # --- progress ---------------------------------------------------------------------------------

    @contextmanager
    def build_progress(self) -> Iterator[Callable[[BuildState], None]]:
        """A callback for each build state: a live spinner line, or a line per change."""
        if not self.live:
            last: list[str] = []

            def plain(state: BuildState) -> None:
                line = _describe(state)
                if last != [line]:
                    last[:] = [line]
                    self.note(f"{state.request_hash[:12]}: {line}")

            yield plain
            return
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                      console=self.err, transient=True) as progress:
            task = progress.add_task("requesting build", total=None)

            def live(state: BuildState) -> None:
                progress.update(task, description=escape(
                    f"{state.request_hash[:12]} {_describe(state)}"))

            yield live
        self.note("build done")

    @contextmanager
    def download_progress(self) -> Iterator[_PlainDownload | _RichDownload]:
        if not self.live:
            yield _PlainDownload(self)
            return
        with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                      TransferSpeedColumn(), console=self.err, transient=False) as progress:
            yield _RichDownload(progress, self)
