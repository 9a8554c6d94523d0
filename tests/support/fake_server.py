"""A socket that pretends to be keelrun: what a user could plant in a shared directory.

Standard library only (it runs under a system python as another uid):
``python fake_server.py PATH [MODE]`` binds PATH (mode 0777, so any user may
connect), prints ``listening``, then for every connection one JSON line
``{"received": N}`` with the bytes the client sent, after answering a request
line: with made-up `ps` rows, or (MODE ``garbage``) a line that is not JSON,
or (MODE ``reset``) by closing with the request unread, which resets the
connection as a crashed server's exit would.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys

ROWS = [
    {
        "name": "planted.1",
        "type": "planted",
        "pid": 4242,
        "state": "running",
        "uptime_s": 1.0,
        "restarts": 0,
        "exit_status": None,
        "cpu_percent": 0.0,
        "rss_bytes": 0,
        "port": 1,
        "command": "made up by the fake server",
    }
]


def serve(path: str, mode: str) -> None:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    os.chmod(path, 0o777)
    server.listen(8)
    print("listening", flush=True)
    while True:
        conn, _ = server.accept()
        with conn:
            conn.settimeout(5)
            data = b""
            with contextlib.suppress(OSError):
                while b"\n" not in data and not (mode == "reset" and data):
                    chunk = conn.recv(1 if mode == "reset" else 65536)
                    if not chunk:
                        break
                    data += chunk
            if b"\n" in data:
                reply = {"ok": True, "result": ROWS}
                line = b"<html>not json" if mode == "garbage" else json.dumps(reply).encode()
                with contextlib.suppress(OSError):
                    conn.sendall(line + b"\n")
        print(json.dumps({"received": len(data)}), flush=True)


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "rows")
