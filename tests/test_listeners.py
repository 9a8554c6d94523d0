"""keelrun/listeners.py: who listens on a port (netlink, /proc, a connect) with real sockets."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from keelrun import listeners
from keelrun.listeners import listening, taken_by_others


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
@pytest.mark.parametrize("netlink", [True, False], ids=["netlink", "proc"])
def test_loopback_and_wildcard_listeners_are_found(
    family, address: str, shown: str, netlink: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listeners, "_netlink_works", netlink)
    with listener(family, address) as s:
        port = s.getsockname()[1]
        found = listening({port, 1})
        assert [x.address for x in found[port]] == [shown]
        assert os.readlink(f"/proc/self/fd/{s.fileno()}") == f"socket:[{found[port][0].inode}]"
        assert found[port][0].uid == os.getuid()
        assert 1 not in found


def test_other_addresses_and_sockets_that_do_not_listen_are_not() -> None:
    with socket.socket() as other, socket.socket() as bound:
        other.bind(("127.0.0.2", 0))  # the loopback net, but not 127.0.0.1
        other.listen()
        bound.bind(("127.0.0.1", 0))  # bound, not listening
        ports = {other.getsockname()[1], bound.getsockname()[1]}
        assert listening(ports) == {}


def test_without_netlink_and_proc_a_connect_tells(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listeners, "_netlink_works", False)
    monkeypatch.setattr(listeners, "PROC", str(tmp_path))
    with listener(socket.AF_INET, "127.0.0.1") as s:
        port = s.getsockname()[1]
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            free = closed.getsockname()[1]
        assert listening({port, free}) == {port: [listeners.Listener(port, "127.0.0.1", 0)]}


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
