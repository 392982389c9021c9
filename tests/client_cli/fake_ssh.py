"""A stand-in for the ``ssh`` binary: serves a fixture root as if it were a router.

Installed as ``ssh`` first on ``PATH`` (see ``conftest.fake_ssh``), it takes the arguments the
real one would get (``ssh [options] -- user@host 'remote command'``), appends them to the JSON
lines file ``FAKE_SSH_LOG``, and runs the remote command against ``FAKE_SSH_ROOT`` the way the
router's shell would after parsing it (``shlex.split`` is POSIX shell word splitting). Only
what the client runs is understood: ``cat -- P``, ``cat > P``, ``test -e P``,
``sha256sum P`` and ``sysupgrade [-T|-n] P`` (recorded, never flashing anything).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
from pathlib import Path


def _local(root: Path, path: str) -> Path:
    return root / path.lstrip("/")


def _remote(words: list[str], root: Path) -> int:
    match words:
        case ["cat", "--", path]:
            try:
                sys.stdout.buffer.write(_local(root, path).read_bytes())
            except FileNotFoundError:
                sys.stderr.write(f"cat: can't open '{path}': No such file or directory\n")
                return 1
            return 0
        case ["cat", ">", path]:
            target = _local(root, path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(sys.stdin.buffer.read())
            return 0
        case ["test", "-e", path]:
            return 0 if _local(root, path).exists() else 1
        case ["sha256sum", path]:
            digest = hashlib.sha256(_local(root, path).read_bytes()).hexdigest()
            sys.stdout.write(f"{digest}  {path}\n")
            return 0
        case ["sysupgrade", "-T", path]:
            if not _local(root, path).is_file():
                sys.stderr.write(f"Image not found: {path}\n")
                return 1
            code = int(os.environ.get("FAKE_SSH_SYSUPGRADE_TEST_RC", "0"))
            if code:
                sys.stderr.write("Device tplink,archer-c7-v5 not supported by this image\n"
                                 "Image check failed.\n")
            return code
        case ["sysupgrade", *_]:
            sys.stderr.write("Connection to router closed by remote host.\n")
            return 255  # the router reboots while flashing
    sys.stderr.write(f"sh: {words[0] if words else ''}: not found\n")
    return 127


def main() -> int:
    args = sys.argv[1:]
    with Path(os.environ["FAKE_SSH_LOG"]).open("a") as log:
        log.write(json.dumps(args) + "\n")
    if "--" not in args or len(args) < args.index("--") + 3:
        sys.stderr.write("usage: ssh [options] -- destination command\n")
        return 255
    start = args.index("--")
    destination, command = args[start + 1], args[start + 2:]
    if destination != os.environ["FAKE_SSH_TARGET"]:
        sys.stderr.write(f"ssh: Could not resolve hostname {destination}: Name or service "
                         "not known\n")
        return 255
    # ssh joins the command arguments with spaces and the remote shell splits them again
    return _remote(shlex.split(" ".join(command)), Path(os.environ["FAKE_SSH_ROOT"]))


if __name__ == "__main__":
    sys.exit(main())
