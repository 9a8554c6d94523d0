"""Reading the children's pipes and routing whole lines (the log hot path).

Per read, never per line: one readv into a reused buffer, one framing cut at
the last newline, one formatting call, one ring append; the line count comes
for free from the formatting. Under back-pressure every pipe is unregistered
until the output has drained.

A tty instance's pty master is one more stream (README "Terminals"), named
"stdout" (the app's stdout and stderr are the same terminal): its reader is
`terminal.read_pty` instead of os.readv and its framer the Terminal's
TtyFramer (\r\n ends a line, escapes removed when asked, the pending line
kept for attach). EIO, the master's end of file, ends it as EOF ends a pipe.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from keelrun.logformat import LogFormatter
from keelrun.loop import Loop
from keelrun.supervisor.instance import Instance, Stream, close_stream
from keelrun.supervisor.writer import Writer

if TYPE_CHECKING:
    from keelrun.supervisor.kernel import Child
    from keelrun.supervisor.terminal import Terminal

# Reads stay small on purpose: a 64 KiB block is formatted and written while
# it is still in the CPU cache. Growing the children's pipes to 1 MiB to get
# fewer, larger reads made the same flood ~35% slower here.
READ_SIZE = 64 * 1024

Listener = Callable[[Instance, str, float, bytes], None]


class LogPipes:
    def __init__(
        self,
        loop: Loop,
        formatter: LogFormatter,
        writer: Writer,
    ) -> None:
        self.loop = loop
        self.formatter = formatter
        self.writer = writer
        # Readiness: called only for instances waiting for a log line.
        self.on_lines: Callable[[Instance, bytes], None] = lambda inst, block: None
        self.listeners: list[Listener] = []  # `keelrun logs -f` followers
        self.streams: set[Stream] = set()
        self.paused = False
        self._buf = bytearray(READ_SIZE)
        self._view = memoryview(self._buf)
        self._bufs = [self._view]
        # Escapes are removed from tty lines in JSON mode and when stdout is not a terminal.
        self.strip_escapes = False

    def add(self, inst: Instance, fd: int, name: str) -> Stream:
        stream = Stream(fd, inst, name)
        inst.streams.append(stream)
        self.streams.add(stream)
        if self.paused:
            stream.paused = True
        else:
            self.loop.add_reader(fd, self._callback(stream))
        return stream

    def add_child(self, inst: Instance, child: Child) -> None:
        """The output of the instance's new process: its pipes, or its pty (tty types)."""
        if inst.ptype.tty:
            self.add_tty(inst, child.stdout)
        else:
            self.add(inst, child.stdout, "stdout")
            self.add(inst, child.stderr, "stderr")

    def add_tty(self, inst: Instance, master: int) -> Terminal:
        """The pty master of a tty instance: its Terminal (``inst.terminal``) and one
        stream, read and framed as a pty."""
        from keelrun.supervisor.terminal import Terminal, read_pty

        terminal = inst.terminal = Terminal(self.loop, master, strip=self.strip_escapes)
        stream = self.add(inst, master, "stdout")
        stream.framer = terminal.framer
        stream.reader = read_pty
        return terminal

    def _callback(self, stream: Stream) -> Callable[[int], None]:
        def on_readable(mask: int) -> None:
            if not stream.paused:
                self.read(stream)

        return on_readable

    def read(self, stream: Stream) -> int:
        """Read once and route the whole lines: bytes read, 0 at EOF, -1 if nothing yet."""
        if stream.closed:
            return 0
        try:
            n = stream.reader(stream.fd, self._bufs)
        except BlockingIOError:
            return -1
        except OSError:
            n = 0
        if not n:
            tail = stream.framer.finish()
            if tail:
                self.emit(stream, tail)
            self.close(stream)
            return 0
        block = stream.framer.feed(self._view[:n].tobytes())
        if block:
            self.emit(stream, block)
        return n

    def emit(self, stream: Stream, block: bytes) -> None:
        inst = stream.instance
        if inst.ptype.quiet:  # -q: kept for `keelrun logs`, not printed
            lines = block.count(b"\n")
        else:
            out, lines = self.formatter.block(inst.name, stream.name, block)
            self.writer.queue_all(out)
        now = time.time()
        inst.ring.append(now, stream.name, block, lines)
        if self.listeners:
            for listener in tuple(self.listeners):  # a follower may leave meanwhile
                listener(inst, stream.name, now, block)
        if inst.log_ready is not None:
            self.on_lines(inst, block)

    def drain(self, inst: Instance) -> None:
        """Read what a process left in its pipes (bounded: a grandchild may keep writing)."""
        for stream in list(inst.streams):
            for _ in range(64):
                if self.read(stream) <= 0:
                    break

    def close(self, stream: Stream) -> None:
        if stream.closed:
            return
        self.loop.remove(stream.fd)
        close_stream(stream)
        self.streams.discard(stream)
        if stream in stream.instance.streams:
            stream.instance.streams.remove(stream)

    def close_all(self, inst: Instance) -> None:
        for stream in list(inst.streams):
            self.close(stream)

    def set_paused(self, paused: bool) -> None:
        """Back-pressure from the output: stop or resume reading every child."""
        self.paused = paused
        for stream in self.streams:
            if paused and not stream.paused:
                self.loop.remove(stream.fd)
                stream.paused = True
            elif not paused and stream.paused:
                stream.paused = False
                self.loop.add_reader(stream.fd, self._callback(stream))
