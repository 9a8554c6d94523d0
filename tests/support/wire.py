"""Raw control-socket exchanges: JSON request lines out, reply lines back.

Standard library only: the foreign-uid test runs this file as a script with a
system python (``python wire.py SOCKET CMD``).
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
from typing import Any


def request_line(cmd: str, args: dict[str, Any] | None = None) -> bytes:
    return (json.dumps({"v": 1, "cmd": cmd, "args": args or {}}) + "\n").encode()


def recv_replies(s: socket.socket, *, first_only: bool = False) -> bytes:
    """What the server sends until it closes the connection (a reset counts as a
    close) or, with ``first_only``, until the first reply line is complete."""
    buf = b""
    while not (first_only and b"\n" in buf):
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        buf += chunk
    return buf


def read_replies(s: socket.socket) -> list[dict[str, Any]]:
    """Every reply line until the server closes, parsed."""
    return [json.loads(line) for line in recv_replies(s).split(b"\n") if line.strip()]


def raw_request(path: str, data: bytes, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Send bytes on a fresh connection; every reply line until the server closes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(data)
        return read_replies(s)


def _main(path: str, cmd: str) -> None:
    """One request; prints the replies as JSON. A refused send still reads the replies."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(path)
        with contextlib.suppress(OSError):
            s.sendall(request_line(cmd))
        print(json.dumps({"closed": True, "replies": read_replies(s)}))


if __name__ == "__main__":
    _main(*sys.argv[1:3])
