"""Writing keelrun's output: batched, non-blocking, with back-pressure.

keelrun writes through a private non-blocking handle on stdout with writev.
When more than HIGH_WATER bytes are pending it tells the supervisor to stop
reading children until the consumer catches up, so memory stays bounded; EPIPE
(the consumer is gone) is reported once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import time
from collections.abc import Callable

from keelrun.logformat import Buffer

HIGH_WATER = 4 * 1024 * 1024  # pending output above this pauses the readers
LOW_WATER = 1024 * 1024
F_SETPIPE_SZ = 1031
STDOUT_PIPE_SIZE = 1048576


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


class Writer:
    """Queues output and writes it with writev; reports back-pressure and EPIPE."""

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

    def queue(self, data: Buffer) -> None:
        """Queue one buffer; it is written at the end of the loop iteration (``flush``)."""
        if self.broken or not data:
            return
        self._pending.append(data)
        self._pending_bytes += len(data)
        if not self._paused and self._pending_bytes > HIGH_WATER:
            self._paused = True
            self._on_pressure(True)

    def queue_all(self, parts: list[Buffer]) -> None:
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
