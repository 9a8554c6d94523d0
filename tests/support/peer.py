"""`SocketPeer`: a real control connection reduced to what an attach session needs.

keelrun/supervisor/attach.py is written against its `Peer` interface; the
control server's `Connection` is to offer the same (see the module's
docstring). Until it does, the tty test server (ttyserver.py) serves
attach requests through this one: a non-blocking Unix socket in the loop,
output queued and a client more than MAX_PENDING_REPLY behind dropped, as
the Connection does for `logs -f` followers.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
from collections.abc import Callable

from keelrun.control.protocol import MAX_PENDING_REPLY, MAX_REQUEST
from keelrun.loop import Loop

_UCRED = struct.Struct("3i")


class SocketPeer:
    def __init__(
        self,
        loop: Loop,
        sock: socket.socket,
        on_request: Callable[[SocketPeer, bytes], None] | None = None,
    ) -> None:
        """``on_request`` gets the first line; without it every byte goes to on_data."""
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        sock.setblocking(False)
        self.on_data: Callable[[bytes], None] | None = None
        self.on_close: Callable[[], None] | None = None
        self.closed = False
        self._on_request: Callable[[SocketPeer, bytes], None] | None = on_request
        self._inbuf = b""
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._closing = False
        self._reading = True
        self._events = 0
        self._update()

    @property
    def peer_pid(self) -> int:
        creds = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
        return _UCRED.unpack(creds)[0]

    def _update(self) -> None:
        if self.closed:
            return
        want = (selectors.EVENT_READ if self._reading and not self._closing else 0) | (
            selectors.EVENT_WRITE if self._out else 0
        )
        if want != self._events:
            self._events = want
            self.loop.set_events(self.fd, want, self._on_event)

    def _on_event(self, mask: int) -> None:
        if mask & selectors.EVENT_WRITE:
            self._flush()
        if mask & selectors.EVENT_READ and not self.closed:
            self._read()

    def _read(self) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        if self._on_request is not None:
            self._inbuf += data
            nl = self._inbuf.find(b"\n")
            if nl < 0:
                if len(self._inbuf) > MAX_REQUEST:
                    self.close()
                return
            line, data = self._inbuf[:nl], self._inbuf[nl + 1 :]
            handler, self._on_request, self._inbuf = self._on_request, None, b""
            handler(self, line)
        # Bytes after the request line belong to the session it started.
        if data and self.on_data is not None and not self.closed:
            self.on_data(data)

    # -- the Peer interface ---------------------------------------------------
    def send_raw(self, data: bytes) -> None:
        if self.closed or self._closing or not data:
            return
        self._out.append(data)
        self._out_bytes += len(data)
        if self._out_bytes > MAX_PENDING_REPLY:
            self.close()  # a client that does not read must not make us buffer without end
            return
        self._flush()

    def finish_raw(self, data: bytes) -> None:
        self.send_raw(data)
        self._closing = True
        self._flush()

    def set_reading(self, on: bool) -> None:
        self._reading = on
        self._update()

    def _flush(self) -> None:
        while self._out and not self.closed:
            try:
                n = self.sock.send(self._out[0])
            except BlockingIOError:
                break
            except OSError:
                self.close()
                return
            self._out_bytes -= n
            if n == len(self._out[0]):
                self._out.pop(0)
            else:
                self._out[0] = self._out[0][n:]
        if self._closing and not self._out:
            self.close()
            return
        self._update()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.loop.remove(self.fd)
        with contextlib.suppress(OSError):
            self.sock.close()
        if self.on_close is not None:
            callback, self.on_close = self.on_close, None
            callback()
