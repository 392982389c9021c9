"""Running make: argument lists only, a clean environment, time limits, sandboxes."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import pytest

from firmforge.errors import BuildError
from firmforge.imagebuilder import BubblewrapSandbox, NoSandbox, run_make

MAKEFILE = """\
hello:
\t@echo "out: $(WHO)"; echo "err" >&2

environment:
\t@env

fail:
\t@echo "oops" >&2; exit 3

slow:
\t@echo started; sleep $(SLEEP) & echo $$! > background.pid; sleep $(SLEEP)

touch:
\t@touch touched

write:
\t@echo written > $(TARGET)
"""


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    directory = tmp_path / "ib"
    directory.mkdir()
    (directory / "Makefile").write_text(MAKEFILE)
    return directory


def test_output_exit_code_and_time(workdir: Path) -> None:
    result = run_make(workdir, ["make", "-s", "hello", "WHO=firm forge"], 30, "info")
    assert result.returncode == 0
    assert result.stdout == "out: firm forge\n"
    assert result.stderr == "err\n"
    assert 0 < result.seconds < 30


def test_failure_is_returned_not_raised(workdir: Path) -> None:
    result = run_make(workdir, ["make", "fail"], 30, "manifest")
    assert result.returncode == 2
    assert "oops" in result.stderr


def test_environment_is_small_and_in_the_c_locale(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIRMFORGE_SECRET_TOKEN", "do-not-leak")
    monkeypatch.setenv("MAKEFLAGS", "-j99 --eval=x")
    environment = dict(
        line.split("=", 1)
        for line in run_make(workdir, ["make", "-s", "environment"], 30, "info").stdout.splitlines()
    )
    assert environment["LC_ALL"] == "C"
    assert environment["HOME"] == str(workdir)
    assert "FIRMFORGE_SECRET_TOKEN" not in environment
    assert "-j99" not in environment.get("MAKEFLAGS", "")


def _sleepers(token: str) -> list[int]:
    """Pids of live processes whose command line holds ``token``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if token.encode() in cmdline and state not in ("Z", "X"):
            found.append(int(proc.name))
    return found


def _wait_until_gone(token: str) -> list[int]:
    deadline = time.monotonic() + 5
    while (left := _sleepers(token)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _unique_sleep() -> str:
    return f"60.{uuid.uuid4().int % 10**9:09d}"


def test_timeout_kills_the_whole_process_group(workdir: Path) -> None:
    sleep = _unique_sleep()
    started = time.monotonic()
    with pytest.raises(BuildError) as caught:
        run_make(workdir, ["make", "slow", f"SLEEP={sleep}"], 1, "building_image")
    assert time.monotonic() - started < 15
    error = caught.value
    assert error.detail.startswith("building_image timed out after 1 s")
    assert error.stage == "building_image"
    assert "started" in error.stdout
    assert (workdir / "background.pid").exists()  # the grandchild did start
    assert _wait_until_gone(sleep) == []


@pytest.mark.parametrize(
    "argument",
    [
        "PACKAGES=$(shell touch touched)",
        "PACKAGES=a\nb",
        "PACKAGES=a\x00b",
        "PROFILE=x'y",
        'PROFILE=x"y',
        "PROFILE=x;touch touched",
        "PROFILE=`id`",
        "FILES=a\\b",
        "PACKAGES=a*",
        "lower=value",
        "1X=value",
        "--eval=x",
        "touch;id",
        "$(shell id)",
        "",
    ],
)
def test_unsafe_arguments_are_refused_before_make_runs(workdir: Path, argument: str) -> None:
    with pytest.raises(BuildError, match="Refusing make argument") as caught:
        run_make(workdir, ["make", "touch", argument], 30, "manifest")
    assert caught.value.stage == "manifest"
    assert not (workdir / "touched").exists()


def test_refuses_an_empty_command(workdir: Path) -> None:
    with pytest.raises(BuildError, match="empty command"):
        run_make(workdir, [], 30, "info")


def test_no_sandbox_passes_argv_through() -> None:
    assert NoSandbox().wrap(["make", "info"], Path("/w")) == ["make", "info"]


def test_bubblewrap_argv() -> None:
    sandbox = BubblewrapSandbox(network=False)
    argv = sandbox.wrap(["make", "info"], Path("/tmp/w"), writable=[Path("/srv/out")])
    assert argv[0] == "bwrap" and argv[-3:] == ["--", "make", "info"]
    assert "--unshare-all" in argv and "--share-net" not in argv
    assert "--share-net" in BubblewrapSandbox().wrap(["make"], Path("/tmp/w"))
    joined = " ".join(argv)
    assert "--ro-bind / /" in joined
    # the private /tmp comes first, so binds below it stay visible
    assert joined.index("--tmpfs /tmp") < joined.index("--bind /tmp/w /tmp/w")
    assert "--bind /srv/out /srv/out" in joined
    assert "--chdir /tmp/w" in joined


def _bubblewrap_works() -> bool:
    if not BubblewrapSandbox.available():
        return False
    probe = ["bwrap", "--unshare-all", "--ro-bind", "/", "/", "--proc", "/proc", "true"]
    return subprocess.run(probe, capture_output=True).returncode == 0


needs_bwrap = pytest.mark.skipif(
    not _bubblewrap_works(), reason="bubblewrap (bwrap) is missing or cannot create namespaces"
)


@needs_bwrap
def test_bubblewrap_confines_writes_to_the_workspace(workdir: Path, tmp_path: Path) -> None:
    sandbox = BubblewrapSandbox(network=False)
    inside = run_make(workdir, ["make", "-s", "write", "TARGET=inside"], 30, "image", sandbox)
    assert inside.returncode == 0, inside.stderr
    assert (workdir / "inside").read_text() == "written\n"
    in_private_tmp = tmp_path / "outside"  # /tmp is the sandbox's own: writes vanish
    result = run_make(
        workdir, ["make", "-s", "write", f"TARGET={in_private_tmp}"], 30, "image", sandbox
    )
    assert not in_private_tmp.exists()
    read_only = Path("/var/tmp") / f"firmforge-escape-{uuid.uuid4().hex}"
    result = run_make(workdir, ["make", "-s", "write", f"TARGET={read_only}"], 30, "image", sandbox)
    assert result.returncode != 0
    assert "Read-only file system" in result.stderr
    assert not read_only.exists()
    allowed = tmp_path / "bin"
    allowed.mkdir()
    result = run_make(
        workdir,
        ["make", "-s", "write", f"TARGET={allowed}/file"],
        30,
        "image",
        sandbox,
        writable=[allowed],
    )
    assert result.returncode == 0, result.stderr
    assert (allowed / "file").exists()


@needs_bwrap
def test_bubblewrap_timeout_kills_the_sandbox(workdir: Path) -> None:
    sleep = _unique_sleep()
    sandbox = BubblewrapSandbox(network=False)
    with pytest.raises(BuildError, match="timed out"):
        run_make(workdir, ["make", "slow", f"SLEEP={sleep}"], 1, "image", sandbox)
    assert (workdir / "background.pid").exists()
    assert _wait_until_gone(sleep) == []
