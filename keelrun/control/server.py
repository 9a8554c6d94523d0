"""The control socket's server side, inside the supervisor's loop.

No thread: the listening socket and every connection are non-blocking fds
of the one loop. A request is one JSON line; a malformed, oversized, slow or
unknown request gets an error reply or a closed connection and never blocks
the loop. The peer's uid is checked with SO_PEERCRED before anything is read.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import selectors
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from keelrun.control.listen import listen
from keelrun.control.protocol import (
    IDLE_TIMEOUT,
    MAX_CONNECTIONS,
    MAX_PENDING_REPLY,
    MAX_REQUEST,
    VERSION,
    peer_pid,
    peer_uid,
)
from keelrun.errors import RequestError
from keelrun.loop import Loop, Timer

Reply = dict[str, Any]
# A handler gets the request's args and the connection (for streaming replies);
# it returns a reply, or None when it keeps the connection open (logs -f).
Handler = Callable[[dict[str, Any], "Connection"], Reply | None]

# What an oversized request may still send after its error reply, and for how
# long, before its connection is closed anyway.
DISCARD_BYTES = 16 * 1024 * 1024
DISCARD_TIME = 5.0


class Connection:
    def __init__(self, server: ControlServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.fd = sock.fileno()
        self.inbuf = b""
        self.out: list[bytes] = []
        self.out_bytes = 0
        self.closing = False  # close once the output is flushed
        self.closed = False
        self.on_close: Callable[[], None] | None = None
        # A session after the request (attach): gets every byte that follows the
        # request line; the client's end of file then closes the connection.
        self.on_data: Callable[[bytes], None] | None = None
        self.idle: Timer | None = server.loop.call_later(IDLE_TIMEOUT, self._idle_timeout)
        self._events = 0
        self.busy = False  # a request was taken
        self.read_closed = False  # the peer shut down its sending side
        self.reading = True  # set_reading(False): back-pressure on what the client sends
        # After the reply to an oversized request: the rest of it is read and thrown
        # away (bounded), so that closing does not reset the reply away (RST).
        self.discard = 0
        self.write_shut = False

    # -- reading ----------------------------------------------------------
    def on_event(self, mask: int) -> None:
        if self.closed:
            return
        if mask & selectors.EVENT_WRITE:
            self._flush()
        if mask & selectors.EVENT_READ and not self.closed:
            self._on_readable()

    def take_request(self) -> None:
        """Read what the peer has sent so far (the server makes room with this)."""
        if not self.closed and not self.busy:
            self._on_readable()

    def _on_readable(self) -> None:
        try:
            data = self.sock.recv(MAX_REQUEST + 1)
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        if self.discard:
            self.discard -= len(data)
            if not data or self.discard <= 0:
                self.close()
            return
        if not data:
            if self.busy and self.on_data is None:
                # Half-closed after its request: the reply is still owed.
                self.read_closed = True
                self._flush()
            else:
                self.close()
            return
        if self.busy:
            if self.on_data is not None:
                self.on_data(data)
            return  # one request per connection; input after it is ignored
        self.inbuf += data
        nl = self.inbuf.find(b"\n")
        if nl < 0:
            if len(self.inbuf) > MAX_REQUEST:
                self._too_long()
            return
        line, rest, self.inbuf = self.inbuf[:nl], self.inbuf[nl + 1 :], b""
        if len(line) > MAX_REQUEST:
            self._too_long()
            return
        if self.idle is not None:
            self.idle.cancel()
            self.idle = None
        self.busy = True
        self.server.handle(self, line)
        # Keystrokes that came in the same read as an attach request are the session's.
        if rest and self.on_data is not None and not self.closed:
            self.on_data(rest)

    def _too_long(self) -> None:
        """Reply, then read the rest of the request and throw it away until the
        client's end of file (bounded in bytes and time), then close."""
        self.inbuf = b""
        self.discard = DISCARD_BYTES
        if self.idle is not None:
            self.idle.cancel()
        self.idle = self.server.loop.call_later(DISCARD_TIME, self.close)
        self.send(
            {"ok": False, "error": f"request longer than {MAX_REQUEST} bytes", "kind": "input"}
        )

    def _idle_timeout(self) -> None:
        self.idle = None
        self.fail(f"no request within {IDLE_TIMEOUT:g}s", "input")

    # -- writing ----------------------------------------------------------
    def send(self, obj: Reply) -> None:
        self.send_raw((json.dumps(obj, ensure_ascii=True) + "\n").encode())

    def send_raw(self, data: bytes) -> None:
        if self.closed or self.closing:
            return
        self.out.append(data)
        self.out_bytes += len(data)
        if self.out_bytes > MAX_PENDING_REPLY:
            # A follower that does not read must not make keelrun buffer without end.
            self.out.clear()
            self.out_bytes = 0
            self.close()
            return
        self._flush()

    def finish(self, obj: Reply) -> None:
        """Send the last reply and close once it is written."""
        self.send(obj)
        self.closing = True
        self._flush()

    def fail(self, message: str, kind: str) -> None:
        self.finish({"ok": False, "error": message, "kind": kind})

    def finish_raw(self, data: bytes) -> None:
        """Send the last bytes and close once they are written."""
        self.send_raw(data)
        self.closing = True
        self._flush()

    def set_reading(self, on: bool) -> None:
        """Stop or resume reading what the client sends (its keystrokes wait in its socket)."""
        self.reading = on
        self._flush()

    @property
    def peer_pid(self) -> int | None:
        """The pid of the client process (SO_PEERCRED), to name it to others."""
        return peer_pid(self.sock)

    def _flush(self) -> None:
        while self.out and not self.closed:
            try:
                n = self.sock.send(self.out[0])
            except BlockingIOError:
                break
            except OSError:
                self.close()
                return
            self.out_bytes -= n
            if n == len(self.out[0]):
                self.out.pop(0)
            else:
                self.out[0] = self.out[0][n:]
        if self.closed:
            return
        if not self.out and self.closing:
            self.close()
            return
        if not self.out and self.discard and not self.write_shut:
            # The reply is out: say so (FIN), then keep reading until the client's EOF.
            self.write_shut = True
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)
        reading = self.reading and not self.read_closed
        want = (selectors.EVENT_READ if reading else 0) | (selectors.EVENT_WRITE if self.out else 0)
        if want != self._events:
            self._events = want
            self.server.loop.set_events(self.fd, want, self.on_event)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.idle is not None:
            self.idle.cancel()
            self.idle = None
        self.server.loop.remove(self.fd)
        self.server.connections.pop(self, None)
        if self.on_close is not None:
            callback, self.on_close = self.on_close, None
            callback()
        with contextlib.suppress(OSError):
            self.sock.close()


class ControlServer:
    def __init__(
        self,
        loop: Loop,
        path: Path,
        handlers: Callable[[], dict[str, Handler]],
        *,
        fallback: bool = False,
    ) -> None:
        self.loop = loop
        self.path = path
        # fallback: `path` is the default socket, which moves to a stand-in when the
        # app root cannot be written; a socket the user named must be created there.
        self.fallback = fallback
        self.address = path  # where the socket file is, once bound
        self._make_handlers = handlers
        self._handlers: dict[str, Handler] | None = None
        self.on_internal_error: Callable[[str, Exception], None] | None = None
        self._reserve_fd = -1  # held back so that an fd is free to refuse a client
        self._resume: Timer | None = None
        # In accept order: the oldest first, for _make_room.
        self.connections: dict[Connection, None] = {}
        self.sock: socket.socket | None = None
        self._inode: tuple[int, int] | None = None
        self.moved: str | None = None  # why the socket is not at ``path``

    # -- lifecycle --------------------------------------------------------
    def bind(self) -> None:
        """Listen on the socket (or its stand-in: keelrun/control/listen.py)."""
        self.sock, self.address, self.moved = listen(self.path, fallback=self.fallback)
        st = os.stat(self.address)
        self._inode = (st.st_dev, st.st_ino)
        self.loop.add_reader(self.sock.fileno(), self._on_accept)
        self._reserve_fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)

    def close(self) -> None:
        for conn in list(self.connections):
            conn.close()
        if self._resume is not None:
            self._resume.cancel()
        if self._reserve_fd >= 0:
            os.close(self._reserve_fd)
            self._reserve_fd = -1
        if self.sock is not None:
            self.loop.remove(self.sock.fileno())
            self.sock.close()
            self.sock = None
            # Remove the file only if it is still ours (not a newer keelrun's).
            with contextlib.suppress(OSError):
                st = os.stat(self.address)
                if (st.st_dev, st.st_ino) == self._inode:
                    os.unlink(self.address)

    # -- connections ------------------------------------------------------
    def _on_accept(self, mask: int) -> None:
        assert self.sock is not None
        for _ in range(64):
            try:
                sock, _addr = self.sock.accept()
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._out_of_fds()
                return
            sock.setblocking(False)
            if len(self.connections) >= MAX_CONNECTIONS and not self._make_room():
                _refuse(sock, "too many connections")
                continue
            uid = peer_uid(sock)
            if uid is None or uid not in (os.getuid(), 0):
                _refuse(sock, f"permission denied: uid {uid} may not control this keelrun")
                continue
            conn = Connection(self, sock)
            self.connections[conn] = None
            conn._flush()  # registers for reading

    def _make_room(self) -> bool:
        """At capacity, close the connection that has waited longest without a request.

        As web servers do against slowloris: clients that connect and never send
        a whole request cannot lock the socket out. A request already sent is
        read and answered first, not thrown away; connections that are busy
        (`logs -f`, `attach`, a reply being written) are never closed for room.
        """
        for conn in list(self.connections):
            if conn.busy or conn.closed:
                continue
            conn.take_request()
            if not conn.busy and not conn.closed:
                conn.close()  # no reply: it never asked for anything
            if len(self.connections) < MAX_CONNECTIONS:
                return True
        return len(self.connections) < MAX_CONNECTIONS

    def _out_of_fds(self) -> None:
        """Refuse the waiting client with the reserve fd instead of spinning on it.

        The listening socket stays readable while a client waits, so returning
        without accepting would make the level-triggered loop spin.
        """
        assert self.sock is not None
        if self._reserve_fd >= 0:
            os.close(self._reserve_fd)
            self._reserve_fd = -1
            with contextlib.suppress(OSError):
                sock, _ = self.sock.accept()
                _refuse(sock, "keelrun is out of file descriptors")
            with contextlib.suppress(OSError):
                self._reserve_fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            if self._reserve_fd >= 0:
                return
        # No fd to spare even for that: stop listening for a moment.
        self.loop.remove(self.sock.fileno())
        self._resume = self.loop.call_later(0.2, self._resume_accepting)

    def _resume_accepting(self) -> None:
        self._resume = None
        if self.sock is not None:
            self.loop.add_reader(self.sock.fileno(), self._on_accept)
            if self._reserve_fd < 0:
                with contextlib.suppress(OSError):
                    self._reserve_fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)

    def handle(self, conn: Connection, line: bytes) -> None:
        try:
            request = json.loads(line)
        except (ValueError, RecursionError):
            conn.fail("malformed request: not JSON", "input")
            return
        if not isinstance(request, dict):
            conn.fail("malformed request: expected a JSON object", "input")
            return
        version = request.get("v", VERSION)
        if version != VERSION:
            conn.fail(f"unsupported protocol version {version!r} (this keelrun speaks 1)", "input")
            return
        cmd = request.get("cmd")
        args = request.get("args", {})
        if self._handlers is None:
            self._handlers = self._make_handlers()
        handler = self._handlers.get(cmd) if isinstance(cmd, str) else None
        if handler is None:
            conn.fail(f"unknown command {cmd!r}", "input")
            return
        if not isinstance(args, dict):
            conn.fail("malformed request: args must be an object", "input")
            return
        try:
            reply = handler(args, conn)
        except RequestError as e:
            error: Reply = {"ok": False, "error": str(e), "kind": e.kind}
            if len(e.lines) > 1:
                error["errors"] = e.lines
            conn.finish(error)
            return
        except Exception as e:  # a request must never take the supervisor down
            if self.on_internal_error is not None:
                self.on_internal_error(cmd, e)
            conn.fail(f"internal error in {cmd}: {type(e).__name__}: {e}", "runtime")
            return
        if reply is not None:
            conn.finish(reply)


def _refuse(sock: socket.socket, message: str) -> None:
    with contextlib.suppress(OSError):
        sock.send((json.dumps({"ok": False, "error": message, "kind": "runtime"}) + "\n").encode())
    sock.close()
