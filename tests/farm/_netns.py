"""A small network of Linux network namespaces: a server host and worker hosts on one bridge.

    test (root namespace, 10.N.M.254) ── veth ─┐
    worker host 1 (its namespace, .2) ── veth ─┼─ br0 in the server host's namespace (.1)
    worker host 2 (its namespace, .3) ── veth ─┘

Every process started with ``Host.wrap`` lives in that host's namespace and reaches the others
only over these links. Needs root (``ip netns add``); everything is torn down afterwards.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Host", "Network", "namespace_network"]


@dataclass(frozen=True)
class Host:
    namespace: str
    address: str

    @property
    def wrap(self) -> list[str]:
        return ["ip", "netns", "exec", self.namespace]


@dataclass(frozen=True)
class Network:
    outside: str  # the test's own address
    server: Host
    workers: list[Host]


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")


def _in(namespace: str, *args: str) -> None:
    _ip("netns", "exec", namespace, "ip", *args)


def _kill_namespace_processes(namespace: str) -> None:
    pids = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True,
                          text=True).stdout.split()
    for pid in pids:
        with suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


_SETUP_LOCK = Path(tempfile.gettempdir()) / "firmforge-netns.lock"


def _free_subnet() -> str:
    used = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True).stdout
    return next(f"10.231.{n}" for n in range(250) if f" 10.231.{n}." not in used)


@contextmanager
def namespace_network(workers: int) -> Iterator[Network]:
    """Raises ``PermissionError`` when namespaces cannot be made here."""
    tag = f"f{os.getpid() % 100000}"
    made: list[str] = []
    outside_link = f"{tag}h"
    try:
        with _SETUP_LOCK.open("a") as lock:  # parallel test processes take distinct subnets
            fcntl.flock(lock, fcntl.LOCK_EX)
            subnet = _free_subnet()
            server = Host(f"{tag}-srv", f"{subnet}.1")
            hosts = [Host(f"{tag}-w{i}", f"{subnet}.{i + 2}") for i in range(workers)]
            for host in (server, *hosts):
                result = subprocess.run(["ip", "netns", "add", host.namespace],
                                        capture_output=True, text=True)
                if result.returncode != 0:
                    raise PermissionError(f"ip netns add failed: {result.stderr.strip()}")
                made.append(host.namespace)
                _in(host.namespace, "link", "set", "lo", "up")
            _link(tag, subnet, server, hosts, outside_link)
        yield Network(outside=f"{subnet}.254", server=server, workers=hosts)
    finally:
        for namespace in made:
            _kill_namespace_processes(namespace)
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
        subprocess.run(["ip", "link", "del", outside_link], capture_output=True)


def _link(tag: str, subnet: str, server: Host, hosts: list[Host], outside_link: str) -> None:
    """The bridge in the server's namespace and one veth pair per other host (and the test)."""
    _in(server.namespace, "link", "add", "br0", "type", "bridge")
    _in(server.namespace, "addr", "add", f"{server.address}/24", "dev", "br0")
    _in(server.namespace, "link", "set", "br0", "up")
    for index, host in enumerate([None, *hosts]):
        near, far = f"{tag}v{index}", f"{tag}v{index}b"
        _ip("link", "add", near, "type", "veth", "peer", "name", far)
        _ip("link", "set", far, "netns", server.namespace)
        _in(server.namespace, "link", "set", far, "master", "br0", "up")
        if host is None:  # the test's own link, in the root namespace
            _ip("link", "set", near, "name", outside_link)
            _ip("addr", "add", f"{subnet}.254/24", "dev", outside_link)
            _ip("link", "set", outside_link, "up")
        else:
            _ip("link", "set", near, "netns", host.namespace)
            _in(host.namespace, "addr", "add", f"{host.address}/24", "dev", near)
            _in(host.namespace, "link", "set", near, "up")
