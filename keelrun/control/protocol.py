"""The wire format shared by server and client: newline-delimited JSON, version 1.

Request:  {"v": 1, "cmd": "scale", "args": {...}}\\n
Reply:    {"ok": true, "result": ...}\\n
      or  {"ok": false, "error": "...", "kind": "input"|"runtime"}\\n
`logs` replies with one {"log": {...}} line per log line, then {"ok": true, ...}
(without --follow) or keeps sending log lines (with it).
"""

from __future__ import annotations

import os
from pathlib import Path

VERSION = 1
MAX_REQUEST = 64 * 1024  # bytes in one request line
MAX_CONNECTIONS = 64
IDLE_TIMEOUT = 10.0  # a connection that sends no full request in this time is closed
MAX_PENDING_REPLY = 4 * 1024 * 1024  # a follower that falls this far behind is dropped
SUN_PATH_MAX = 107  # bytes of a Unix socket path on Linux, without the NUL

COMMANDS = ("ping", "ps", "scale", "stop", "restart", "signal", "logs", "reload")


def socket_address(path: Path) -> str:
    """The path to bind/connect: ``path`` itself, or a short stand-in when it is too long.

    A Unix socket path is limited to 107 bytes; a longer one is replaced by a
    name derived from it in a private directory, which client and server
    compute the same way.
    """
    raw = os.fsencode(str(path))
    if len(raw) <= SUN_PATH_MAX:
        return str(path)
    import hashlib  # only for long paths: both cost import time on the start path
    import tempfile

    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    digest = hashlib.sha256(raw).hexdigest()[:24]
    return str(Path(base) / f"keelrun-{os.getuid()}" / f"{digest}.sock")


def private_dir_for(address: str) -> None:
    """Create the private directory of a stand-in address (mode 0700, ours)."""
    parent = Path(address).parent
    if parent.name.startswith("keelrun-"):
        parent.mkdir(mode=0o700, exist_ok=True)
        st = parent.stat()
        if st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise PermissionError(f"{parent} is not a private directory of this user")
