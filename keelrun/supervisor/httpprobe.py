"""The http probe: one GET on 127.0.0.1:PORT with a non-blocking socket in the loop.

No thread and no blocking call: connect, send and every read happen when the
selector says the socket is ready, and a timer ends a try that takes longer
than the probe timeout. A server that refuses, resets, stalls, answers a byte
at a time or answers garbage costs one socket and one timer, and never delays
the loop (so never the log path).
"""

from __future__ import annotations

import errno
import os
import re
import selectors
import socket
from urllib.parse import quote

from keelrun.errors import one_line
from keelrun.loop import Loop, Timer
from keelrun.supervisor.probeapi import ProbeResult, ResultCallback

HOST = "127.0.0.1"
MAX_HEAD = 64 * 1024  # a status line (and any 1xx interim answers) must fit in this
READ_SIZE = 16 * 1024
_STATUS = re.compile(rb"HTTP/[0-9](?:\.[0-9])? ([1-9][0-9]{2})(?:[ \t][^\r\n]*)?\r?\n")
_END_OF_HEAD = re.compile(rb"\r?\n\r?\n")


class NotHttp(ValueError):
    """The answer does not start with an HTTP status line."""


def final_status(head: bytes) -> int | None:
    """The status code of the first non-1xx answer in ``head``, None while incomplete.

    Raises NotHttp when the bytes cannot be the start of an HTTP/1.x answer.
    """
    while True:
        match = _STATUS.match(head)
        if match is None:
            line_end = head.find(b"\n")
            if line_end >= 0 or not b"HTTP/".startswith(head[:5]):
                first = head[: line_end if line_end >= 0 else 80]
                raise NotHttp(one_line(first[:80].decode("latin-1")))
            return None
        code = int(match.group(1))
        if code >= 200:
            return code
        # 1xx (103 Early Hints, ...): skip its header block, the real answer follows.
        end = _END_OF_HEAD.search(head, match.start())
        if end is None:
            return None
        head = head[end.end() :]


def request_bytes(path: str, port: int) -> bytes:
    """A minimal HTTP/1.0 GET (so no chunked answer and the server closes afterwards)."""
    target = quote(path, safe="/?&=%:@!$'()*+,;~-._[]#")
    return (
        f"GET {target} HTTP/1.0\r\nHost: {HOST}:{port}\r\n"
        "User-Agent: keelrun-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    ).encode("ascii")


def _why(err: int) -> str:
    if err == errno.ECONNREFUSED:
        return "connection refused"
    if err == errno.ECONNRESET:
        return "connection reset"
    return os.strerror(err).lower()


class HttpProbe:
    """GET PATH on 127.0.0.1:port; 2xx and 3xx succeed. With ``path`` None it only connects
    (the port probe where /proc cannot tell who listens)."""

    def __init__(self, loop: Loop, port: int, path: str | None, timeout: float) -> None:
        self.loop = loop
        self.port = port
        self.timeout = timeout
        self.request = request_bytes(path, port) if path is not None else None
        self._sock: socket.socket | None = None
        self._cb: ResultCallback | None = None
        self._timer: Timer | None = None
        self._pending = b""
        self._head = bytearray()
        self._connected = False

    @property
    def running(self) -> bool:
        return self._cb is not None

    def start(self, on_result: ResultCallback) -> None:
        assert self._cb is None, "one try at a time"
        self._cb = on_result
        self._head = bytearray()
        self._connected = False
        self._pending = self.request or b""
        self._timer = self.loop.call_later(self.timeout, self._timed_out)
        try:
            sock = socket.socket(
                socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
            )
        except OSError as e:
            self._later(f"cannot open a socket: {e.strerror or e}")
            return
        self._sock = sock
        err = sock.connect_ex((HOST, self.port))
        if err not in (0, errno.EINPROGRESS):
            self._later(_why(err))
            return
        self.loop.set_events(sock.fileno(), selectors.EVENT_WRITE, self._on_event)

    def cancel(self) -> None:
        self._close()
        self._cb = None

    # -- inside a try ---------------------------------------------------
    def _later(self, detail: str) -> None:
        """A failure found inside start(): reported from the loop, never from start()."""
        self._close()
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(0, lambda: self._finish(False, detail))

    def _on_event(self, mask: int) -> None:
        sock = self._sock
        if sock is None:
            return
        if not self._connected:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._finish(False, _why(err))
                return
            self._connected = True
            if self.request is None:
                self._finish(True, f"port {self.port} accepts connections")
                return
        if self._pending:
            self._send(sock)
        elif mask & selectors.EVENT_READ:
            self._read(sock)

    def _send(self, sock: socket.socket) -> None:
        try:
            sent = sock.send(self._pending)
        except BlockingIOError:
            return
        except OSError as e:
            self._finish(False, _why(e.errno or 0))
            return
        self._pending = self._pending[sent:]
        if not self._pending:
            self.loop.set_events(sock.fileno(), selectors.EVENT_READ, self._on_event)

    def _read(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(READ_SIZE)
        except BlockingIOError:
            return
        except OSError as e:
            self._finish(False, _why(e.errno or 0))
            return
        if not data:
            what = "an incomplete answer" if self._head else "no answer"
            self._finish(False, f"connection closed with {what}")
            return
        self._head += data
        try:
            code = final_status(bytes(self._head))
        except NotHttp as e:
            self._finish(False, f"not an HTTP answer: {e}")
            return
        if code is not None:
            self._finish(200 <= code < 400, f"HTTP {code}")
        elif len(self._head) > MAX_HEAD:
            self._finish(False, f"no HTTP status line in the first {MAX_HEAD} bytes")

    def _timed_out(self) -> None:
        self._timer = None
        if self._cb is None:
            return
        if not self._connected:
            self._finish(False, f"connect timed out after {self.timeout:g}s")
        else:
            self._finish(False, f"no answer within {self.timeout:g}s")

    def _close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        sock, self._sock = self._sock, None
        if sock is not None:
            self.loop.remove(sock.fileno())
            # Read what already arrived, so that closing sends a FIN rather than a
            # reset into a server still writing its body.
            try:
                for _ in range(4):
                    if not sock.recv(READ_SIZE):
                        break
            except OSError:
                pass
            sock.close()

    def _finish(self, ok: bool, detail: str) -> None:
        self._close()
        cb, self._cb = self._cb, None
        if cb is not None:
            cb(ProbeResult(ok, detail))
