"""``firmforge client``: check, build, download and flash firmware for a router.

A thin typer layer: it reads the device (``_device`` through a ``_readers`` reader), talks to
the server (``_api``), and turns ``ClientError`` into a message and an exit code in one place
(``_run``). The common options work before the command (``firmforge client --json check``)
and after it (``firmforge client check --json``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from firmforge.client._api import Api, BuildState, check_hash
from firmforge.client._build import (
    DEFAULT_POLL_INTERVAL,
    build_request,
    resume_hint,
    wait_for_build,
)
from firmforge.client._check import CHANNEL_ADVICE, check_device, exit_code, pick_version
from firmforge.client._device import DeviceFacts, read_device
from firmforge.client._download import Downloaded, choose_image, download_image
from firmforge.client._errors import (
    ClientError,
    ExitCode,
    Interrupted,
    UsageError,
)
from firmforge.client._output import Output
from firmforge.client._readers import FileReader, LocalReader, SshReader
from firmforge.client._render import (
    build_summary,
    device_line,
    offer_lines,
    print_check,
    print_download,
    print_info,
    status_document,
)
from firmforge.client._sysupgrade import run_plan, sysupgrade_plan
from firmforge.usign import PublicKey, UsignError

__all__ = ["DEFAULT_SERVER", "app"]

DEFAULT_SERVER = "https://sysupgrade.openwrt.org"
SERVER_ENV = "FIRMFORGE_CLIENT_SERVER"

EXIT_CODES = """\
Exit codes:
0 ok (check: up to date);
1 device facts unreadable or malformed, or ssh failed;
2 usage error;
3 the server refused the request (4xx, unknown build);
4 server unreachable or unexpected answer (5xx, queue full, timeout);
5 the build failed;
6 download failed or the image did not verify (the file is deleted);
7 copying the image, sysupgrade -T or sysupgrade failed on the device;
10 check: a newer release is available;
11 check: newer packages only;
130 interrupted (a build keeps running on the server).
"""

app = typer.Typer(
    help="Upgrade client for OpenWrt routers: check for, build, download, verify and flash "
         "firmware with a firmforge (or upstream ASU) server.",
    epilog=EXIT_CODES,
    no_args_is_help=True,
)


@dataclass
class Options:
    server: str | None = None
    root: Path | None = None
    ssh: str | None = None
    json: bool = False

    def merged(self, other: Options) -> Options:
        """These options, overridden by whatever ``other`` (the command's own) sets."""
        return Options(other.server or self.server, other.root or self.root,
                       other.ssh or self.ssh, self.json or other.json)

    @property
    def server_url(self) -> str:
        return self.server or DEFAULT_SERVER

    def reader(self) -> FileReader:
        if self.ssh and self.root:
            raise UsageError("use either --root (a local root) or --ssh (a remote device)")
        if self.ssh:
            return SshReader(self.ssh)
        root = self.root or Path("/")
        if not root.is_dir():
            raise UsageError(f"--root {root} is not a directory")
        return LocalReader(root)


ServerOption = Annotated[str | None, typer.Option(
    "--server", envvar=SERVER_ENV, show_envvar=True,
    help=f"Firmware server URL (default: {DEFAULT_SERVER}).")]
RootOption = Annotated[Path | None, typer.Option(
    "--root", help="Read the device facts from this directory (default: /).")]
SshOption = Annotated[str | None, typer.Option(
    "--ssh", metavar="USER@HOST", help="Read the device facts (and flash) over ssh.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document (scripts).")]
VersionOption = Annotated[str | None, typer.Option(
    "--version", help="Release to build (default: the device's for build, the newest "
                      "offered for upgrade).")]
AddOption = Annotated[list[str] | None, typer.Option(
    "--add", metavar="PKG", help="Add a package (repeatable).")]
RemoveOption = Annotated[list[str] | None, typer.Option(
    "--remove", metavar="PKG", help="Leave a package out (repeatable).")]
DefaultsOption = Annotated[Path | None, typer.Option(
    "--defaults", metavar="FILE", help="First-boot script (uci-defaults) baked into the image.")]
RootfsOption = Annotated[int | None, typer.Option(
    "--rootfs-size", metavar="MB", min=1, help="Root filesystem size, MiB.")]
PollOption = Annotated[float, typer.Option(
    "--poll-interval", min=0.05, help="Seconds between build status polls.")]
TimeoutOption = Annotated[float | None, typer.Option(
    "--timeout", min=1, help="Give up waiting for the build after this many seconds.")]
OutOption = Annotated[Path | None, typer.Option(
    "--out", metavar="DIR",
    help="Directory for the image (default: the current one; /tmp on the device).")]
ImageOption = Annotated[str | None, typer.Option(
    "--image", metavar="TYPE",
    help="Image type (sysupgrade, combined, combined-efi, sdcard, factory…) "
         "(default: what sysupgrade takes).")]
FilesystemOption = Annotated[str | None, typer.Option(
    "--filesystem", metavar="FS", help="Image filesystem (default: the device's, or squashfs).")]
KeyOption = Annotated[Path | None, typer.Option(
    "--key", metavar="FILE", help="Trust only this usign public key, not the server's "
                                  "/api/v1/key.")]
HashArgument = Annotated[str, typer.Argument(metavar="HASH", help="The build's request hash.")]


@app.callback()
def _client(
    ctx: typer.Context,
    server: ServerOption = None,
    root: RootOption = None,
    ssh: SshOption = None,
    json_: JsonOption = False,
) -> None:
    ctx.obj = Options(server, root, ssh, json_)


def _options(ctx: typer.Context, server: str | None, root: Path | None, ssh: str | None,
             json_: bool) -> Options:
    base = ctx.obj if isinstance(ctx.obj, Options) else Options()
    return base.merged(Options(server, root, ssh, json_))


def _run(options: Options, body: Callable[[Output], int]) -> None:
    """Run a command body; every ``ClientError`` becomes its message and exit code here."""
    output = Output(options.json)
    try:
        code = body(output)
    except ClientError as error:
        output.error(error)
        raise typer.Exit(int(error.exit_code)) from None
    except KeyboardInterrupt:
        output.error(Interrupted("interrupted"))
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    raise typer.Exit(code)


def _facts(options: Options, output: Output) -> tuple[FileReader, DeviceFacts]:
    reader = options.reader()
    facts = read_device(reader)
    for warning in facts.warnings:
        output.warn(warning)
    return reader, facts


@app.command("check", epilog=EXIT_CODES)
def check_command(
    ctx: typer.Context,
    server: ServerOption = None,
    root: RootOption = None,
    ssh: SshOption = None,
    json_: JsonOption = False,
) -> None:
    """Is a newer release, or are newer packages, available for the device?

    Exit code 0 up to date, 10 a newer release, 11 newer packages only.
    """
    options = _options(ctx, server, root, ssh, json_)

    def body(output: Output) -> int:
        _reader, facts = _facts(options, output)
        with Api(options.server_url) as api:
            result = check_device(api, facts)
        if output.json_mode:
            output.result({"device": facts.to_json(), **result})
        else:
            print_check(output, facts, result)
        return int(exit_code(result))

    _run(options, body)


def _read_defaults(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--defaults {path}: cannot read it as text ({exc})") from exc


def _build(api: Api, output: Output, request: dict[str, Any], poll_interval: float,
           timeout: float | None) -> BuildState:
    output.note(f"requesting {request['version']} for {request['profile']} "
                f"({request['target']}) with {len(request['packages'])} packages")
    with output.build_progress() as progress:
        state = api.post_build(request)
        return wait_for_build(api, state, on_progress=progress, poll_interval=poll_interval,
                              timeout=timeout)


@app.command("build", epilog=EXIT_CODES)
def build_command(
    ctx: typer.Context,
    version: VersionOption = None,
    add: AddOption = None,
    remove: RemoveOption = None,
    defaults: DefaultsOption = None,
    rootfs_size: RootfsOption = None,
    poll_interval: PollOption = DEFAULT_POLL_INTERVAL,
    timeout: TimeoutOption = None,
    server: ServerOption = None,
    root: RootOption = None,
    ssh: SshOption = None,
    json_: JsonOption = False,
) -> None:
    """Build an image with the device's packages and wait for it.

    Ctrl-C stops waiting, not the build: resume with 'download HASH'.
    """
    options = _options(ctx, server, root, ssh, json_)

    def body(output: Output) -> int:
        _reader, facts = _facts(options, output)
        request = build_request(facts, version=version, add=add or [], remove=remove or [],
                                defaults=_read_defaults(defaults), rootfs_size_mb=rootfs_size)
        with Api(options.server_url) as api:
            state = _build(api, output, request, poll_interval, timeout)
        summary = build_summary(state)
        if output.json_mode:
            output.result({**summary, "request": request})
        else:
            output.text(f"Build {state.request_hash} done: {summary['version_number']} "
                        f"{summary['version_code'] or ''}".rstrip())
            for image in summary["images"]:
                output.text(f"  {image.get('type')}: {image.get('name')}")
            output.text(f"Download with: firmforge client download {state.request_hash}")
        return 0

    _run(options, body)


def _pinned(key: Path | None) -> PublicKey | None:
    if key is None:
        return None
    try:
        return PublicKey.from_text(key.read_text())
    except (OSError, UnicodeDecodeError, UsignError) as exc:
        raise UsageError(f"--key {key}: not a usable usign public key ({exc})") from exc


def _fetch_image(api: Api, output: Output, state: BuildState, out: Path, *,
                 image_type: str | None, filesystem: str | None, efi: bool,
                 key: PublicKey | None) -> Downloaded:
    image = choose_image(state.body.get("images"), image_type=image_type,
                         filesystem=filesystem, efi=efi)
    bin_dir = str(state.body.get("bin_dir") or state.request_hash)
    with output.download_progress() as progress:
        done = download_image(api, bin_dir, image, out, progress=progress, pinned_key=key)
    if done.signature == "skipped":
        output.warn(done.note or "signature verification was skipped")
    elif done.note:
        output.note(done.note)
    return done


@app.command("download", epilog=EXIT_CODES)
def download_command(
    ctx: typer.Context,
    request_hash: HashArgument,
    out: OutOption = None,
    image: ImageOption = None,
    filesystem: FilesystemOption = None,
    key: KeyOption = None,
    poll_interval: PollOption = DEFAULT_POLL_INTERVAL,
    timeout: TimeoutOption = None,
    server: ServerOption = None,
    json_: JsonOption = False,
) -> None:
    """Download and verify a build's image (resumes a partial download).

    Waits for the build if it is still running. The SHA256 and the server's signature are
    checked before the file is renamed into place; a corrupted file is deleted (exit 6).
    """
    options = _options(ctx, server, None, None, json_)

    def body(output: Output) -> int:
        digest = check_hash(request_hash)
        pinned = _pinned(key)
        with Api(options.server_url) as api:
            state = api.build_status(digest)
            if not state.finished:
                with output.build_progress() as progress:
                    state = wait_for_build(api, state, on_progress=progress,
                                           poll_interval=poll_interval, timeout=timeout)
            done = _fetch_image(api, output, state, out or Path(), image_type=image,
                                filesystem=filesystem, efi=False, key=pinned)
        if output.json_mode:
            output.result({"request_hash": digest, **done.to_json()})
        else:
            print_download(output, done)
        return 0

    _run(options, body)


def _confirm(output: Output, yes: bool, what: str) -> None:
    if yes:
        return
    if not sys.stdin.isatty() or output.json_mode:
        raise UsageError(f"refusing to {what} without --yes (no terminal to ask on)")
    if not typer.confirm(f"{what}?", default=False, err=True):
        raise UsageError("cancelled")


@app.command("upgrade", epilog=EXIT_CODES)
def upgrade_command(
    ctx: typer.Context,
    version: VersionOption = None,
    add: AddOption = None,
    remove: RemoveOption = None,
    defaults: DefaultsOption = None,
    rootfs_size: RootfsOption = None,
    out: OutOption = None,
    image: ImageOption = None,
    key: KeyOption = None,
    keep: Annotated[bool, typer.Option(
        "--keep/--no-keep", help="Keep the configuration (sysupgrade -n when not).")] = True,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Build and download, then print the device commands only.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Flash without asking.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Rebuild the running release even when nothing is newer.")] = False,
    poll_interval: PollOption = DEFAULT_POLL_INTERVAL,
    timeout: TimeoutOption = None,
    server: ServerOption = None,
    root: RootOption = None,
    ssh: SshOption = None,
    json_: JsonOption = False,
) -> None:
    """Check, build, download and verify, then flash with sysupgrade.

    Runs 'sysupgrade -T' then 'sysupgrade' on the device (over --ssh, or locally on the
    device itself). With --dry-run, or a --root other than /, prints the commands instead.
    """
    options = _options(ctx, server, root, ssh, json_)

    def body(output: Output) -> int:
        reader, facts = _facts(options, output)
        pinned = _pinned(key)
        with Api(options.server_url) as api:
            result = check_device(api, facts)
            offer = _offer(output, facts, result, version, force)
            if offer is None:
                return 0
            request = build_request(
                facts, version=str(offer["version"]), add=add or [], remove=remove or [],
                changes=offer.get("package_changes") or [],
                defaults=_read_defaults(defaults), rootfs_size_mb=rootfs_size)
            state = _build(api, output, request, poll_interval, timeout)
            local_device = isinstance(reader, LocalReader) and reader.on_device
            directory = out or (Path("/tmp") if local_device else Path())  # noqa: S108
            done = _fetch_image(api, output, state, directory, image_type=image,
                                filesystem=facts.filesystem, efi=facts.efi, key=pinned)
        report: dict[str, Any] = {
            "device": facts.to_json(), "check": result, "version": offer["version"],
            "build": build_summary(state), "download": done.to_json(),
        }
        _flash(output, reader, done, report, keep=keep, dry_run=dry_run, yes=yes)
        return 0

    _run(options, body)


def _offer(output: Output, facts: DeviceFacts, result: dict[str, Any], version: str | None,
           force: bool) -> dict[str, Any] | None:
    """The release ``upgrade`` builds, announced; ``None`` (reported) when nothing is newer."""
    offer = pick_version(result, version)
    if offer is None and force:
        offer = pick_version(result, facts.version)
    if offer is None:
        if output.json_mode:
            output.result({"device": facts.to_json(), "check": result, "status": "up_to_date"})
        else:
            output.text(f"{device_line(facts)}\nNothing newer to upgrade to "
                        "(--version V or --force to build anyway).")
        return None
    for line in offer_lines("Upgrading to", offer):
        output.note(line)
    if offer.get("channel") == "caution":
        output.warn(CHANNEL_ADVICE["caution"])
    return offer


def _flash(output: Output, reader: FileReader, done: Downloaded, report: dict[str, Any], *,
           keep: bool, dry_run: bool, yes: bool) -> None:
    """Test and flash ``done`` on the device, or print the commands (a dry run)."""
    steps = sysupgrade_plan(reader, done.path, done.sha256, keep=keep)
    lines = [step.line(reader) for step in steps]
    dry = dry_run or not reader.on_device
    report.update(commands=lines, ran=not dry)
    if dry:
        if output.json_mode:
            output.result(report)
            return
        print_download(output, done)
        where = "on the device" if reader.on_device else "for the device"
        output.text(f"Dry run: the commands {where} would be:")
        for line in lines:
            output.text(f"  {line}")
        return
    _confirm(output, yes, f"flash {done.name} on {reader.description}")
    report["steps"] = run_plan(reader, steps, on_step=lambda step: output.note(f"{step.what}…"))
    if output.json_mode:
        output.result(report)
        return
    print_download(output, done)
    output.text(f"sysupgrade started on {reader.description}: the device reboots into "
                f"{report['version']}.")


@app.command("info", epilog=EXIT_CODES)
def info_command(
    ctx: typer.Context,
    request_hash: HashArgument,
    server: ServerOption = None,
    json_: JsonOption = False,
) -> None:
    """Summarise a build: request, ImageBuilder, artifacts, signature, timings.

    Reads firmforge's /api/v1/build/HASH/info, or the plain build status on upstream servers.
    """
    options = _options(ctx, server, None, None, json_)

    def body(output: Output) -> int:
        digest = check_hash(request_hash)
        with Api(options.server_url) as api:
            doc = api.build_info(digest)
            doc = {**doc, "source": "info"} if doc is not None else status_document(digest, api)
        if output.json_mode:
            output.result(doc)
        else:
            print_info(doc, output)
            if doc.get("status") not in ("done", "failed"):
                output.text(f"  {resume_hint(digest)}")
        return 0

    _run(options, body)
