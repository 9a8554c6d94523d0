"""`keelrun attach NAME`: this terminal joined to a tty instance, until Ctrl-].

The terminal goes to raw mode, so every key (Ctrl-C, Ctrl-D, arrows) reaches
the app; one select loop relays stdin to the socket and the socket to stdout.
The terminal is restored on every way out: the detach key, keelrun closing
the connection, SIGTERM, SIGHUP, SIGINT or SIGQUIT sent to this process, an
exception. Signals are turned into bytes on a pipe (set_wakeup_fd) so that
the loop, not a handler, decides; SIGWINCH becomes a resize message. The wire
protocol is described in keelrun/supervisor/attach.py.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import signal
import socket
import struct
import sys
import termios
import tty

from keelrun.errors import InputError, RuntimeFailure

DETACH = 0x1D  # Ctrl-]
MAX_OUTBOUND = 64 * 1024  # keystrokes not yet sent before stdin stops being read
REPLY_TIMEOUT = 30.0
_ENDING = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT)
_UCRED = struct.Struct("3i")
_WINSIZE = struct.Struct("HHHH")


def attach_command(app_root: str | None, sock_path: str | None, name: str) -> int:
    if not os.isatty(0):
        raise InputError("keelrun attach", "stdin is not a terminal")
    from keelrun.control.client import Client

    client = Client(app_root, sock_path)
    sock = client.connect()
    try:
        return attach(sock, name, str(client.path))
    except SessionClosed as e:
        # keelrun ends a session when the instance's process ends, and when it stops.
        try:
            stopping = client.call("ping", {}).get("stopping", False)
        except RuntimeFailure:
            raise e from None
        if stopping:
            raise e from None
        raise RuntimeFailure(f"{name}: the session has ended; keelrun runs on") from None


class SessionClosed(RuntimeFailure):
    """keelrun closed the connection (the instance ended, or keelrun stopped)."""


def attach(sock: socket.socket, name: str, where: str) -> int:
    """Attach over a socket Client.connect checked (its server is this user's or
    root's: keystrokes go nowhere else); the exit status (0 after Ctrl-])."""
    try:
        early, name = _request(sock, name, where)
        status = relay(sock, early)
    finally:
        sock.close()
    if status == 0:
        sys.stderr.write(f"\n[detached from {name}]\n")
    elif status < 0:
        raise SessionClosed(f"{name}: keelrun closed the connection")
    else:
        sys.stderr.write(f"\n[detached from {name}: {signal.Signals(status - 128).name}]\n")
    sys.stderr.flush()
    return max(status, 0)


def _request(sock: socket.socket, name: str, where: str) -> tuple[bytes, str]:
    """Send the attach request; return the bytes that came after a good reply, and the
    instance's name (NAME may have been its type)."""
    rows, cols = terminal_size()
    args = {"name": name, "rows": rows, "cols": cols, "tty": os.ttyname(0)}
    sock.sendall((json.dumps({"v": 1, "cmd": "attach", "args": args}) + "\n").encode())
    sock.settimeout(REPLY_TIMEOUT)
    buf = b""
    while b"\n" not in buf:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            raise RuntimeFailure(f"no reply from keelrun on {where}") from None
        if not data or len(buf) > 65536:
            raise RuntimeFailure(f"keelrun on {where} closed the connection without a reply")
        buf += data
    line, rest = buf.split(b"\n", 1)
    try:
        reply = json.loads(line)
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        raise RuntimeFailure(f"keelrun on {where} sent a malformed reply")
    if not reply.get("ok"):
        message = str(reply.get("error", "attach refused"))
        if reply.get("kind") == "input":
            raise InputError("", message)
        raise RuntimeFailure(message)
    result = reply.get("result")
    attached = result.get("name") if isinstance(result, dict) else None
    return rest, attached if isinstance(attached, str) and attached else name


def terminal_size() -> tuple[int, int]:
    """(rows, cols) of this terminal; 24x80 when it does not know."""
    with contextlib.suppress(OSError):
        raw = fcntl.ioctl(0, termios.TIOCGWINSZ, bytes(_WINSIZE.size))
        rows, cols, _, _ = _WINSIZE.unpack(raw)
        if rows and cols:
            return rows, cols
    return 24, 80


def _noop(signum: int, frame: object) -> None:
    """The wakeup pipe carries the signal to the loop."""


def relay(sock: socket.socket, early: bytes) -> int:
    """Raw mode and the relay loop: 0 detached, -1 keelrun closed, 128+N a signal."""
    saved = termios.tcgetattr(0)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    old_wakeup = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    old: dict[int, object] = {}
    try:
        for sig in (*_ENDING, signal.SIGWINCH):
            old[sig] = signal.signal(sig, _noop)
        tty.setraw(0, termios.TCSANOW)  # TCSANOW: keys typed ahead are not flushed
        return _Relay(sock, wake_r).run(early)
    finally:
        with contextlib.suppress(termios.error, OSError):
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        for sig, handler in old.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        signal.set_wakeup_fd(old_wakeup)
        os.close(wake_r)
        os.close(wake_w)


class _Relay:
    def __init__(self, sock: socket.socket, wake_r: int) -> None:
        self.sock = sock
        self.wake_r = wake_r
        self.out = bytearray()  # messages for keelrun not yet sent

    def run(self, early: bytes) -> int:
        write_all(1, early)
        self.sock.setblocking(False)
        sock, wake_r = self.sock, self.wake_r
        while True:
            readers: list[int | socket.socket] = [sock, wake_r]
            if len(self.out) < MAX_OUTBOUND:
                readers.append(0)
            readable, writable, _ = select.select(readers, [sock] if self.out else [], [])
            if wake_r in readable:
                status = self._signals()
                if status:
                    return status
            if sock in readable:
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    data = None
                except OSError:
                    data = b""
                if data == b"":
                    return -1
                if data:
                    write_all(1, data)
            if 0 in readable:
                try:
                    keys = os.read(0, 4096)
                except OSError:  # EIO: the terminal is gone
                    keys = b""
                cut = keys.find(DETACH)
                if cut >= 0 or not keys:
                    self._message({"in": keys[: max(cut, 0)]})
                    self._send_before_leaving()
                    return 0
                self._message({"in": keys})
            if self.out and (sock in writable or len(self.out) < MAX_OUTBOUND):
                self._send()

    def _signals(self) -> int:
        for signum in os.read(self.wake_r, 256):
            if signum == signal.SIGWINCH:
                self._message({"resize": list(terminal_size())})
            elif signum in _ENDING:
                self._send_before_leaving()
                return 128 + signum
        return 0

    def _message(self, msg: dict[str, object]) -> None:
        keys = msg.get("in")
        if isinstance(keys, bytes):
            if not keys:
                return
            msg = {"in": keys.decode("utf-8", "surrogateescape")}
        self.out += (json.dumps(msg) + "\n").encode()

    def _send(self) -> None:
        try:
            n = self.sock.send(self.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.out.clear()  # keelrun is gone: the recv side reports it
            return
        del self.out[:n]

    def _send_before_leaving(self) -> None:
        """Keys typed before the detach key still reach the app (bounded wait)."""
        if not self.out:
            return
        with contextlib.suppress(OSError):
            self.sock.settimeout(1.0)
            self.sock.sendall(self.out)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            select.select([], [fd], [])
        except BrokenPipeError:
            raise
        except OSError as e:
            raise RuntimeFailure(f"stdout: {e.strerror or e}") from None
