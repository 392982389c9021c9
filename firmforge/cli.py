"""The ``firmforge`` command line: a thin typer layer over the package's objects."""

from __future__ import annotations

import enum
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from firmforge import __version__
from firmforge.client.cli import app as client_app

if TYPE_CHECKING:
    from firmforge.worker_tokens import WorkerTokens

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


@app.command("worker")
def worker_command(
    redis_url: Annotated[str, typer.Option(help="The farm's Redis/Valkey (the server's).")],
    server_url: Annotated[str, typer.Option(help="The API server, e.g. http://build:8000.")],
    token: Annotated[str, typer.Option(envvar="FIRMFORGE_WORKER_TOKEN",
                                       help="This worker's token (`firmforge worker-token "
                                       "create`); also FIRMFORGE_WORKER_TOKEN.")],
    cache_dir: Annotated[Path, typer.Option(help="ImageBuilder cache of this host.")] = Path(
        "firmforge-worker-cache"),
    max_cache_gb: Annotated[float, typer.Option(help="Disk budget of the cache, GiB.")] = 20.0,
    concurrency: Annotated[int, typer.Option(min=1, max=64,
                                             help="Builds at once (processes).")] = 1,
) -> None:
    """Run build workers on this host for a firmforge server (distributed mode)."""
    import logging
    import signal
    import threading

    from redis.exceptions import RedisError

    from firmforge.remote_worker import (
        RemoteOptions,
        ServerRefusedError,
        check_server,
        run_remote_worker,
    )

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    options = RemoteOptions(redis_url=redis_url, server_url=server_url, token=token,
                            cache_dir=cache_dir, max_cache_gb=max_cache_gb,
                            concurrency=concurrency)
    try:
        config = check_server(options)
    except (ServerRefusedError, ConnectionError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    console.print(f"building for {server_url} from {config['upstream_url']} "
                  f"({concurrency} at once, cache {cache_dir})")
    stopping = threading.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda _signum, _frame: stopping.set())
    try:
        run_remote_worker(options, stopping.wait)
    except RedisError as exc:
        console.print(f"[red]error:[/red] Redis at {redis_url}: {exc}")
        raise typer.Exit(2) from exc


token_app = typer.Typer(help="Tokens of remote build workers (stored as SHA-256 only).",
                        no_args_is_help=True)
app.add_typer(token_app, name="worker-token")

_DataDir = Annotated[Path | None, typer.Option(help="The server's data dir (SQLite).")]
_DatabaseUrl = Annotated[str | None, typer.Option(help="The server's database URL.")]


def _tokens(data_dir: Path | None, database_url: str | None) -> WorkerTokens:
    from firmforge.config import Settings
    from firmforge.db import Database
    from firmforge.worker_tokens import WorkerTokens

    flags = {"data_dir": data_dir, "database_url": database_url}
    settings = Settings(**{k: v for k, v in flags.items() if v is not None})
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.effective_database_url)
    database.migrate()
    return WorkerTokens(database)


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="A name for the worker (host) it is for.")],
    data_dir: _DataDir = None,
    database_url: _DatabaseUrl = None,
) -> None:
    """Make a token and print it (once: only its hash is kept)."""
    tokens = _tokens(data_dir, database_url)
    try:
        typer.echo(tokens.create(name))
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


@token_app.command("list")
def token_list(data_dir: _DataDir = None, database_url: _DatabaseUrl = None) -> None:
    """List the tokens: name, made, last used, revoked."""
    tokens = _tokens(data_dir, database_url)
    for info in tokens.list():
        used = info.last_used_at.isoformat() if info.last_used_at else "never used"
        state = f"revoked {info.revoked_at.isoformat()}" if info.revoked_at else "live"
        typer.echo(f"{info.name}\t{info.created_at.isoformat()}\t{used}\t{state}")


@token_app.command("revoke")
def token_revoke(
    name: Annotated[str, typer.Argument(help="The token's name.")],
    data_dir: _DataDir = None,
    database_url: _DatabaseUrl = None,
) -> None:
    """Revoke a token: its worker's next call is refused."""
    tokens = _tokens(data_dir, database_url)
    if not tokens.revoke(name):
        console.print(f"[red]error:[/red] no live token named {name}")
        raise typer.Exit(1)
    typer.echo(f"revoked {name}")


def main() -> None:
    app()
