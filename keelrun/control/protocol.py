"""The wire format shared by server and client: newline-delimited JSON, version 1.

Request:  {"v": 1, "cmd": "scale", "args": {...}}\\n
Reply:    {"ok": true, "result": ...}\\n
      or  {"ok": false, "error": "...", "kind": "input"|"runtime"}\\n
`logs` replies with one {"log": {...}} line per log line, then {"ok": true, ...}
(without --follow) or keeps sending log lines (with it).
"""

from __future__ import annotations

import socket
import struct

VERSION = 1
MAX_REQUEST = 64 * 1024  # bytes in one request line
MAX_CONNECTIONS = 64
IDLE_TIMEOUT = 10.0  # a connection that sends no full request in this time is closed
MAX_PENDING_REPLY = 4 * 1024 * 1024  # a follower that falls this far behind is dropped

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def peer_pid(sock: socket.socket) -> int | None:
    """The pid of the process at the other end of a Unix socket (SO_PEERCRED)."""
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    except (OSError, AttributeError):
        return None
    pid, _uid, _gid = _UCRED.unpack(creds)
    return int(pid) or None


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end of a Unix socket (SO_PEERCRED)."""
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    except (OSError, AttributeError):
        return None
    _pid, uid, _gid = _UCRED.unpack(creds)
    return int(uid)
