"""The port probe: a listening socket on PORT that belongs to the instance's process tree."""

from __future__ import annotations

import os
import socket
import sys

import pytest
from support.loopkit import Kit
from support.ports import free_port

from keelrun import listeners
from keelrun.listeners import (
    Listener,
    Owner,
    check_port,
    loopback_listeners,
    parse_table,
    tree,
)
from keelrun.supervisor.probeapi import ChildRoutes, ProbeResult
from keelrun.supervisor.probes import PortProbe, ProbeTarget

pytestmark = pytest.mark.timeout(30)


def sleeper(kit: Kit):  # an instance that listens on nothing
    return kit.spawn(
        [sys.executable, "-c", "import signal; print('up', flush=True); signal.pause()"]
    )


def probe(kit: Kit, pid: int, port: int, before: frozenset[int] | None = None) -> ProbeResult:
    results: list[ProbeResult] = []
    target = ProbeTarget(kit.loop, pid, port, "/", {}, 2.0, ChildRoutes(), before)
    PortProbe(target).start(results.append)
    assert not results
    kit.run_until(lambda: results, 5, "the port probe's result")
    return results[0]


def listening(kit: Kit, port: int, *args: str):
    child = kit.python("netserver.py", str(port), "listen", *args)
    kit.run_until(lambda: child.saw("listening"), 10, "the server listening")
    return child


def test_the_instance_itself_listens(kit: Kit) -> None:
    port = free_port()
    inst = listening(kit, port)
    assert probe(kit, inst.pid, port) == ProbeResult(
        True, f"port {port} is listening (pid {inst.pid})"
    )


def test_a_grandchild_listens(kit: Kit) -> None:
    port = free_port()
    inst = listening(kit, port, "--grandchild")
    result = probe(kit, inst.pid, port)
    assert result.ok
    worker = int(next(line for line in inst.lines if "listening" in line).split()[-1])
    assert worker != inst.pid and f"(pid {worker})" in result.detail


def test_a_port_held_by_another_process_is_not_ready(kit: Kit) -> None:
    port = free_port()
    listening(kit, port)  # someone else's server
    inst = sleeper(kit)
    kit.run_until(lambda: inst.saw("up"), 10, "the instance up")
    result = probe(kit, inst.pid, port)
    assert result == ProbeResult(
        False, f"port {port} is held by a process that is not this instance's"
    )


def test_a_port_held_before_the_instance_started_is_not_its(kit: Kit) -> None:
    port = free_port()
    listening(kit, port)  # someone else's server, there first
    inst = sleeper(kit)
    before = (loopback_listeners([port]) or {})[port]
    assert before
    kit.run_until(lambda: inst.saw("up"), 10, "the instance up")
    result = probe(kit, inst.pid, port, before)
    assert result == ProbeResult(
        False, f"port {port} is held by a process that is not this instance's"
    )


def test_a_listener_outside_the_tree_that_came_after_the_start_counts(kit: Kit) -> None:
    """A proxy the instance asked for (`docker run -p PORT:80`) is not its child."""
    port = free_port()
    inst = sleeper(kit)
    before = (loopback_listeners([port]) or {})[port]
    assert before == frozenset()
    kit.run_until(lambda: inst.saw("up"), 10, "the instance up")
    assert not probe(kit, inst.pid, port, before).ok  # nothing yet
    listening(kit, port)  # not of the instance's tree
    assert probe(kit, inst.pid, port, before) == ProbeResult(
        True, f"port {port} is listening (opened after this instance started)"
    )


def test_nothing_listening(kit: Kit) -> None:
    port = free_port()
    inst = sleeper(kit)
    assert probe(kit, inst.pid, port) == ProbeResult(False, f"nothing listens on port {port}")


def test_ipv6_wildcard_counts(kit: Kit) -> None:
    port = free_port()
    inst = listening(kit, port, "--ipv6")
    assert probe(kit, inst.pid, port).ok


def test_loopback_alias_is_not_127_0_0_1(kit: Kit) -> None:
    port = free_port()
    code = (
        "import socket, signal\n"
        f"s = socket.socket(); s.bind(('127.0.0.2', {port})); s.listen()\n"
        "print('listening', flush=True); signal.pause()\n"
    )
    inst = kit.spawn([sys.executable, "-c", code])
    kit.run_until(lambda: inst.saw("listening"), 10, "listening on 127.0.0.2")
    assert check_port(port, inst.pid).owner is Owner.NOBODY


def test_without_proc_a_connect_decides(kit: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listeners, "table", lambda ports: None)  # as on macOS
    port = free_port()
    inst = sleeper(kit)
    assert probe(kit, inst.pid, port) == ProbeResult(False, "connection refused")
    listening(kit, port)
    assert probe(kit, inst.pid, port) == ProbeResult(True, f"port {port} accepts connections")


def test_tree_walks_down_from_the_root(kit: Kit) -> None:
    port = free_port()
    inst = listening(kit, port, "--grandchild")
    worker = int(next(line for line in inst.lines if "listening" in line).split()[-1])
    found = list(tree(inst.pid))
    assert found[0] == inst.pid and worker in found


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
def test_netlink_and_proc_agree(family: int, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(family) as s:
        s.bind(("127.0.0.1" if family == socket.AF_INET else "::", 0))
        s.listen()
        port = s.getsockname()[1]
        fast = listeners.table({port})
        assert fast and len(fast) == 1
        assert listeners._proc_table({port}) == fast
        monkeypatch.setattr(listeners, "_netlink_works", False)
        assert listeners.table({port}) == fast
        assert check_port(port, os.getpid()).owner is Owner.TREE


# -- the pure parser ------------------------------------------------------

HEADER = b"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid ...\n"


def hex_words(packed: bytes) -> bytes:
    """An address as /proc/net/tcp{,6} prints it: 32-bit words in host order, upper hex."""
    words = (packed[i : i + 4] for i in range(0, len(packed), 4))
    return b"".join(b"%08X" % int.from_bytes(w, sys.byteorder) for w in words)


def row(addr: bytes, port: int, state: bytes, inode: int, uid: int = 1000) -> bytes:
    return (
        b"   0: %s:%04X 00000000:0000 %s 00000000:00000000 00:00000000 00000000  %d  0 %d 1 0\n"
        % (addr, port, state, uid, inode)
    )


LOOP4 = hex_words(bytes([127, 0, 0, 1]))
ANY4 = hex_words(bytes(4))
OTHER4 = hex_words(bytes([10, 0, 0, 7]))
MAPPED6 = hex_words(bytes(10) + b"\xff\xff" + bytes([127, 0, 0, 1]))
LOOP6 = hex_words(bytes(15) + b"\x01")


def test_parse_table_matches_port_address_and_state() -> None:
    lines = [
        HEADER,
        row(LOOP4, 5000, b"0A", 11),
        row(ANY4, 5000, b"0A", 12, uid=0),
        row(OTHER4, 5000, b"0A", 13),  # another interface: not 127.0.0.1
        row(LOOP4, 5001, b"0A", 14),  # another port
        row(LOOP4, 5000, b"01", 15),  # connections start here: reading stops
        row(LOOP4, 5000, b"0A", 16),
    ]
    assert list(parse_table(lines, {5000})) == [
        Listener(5000, "127.0.0.1", 11, 1000),
        Listener(5000, "0.0.0.0", 12, 0),
    ]


def test_parse_table_reads_ipv6_and_skips_pending_connections_of_old_kernels() -> None:
    lines = [HEADER, row(MAPPED6, 80, b"0A", 1), row(LOOP6, 80, b"03", 2), row(LOOP6, 80, b"0A", 3)]
    found = list(parse_table(lines, {80}))
    assert [(x.address, x.inode) for x in found] == [("127.0.0.1", 1), ("[::1]", 3)]
    # [::1] takes the port, but 127.0.0.1:80 does not reach it: not ready by it.
    assert [x.reached_by_loopback for x in found] == [True, False]


def test_proc_addresses_read_back_as_packed_bytes() -> None:
    assert listeners.proc_address(LOOP4) == bytes([127, 0, 0, 1])
    assert (b"0100007F" if sys.byteorder == "little" else b"7F000001") == LOOP4
