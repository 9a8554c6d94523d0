"""The log hot path: read children's pipes, frame lines, format, write.

Work is done per chunk, never per line: a read of up to 256 KiB is split at
its last newline, and the prefix is put before every line with one
`bytes.replace` (text) or one `json.dumps` call (JSON). The writer owns a
private non-blocking handle on stdout and tells the supervisor to stop
reading children when too much is pending (back-pressure), so memory stays
bounded whatever the children write.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import time
from collections.abc import Callable

MAX_LINE = 1024 * 1024  # longer lines are emitted in pieces of this size
HIGH_WATER = 4 * 1024 * 1024  # pending output above this pauses the readers
LOW_WATER = 1024 * 1024
F_SETPIPE_SZ = 1031
STDOUT_PIPE_SIZE = 1048576

Buffer = bytes | memoryview

COLORS = (36, 33, 32, 35, 34, 31, 96, 93, 92, 95, 94, 91)
RESET = b"\x1b[0m"
SYSTEM_NAME = "keelrun"


class Clock:
    """Formatted timestamps, recomputed at most once per second (text) / ms (JSON)."""

    __slots__ = ("_iso", "_iso_ms", "_sec", "_text")

    def __init__(self) -> None:
        self._sec = -1
        self._text = b""
        self._iso_ms = -1
        self._iso = ""

    def text(self) -> bytes:
        now = time.time()
        sec = int(now)
        if sec != self._sec:
            self._sec = sec
            self._text = time.strftime("%H:%M:%S", time.localtime(sec)).encode()
        return self._text

    def iso(self) -> str:
        now = time.time()
        ms = int(now * 1000)
        if ms != self._iso_ms:
            self._iso_ms = ms
            self._iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + (
                ".%03dZ" % (ms % 1000)
            )
        return self._iso


class Formatter:
    """Turns a block of complete lines (bytes ending in b"\\n") into output bytes."""

    def __init__(
        self,
        *,
        json_mode: bool,
        color: bool,
        timestamp: bool,
        prefix: bool,
    ) -> None:
        self.json_mode = json_mode
        self.color = color
        self.timestamp = timestamp and prefix
        self.prefix = prefix
        self.clock = Clock()
        self._width = len(SYSTEM_NAME)
        self._colors: dict[str, int] = {}
        self._name_cache: dict[str, bytes] = {}

    def set_names(self, names: list[str]) -> None:
        """Pad names to the longest of the formation (keelrun's own name included)."""
        width = max([len(SYSTEM_NAME), *map(len, names)])
        if width != self._width:
            self._width = width
            self._name_cache.clear()

    def set_type_order(self, types: list[str]) -> None:
        for t in types:
            if t not in self._colors:
                self._colors[t] = COLORS[len(self._colors) % len(COLORS)]
        self._name_cache.clear()

    def _name_part(self, name: str) -> bytes:
        cached = self._name_cache.get(name)
        if cached is None:
            padded = name.ljust(self._width).encode()
            if self.color:
                kind = name.rsplit(".", 1)[0]
                code = 1 if name == SYSTEM_NAME else self._colors.get(kind, 37)
                cached = b"\x1b[%dm" % code + padded + b" | " + RESET
            else:
                cached = padded + b" | "
            self._name_cache[name] = cached
        return cached

    def line_prefix(self, name: str) -> bytes:
        if not self.prefix:
            return b""
        part = self._name_part(name)
        if self.timestamp:
            ts = self.clock.text()
            if self.color:
                return b"\x1b[2m" + ts + RESET + b" " + part
            return ts + b" " + part
        return part

    def block(self, name: str, stream: str, data: bytes) -> tuple[list[Buffer], int]:
        """Format complete lines (``data`` ends with a newline): (buffers, line count)."""
        if self.json_mode:
            return self.json_block(name, stream, data)
        prefix = self.line_prefix(name)
        if not prefix:
            return [data], data.count(b"\n")
        # One copy: every newline gains the prefix after it, so the result ends
        # with one prefix too many, which a view leaves out (slicing bytes would
        # copy again); the growth in length counts the lines.
        body = data.replace(b"\n", b"\n" + prefix)
        lines = (len(body) - len(data)) // len(prefix)
        return [prefix, memoryview(body)[: -len(prefix)]], lines

    def json_block(self, name: str, stream: str, data: bytes) -> tuple[list[Buffer], int]:
        # One C-level dumps for the whole block: the item separator closes one
        # record and opens the next, so no Python code runs per line.
        head = '{"ts": "%s", "proc": %s, "stream": "%s", "msg": ' % (
            self.clock.iso(),
            json.dumps(name),
            stream,
        )
        lines = data[:-1].decode("utf-8", "replace").split("\n")
        body = json.dumps(lines, ensure_ascii=False, separators=("}\n" + head, ": ")).encode()
        # The list's brackets are dropped with a view: slicing would copy the block twice.
        return [head.encode(), memoryview(body)[1:-1], b"}\n"], len(lines)

    def event(self, text: str, record: dict[str, object]) -> bytes:
        """One of keelrun's own events."""
        if self.json_mode:
            return (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode()
        return self.line_prefix(SYSTEM_NAME) + text.encode() + b"\n"


class LineFramer:
    """Keeps the unfinished tail of a stream and yields blocks of whole lines."""

    __slots__ = ("partial",)

    def __init__(self) -> None:
        self.partial = b""

    def feed(self, data: bytes) -> bytes:
        """Return the complete lines (ending in b"\\n") now available, maybe b""."""
        if self.partial:
            data = self.partial + data
        cut = data.rfind(b"\n") + 1
        if cut == len(data):
            self.partial = b""
            complete = data
        else:
            self.partial = data[cut:]
            complete = data[:cut]
            if len(self.partial) > MAX_LINE:
                complete += self._pieces()
        if len(complete) > MAX_LINE:
            complete = split_long_lines(complete)
        return complete

    def _pieces(self) -> bytes:
        # Only a tail strictly longer than MAX_LINE is surely a piece of a longer
        # line: a tail of exactly MAX_LINE may still be followed by its newline.
        out = []
        tail = self.partial
        while len(tail) > MAX_LINE:
            out.append(tail[:MAX_LINE] + b"\n")
            tail = tail[MAX_LINE:]
        self.partial = tail
        return b"".join(out)

    def finish(self) -> bytes:
        """At EOF: the final line without a newline is still a line."""
        tail, self.partial = self.partial, b""
        return tail + b"\n" if tail else b""


def split_long_lines(block: bytes) -> bytes:
    """Cut lines longer than MAX_LINE into MAX_LINE pieces (rare path)."""
    out = []
    for line in block[:-1].split(b"\n"):
        while len(line) > MAX_LINE:
            out.append(line[:MAX_LINE])
            line = line[MAX_LINE:]
        out.append(line)
    return b"\n".join(out) + b"\n"


def open_private_stdout() -> tuple[int, bool]:
    """A handle on fd 1 that can be non-blocking without touching anyone else's.

    Setting O_NONBLOCK on fd 1 itself would change the open file description
    shared with the shell (a terminal) and break it. Re-opening the pipe or
    terminal through /proc gives keelrun a description of its own. Regular
    files never block; sockets and other cases keep a blocking fd 1.
    Returns (fd, non_blocking).
    """
    try:
        mode = os.fstat(1).st_mode
    except OSError:
        return -1, False
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
        try:
            fd = os.open("/proc/self/fd/1", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            pass
        else:
            if stat.S_ISFIFO(mode):
                # A bigger pipe to the consumer: fewer wake-ups per megabyte.
                with contextlib.suppress(OSError):
                    fcntl.fcntl(fd, F_SETPIPE_SZ, STDOUT_PIPE_SIZE)
            return fd, True
    fd = os.dup(1)
    os.set_inheritable(fd, False)
    return fd, False


class Output:
    """Batches output and writes it with writev; reports back-pressure and EPIPE."""

    def __init__(
        self,
        on_pressure: Callable[[bool], None],
        on_broken: Callable[[], None],
        register_writable: Callable[[int, bool], None],
    ) -> None:
        self.fd, self.non_blocking = open_private_stdout()
        self._pending: list[Buffer] = []
        self._pending_bytes = 0
        self._paused = False
        self._waiting = False
        self.broken = self.fd < 0
        self._on_pressure = on_pressure
        self._on_broken = on_broken
        self._register_writable = register_writable

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    def write(self, data: Buffer) -> None:
        if self.broken or not data:
            return
        self._pending.append(data)
        self._pending_bytes += len(data)
        if not self._paused and self._pending_bytes > HIGH_WATER:
            self._paused = True
            self._on_pressure(True)

    def write_all(self, parts: list[Buffer]) -> None:
        if self.broken:
            return
        self._pending += parts
        self._pending_bytes += sum(map(len, parts))
        if not self._paused and self._pending_bytes > HIGH_WATER:
            self._paused = True
            self._on_pressure(True)

    def flush(self) -> None:
        """Write what the consumer takes now; never blocks on a non-blocking handle."""
        pending = self._pending
        while pending and not self.broken:
            try:
                n = os.writev(self.fd, pending[:512])
            except BlockingIOError:
                self._wait_writable(True)
                return
            except InterruptedError:
                continue
            except OSError as e:
                self._fail(e)
                return
            self._pending_bytes -= n
            while n:
                first = pending[0]
                if n >= len(first):
                    n -= len(first)
                    pending.pop(0)
                else:
                    pending[0] = first[n:]
                    n = 0
        if self._waiting and not pending:
            self._wait_writable(False)
        if self._paused and self._pending_bytes <= LOW_WATER:
            self._paused = False
            self._on_pressure(False)

    def on_writable(self, mask: int) -> None:
        self.flush()

    def _wait_writable(self, on: bool) -> None:
        if on != self._waiting:
            self._waiting = on
            self._register_writable(self.fd, on)

    def _fail(self, e: OSError) -> None:
        # EPIPE, EIO (terminal gone), anything else: the consumer is gone for good.
        self.broken = True
        self._pending.clear()
        self._pending_bytes = 0
        if self._waiting:
            self._wait_writable(False)
        self._on_broken()

    def drain(self, deadline: float) -> None:
        """At exit: write everything pending, waiting for the consumer until deadline."""
        import select

        while self._pending and not self.broken:
            self.flush()
            if not self._pending:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                break
            select.select([], [self.fd], [], left)
