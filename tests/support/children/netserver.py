"""A tiny TCP/HTTP server with misbehaviours, for the probe tests.

usage: netserver.py PORT MODE [ARG]
Prints "listening PORT" once it listens (``--grandchild``: a grandchild does
the listening, as a forking server's worker would). Modes, per connection:
  http CODE      read the request, answer "HTTP/1.0 CODE" and a small body
  slow           answer 200 one byte every 20 ms
  garbage        answer "hello there" and close
  partial        answer "HTTP/1.1 20" and close
  hang           accept and never answer
  reset          accept and close with a reset (SO_LINGER 0)
  hints          answer "103 Early Hints" first, then CODE (ARG, default 204)
  listen         listen, never accept
  log            like "http 200", and print each request line (for probe counts)
  file PATH      200 while PATH exists, else 503
"""

import os
import signal
import socket
import struct
import sys
import time

signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
port, mode = int(sys.argv[1]), sys.argv[2]
arg = sys.argv[3] if len(sys.argv) > 3 and not sys.argv[3].startswith("--") else ""
family = socket.AF_INET6 if "--ipv6" in sys.argv else socket.AF_INET

if "--grandchild" in sys.argv and os.fork() != 0:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    while True:  # the parent stays, holding no socket
        signal.pause()

sock = socket.socket(family)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("::" if family == socket.AF_INET6 else "127.0.0.1", port))
sock.listen(64)
os.write(1, f"listening {port} pid {os.getpid()}\n".encode())


def read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def answer(code: str) -> bytes:
    return f"HTTP/1.0 {code} Whatever\r\nContent-Length: 2\r\n\r\nok".encode()


held = []
while True:
    if mode == "listen":
        signal.pause()
    conn, _ = sock.accept()
    if mode == "hang":
        held.append(conn)
        continue
    if mode == "reset":
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
        continue
    request = read_request(conn)
    try:
        if mode == "file":
            conn.sendall(answer("200" if os.path.exists(arg) else "503"))
        elif mode in ("http", "log"):
            if mode == "log":
                os.write(1, request.split(b"\r\n", 1)[0] + b"\n")
            conn.sendall(answer(arg or "200"))
        elif mode == "slow":
            for byte in answer("200"):
                conn.sendall(bytes([byte]))
                time.sleep(0.02)
        elif mode == "garbage":
            conn.sendall(b"hello there\r\n")
        elif mode == "partial":
            conn.sendall(b"HTTP/1.1 20")
        elif mode == "hints":
            conn.sendall(
                b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" + answer(arg or "204")
            )
    except OSError:
        pass
    conn.close()
