"""keelrun/listeners.py: who listens on a port, read from /proc with real sockets."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from keelrun.listeners import listening, socket_inodes, taken_by_others


def listener(family: socket.AddressFamily, address: str) -> socket.socket:
    s = socket.socket(family)
    s.bind((address, 0))
    s.listen()
    return s


@pytest.mark.parametrize(
    ("family", "address", "shown"),
    [
        (socket.AF_INET, "127.0.0.1", "127.0.0.1"),
        (socket.AF_INET, "0.0.0.0", "0.0.0.0"),
        (socket.AF_INET6, "::", "[::]"),
        (socket.AF_INET6, "::1", "[::1]"),
    ],
)
def test_loopback_and_wildcard_listeners_are_found(family, address: str, shown: str) -> None:
    with listener(family, address) as s:
        port = s.getsockname()[1]
        found = listening({port, 1})
        assert [addr for addr, _ in found[port]] == [f"{shown}:{port}"]
        assert found[port][0][1] in socket_inodes([os.getpid()])
        assert 1 not in found


def test_other_addresses_and_sockets_that_do_not_listen_are_not() -> None:
    with socket.socket() as other, socket.socket() as bound:
        other.bind(("127.0.0.2", 0))  # the loopback net, but not 127.0.0.1
        other.listen()
        bound.bind(("127.0.0.1", 0))  # bound, not listening
        ports = {other.getsockname()[1], bound.getsockname()[1]}
        assert listening(ports) == {}


def test_without_proc_a_connect_tells(tmp_path: Path) -> None:
    with listener(socket.AF_INET, "127.0.0.1") as s:
        port = s.getsockname()[1]
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            free = closed.getsockname()[1]
        assert listening({port, free}, proc=str(tmp_path)) == {port: [(f"127.0.0.1:{port}", 0)]}


LISTEN_CHILD = (
    "import socket, sys\n"
    "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
    "print(s.getsockname()[1], flush=True); sys.stdin.read()\n"
)


def test_a_descendants_listener_is_not_another_process() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", LISTEN_CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        theirs = int(child.stdout.readline())
        with listener(socket.AF_INET, "0.0.0.0") as s:
            mine = s.getsockname()[1]
            # From this process' point of view the child's socket is its own tree's...
            assert taken_by_others({theirs, mine}, tree_of=os.getpid()) == {mine: f"0.0.0.0:{mine}"}
            # ...and from the child's, both are someone else's.
            assert taken_by_others({theirs, mine}, tree_of=child.pid) == {
                theirs: f"127.0.0.1:{theirs}",
                mine: f"0.0.0.0:{mine}",
            }
            assert taken_by_others({theirs, mine}) == taken_by_others({theirs, mine}, child.pid)
    finally:
        child.kill()
        child.wait(10)
