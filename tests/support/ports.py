"""Ports for the test servers to listen on, below the kernel's ephemeral range.

A port the kernel hands out for ``bind(0)`` comes from the same range it takes the local port
of every outgoing connection from: in the moment between our check and the server's bind,
one of the suite's thousands of client connections could take it (CI, 2026-12-02: the
session's Redis Cluster could not start a node, and 148 tests erred). Below that range only
another listener can take a port, and listeners check before they bind.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

LOWEST = 10_000
_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _ephemeral_start() -> int:
    try:
        return int(_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


EPHEMERAL_START = _ephemeral_start()


def is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(below: int = EPHEMERAL_START) -> int:
    """A port nobody listens on, under ``below`` (the ephemeral range unless told)."""
    for _ in range(1000):
        port = random.randint(LOWEST, below - 1)  # noqa: S311 - not security
        if is_free(port):
            return port
    raise RuntimeError(f"no free port between {LOWEST} and {below}")
