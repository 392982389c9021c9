"""The ``firmforge`` command line: a thin typer layer over the package's objects."""

from __future__ import annotations

import enum
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from firmforge import __version__
from firmforge.client.cli import app as client_app

app = typer.Typer(
    help="firmforge: image-on-demand firmware server for OpenWrt-based distributions.",
    no_args_is_help=True,
    add_completion=False,
)
mirror_app = typer.Typer(
    help="The synthetic OpenWrt downloads mirror (offline tests, benchmarks, the demo).",
    no_args_is_help=True,
)
app.add_typer(mirror_app, name="mirror")
app.add_typer(client_app, name="client")

console = Console(stderr=True, soft_wrap=True)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"firmforge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True,
                     help="Print the version and exit."),
    ] = False,
) -> None:
    """firmforge command line."""


class Flavour(enum.StrEnum):
    OPENWRT = "openwrt"
    LIBREMESH = "libremesh"


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


@mirror_app.command("generate")
def mirror_generate(
    outdir: Annotated[Path, typer.Argument(help="Directory to write the mirror tree into.")],
    seed: Annotated[int, typer.Option(help="Seed: the same seed writes the same bytes.")] = 0,
    base_url: Annotated[
        str,
        typer.Option(help="Mirror URL baked into each ImageBuilder's repositories.conf."),
    ] = "https://downloads.openwrt.org",
    flavour: Annotated[
        Flavour,
        typer.Option(help="openwrt: releases with ImageBuilders and feeds; libremesh: the "
                     "LibreMesh feed host (lime-* packages per OpenWrt branch and arch)."),
    ] = "openwrt",  # type: ignore[assignment]
) -> None:
    """Write a deterministic synthetic mirror with working ImageBuilders."""
    from firmforge.mirror import MirrorError, generate_mirror
    from firmforge.mirror._generate import generation_steps

    if flavour == Flavour.LIBREMESH:
        _generate_libremesh(outdir, seed)
        return

    started = time.monotonic()
    with _progress() as progress:
        task = progress.add_task("generating", total=generation_steps())

        def step(description: str) -> None:
            progress.update(task, description=description, advance=1)

        try:
            result = generate_mirror(outdir, seed=seed, base_url=base_url, progress=step)
        except MirrorError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from exc
    size = sum(p.stat().st_size for p in result.root.rglob("*") if p.is_file())
    console.print(
        f"Mirror written to {result.root} ({size / 2**20:.1f} MiB, versions "
        f"{', '.join(result.versions)}) in {time.monotonic() - started:.1f} s"
    )
    typer.echo(f"public key: {result.public_key} (fingerprint {result.fingerprint})")


def _generate_libremesh(outdir: Path, seed: int) -> None:
    from firmforge.mirror import feed_generation_steps, generate_libremesh_feed

    started = time.monotonic()
    with _progress() as progress:
        task = progress.add_task("generating", total=feed_generation_steps())
        result = generate_libremesh_feed(
            outdir, seed=seed,
            progress=lambda step: progress.update(task, description=step, advance=1),
        )
    console.print(
        f"LibreMesh feeds written to {result.root} (branches {', '.join(result.branches)}) "
        f"in {time.monotonic() - started:.1f} s"
    )
    typer.echo(f"public key: {result.public_key} (fingerprint {result.fingerprint})")


@mirror_app.command("serve")
def mirror_serve(
    outdir: Annotated[Path, typer.Argument(help="A directory written by 'mirror generate'.")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8001,
) -> None:
    """Serve a mirror tree over HTTP until interrupted."""
    from firmforge.mirror import make_mirror_server

    try:
        server = make_mirror_server(outdir.resolve(), host, port)
    except (FileNotFoundError, OSError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    bound_host, bound_port = server.server_address[:2]
    console.print(f"Serving {outdir} at http://{bound_host}:{bound_port}/ (Ctrl-C to stop)")
    try:
        with server:
            server.serve_forever()
    except KeyboardInterrupt:
        console.print("stopped")


@app.command("serve")
def serve_command(
    host: Annotated[str | None, typer.Option(help="Address to listen on [127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [8000].")] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Data dir: Redis, SQLite, store, caches.")
    ] = None,
    upstream_url: Annotated[
        str | None, typer.Option(help="Downloads mirror (default: the official one).")
    ] = None,
    upstream_key: Annotated[
        list[Path] | None,
        typer.Option(help="usign public key trusted for the mirror (repeatable)."),
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Local build workers [2].")] = None,
    redis_url: Annotated[
        str | None, typer.Option(help="External Redis/Valkey; unset: embedded.")
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(help="SQLAlchemy URL (PostgreSQL); unset: SQLite.")
    ] = None,
) -> None:
    """Run the build server: API, queue and local workers (each flag also FIRMFORGE_<NAME>)."""
    import logging

    from pydantic import ValidationError

    from firmforge.config import Settings
    from firmforge.server import serve

    flags = {
        "host": host, "port": port, "data_dir": data_dir, "upstream_url": upstream_url,
        "upstream_key": upstream_key, "workers": workers, "redis_url": redis_url,
        "database_url": database_url,
    }
    try:
        settings = Settings(**{k: v for k, v in flags.items() if v is not None})
    except ValidationError as exc:
        console.print(f"[red]error:[/red] invalid setting: {exc}")
        raise typer.Exit(2) from exc
    for key in settings.upstream_key:
        if not key.is_file():
            console.print(f"[red]error:[/red] upstream key {key} does not exist")
            raise typer.Exit(2)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    serve(settings)


def main() -> None:
    app()
