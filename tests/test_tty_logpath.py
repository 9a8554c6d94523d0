"""A tty instance's output through keelrun's log path (LogPipes, Formatter, Output),
attached or not: tests/support/ttyserver.py with real tty children."""

from __future__ import annotations

import json
import select
import socket
import time
from pathlib import Path

from support.runner import Keelrun, RunSet
from support.ttys import Server, child

N = 100_000


def _flood_lines(n: int) -> list[bytes]:
    return [f"line {i:07d} ".encode() + b"x" * 40 for i in range(n)]


def _instance_lines(server: Server, name: str = "web.1") -> list[bytes]:
    prefix = name.encode().ljust(7) + b" | "
    return [line[len(prefix) :] for line in server.run.lines if line.startswith(prefix)]


def test_a_flood_arrives_complete_and_in_order(keelrun: RunSet[Keelrun], tmp_path: Path) -> None:
    server = Server(keelrun, tmp_path, **{"web.1": child("flood", str(N))})
    server.line(r"^keelrun +\| exited web\.1 status 0$", timeout=60)
    assert server.run.wait_exit() == 0
    assert _instance_lines(server) == _flood_lines(N)


def test_a_flood_while_attached_reaches_the_output_and_the_client(
    keelrun: RunSet[Keelrun], tmp_path: Path
) -> None:
    server = Server(keelrun, tmp_path, **{"web.1": child("flood", str(N), "--on-input")})
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(server.sock))
    request = {"v": 1, "cmd": "attach", "args": {"name": "web.1", "rows": 24, "cols": 80}}
    sock.sendall((json.dumps(request) + "\n").encode() + b'{"in": "go\\r"}\n')
    received = bytearray()
    deadline = time.monotonic() + 60
    while not received.endswith(b"[keelrun: web.1 exited]\r\n"):
        left = deadline - time.monotonic()
        assert left > 0 and select.select([sock], [], [], left)[0], bytes(received[-300:])
        data = sock.recv(1 << 20)
        assert data, bytes(received[-300:])
        received += data
    sock.close()
    assert server.run.wait_exit() == 0
    reply, raw = bytes(received).split(b"\n", 1)
    assert json.loads(reply)["ok"] is True
    expected = _flood_lines(N)
    # The client got the terminal's bytes: the echo of "go", then every line.
    assert raw == b"go\r\n" + b"".join(line + b"\r\n" for line in expected) + (
        b"\r\n[keelrun: web.1 exited]\r\n"
    )
    # keelrun's output has every line too, while someone was attached.
    assert _instance_lines(server) == [b"go", *expected]


def test_escapes_removed_from_lines_when_asked(keelrun: RunSet[Keelrun], tmp_path: Path) -> None:
    script = "print('\\x1b[1;31mERROR\\x1b[0m disk \\x1b]0;title\\x07full')"
    server = Server(keelrun, tmp_path, "--strip", **{"web.1": f'python3 -c "{script}"'})
    server.line(r"^keelrun +\| exited web\.1 status 0$")
    assert server.run.wait_exit() == 0
    assert _instance_lines(server) == [b"ERROR disk full"]


def test_escapes_kept_for_a_terminal(keelrun: RunSet[Keelrun], tmp_path: Path) -> None:
    script = "print('\\x1b[1;31mERROR\\x1b[0m')"
    server = Server(keelrun, tmp_path, **{"web.1": f'python3 -c "{script}"'})
    server.line(r"^keelrun +\| exited web\.1 status 0$")
    assert server.run.wait_exit() == 0
    assert _instance_lines(server) == [b"\x1b[1;31mERROR\x1b[0m"]
