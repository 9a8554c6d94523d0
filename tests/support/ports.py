"""Free TCP ports for tests that start formations (type k listens from base + 100·k)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager


def free_port() -> int:
    """A port nobody listens on now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_base(types: int, instances: int = 2) -> int:
    """A base port whose first ``instances`` ports of each of ``types`` types are free now."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + 100 * types < 65000 and all(
            is_free(base + 100 * k + n) for k in range(types) for n in range(instances)
        ):
            return base
    raise AssertionError("no free range of ports")


def four_digit_base(types: int, instances: int = 2) -> int:
    """As free_base, but a port of 4 digits, for tests that compare aligned tables."""
    for base in range(5000, 9900 - 100 * types, 100):
        if all(is_free(base + 100 * k + n) for k in range(types) for n in range(instances)):
            return base
    raise AssertionError("no free range of 4-digit ports")


@contextmanager
def listening(address: str, port: int) -> Iterator[socket.socket]:
    """A socket of this process listening on ``address:port`` (IPv6 if it has a colon)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((address, port))
        s.listen()
        yield s
