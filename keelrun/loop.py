"""A single-threaded event loop on `selectors`: fds, timers and signals.

Signals arrive as bytes on a wakeup pipe (`signal.set_wakeup_fd`), so the
Python-level handlers do nothing and all work happens in the loop. The next
timer deadline is the select timeout: idle, the loop sleeps in epoll_wait and
uses no CPU.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import selectors
import signal
import time
from collections.abc import Callable, Iterator

FdCallback = Callable[[int], None]  # receives the selector event mask


MAX_SLEEP = 86400.0  # seconds; a later deadline is reached by waking up once a day


class Timer:
    __slots__ = ("callback", "cancelled", "deadline")

    def __init__(self, deadline: float, callback: Callable[[], None]) -> None:
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def cancel(timer: Timer | None) -> None:
    """Cancel ``timer`` if there is one; returns None, to clear the attribute holding it."""
    if timer is not None:
        timer.cancel()


def _noop_handler(signum: int, frame: object) -> None:
    """The wakeup fd does the work; the handler exists so the signal is caught."""


class Loop:
    """``clock`` is the monotonic time source: tests of the supervisor pass a fake one."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.time = clock
        self.selector = selectors.DefaultSelector()
        self._timers: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._signal_handlers: dict[int, Callable[[int], None]] = {}
        self._after_iteration: list[Callable[[], None]] = []
        self._idle: list[Timer] = []
        self._running = False
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.selector.register(self._wake_r, selectors.EVENT_READ, self._on_wakeup)

    # -- fds --------------------------------------------------------------
    def add_reader(self, fd: int, callback: FdCallback) -> None:
        self.selector.register(fd, selectors.EVENT_READ, callback)

    def set_events(self, fd: int, events: int, callback: FdCallback) -> None:
        """Register, modify or (events=0) unregister fd."""
        try:
            key = self.selector.get_key(fd)
        except KeyError:
            if events:
                self.selector.register(fd, events, callback)
            return
        if not events:
            self.selector.unregister(fd)
        elif key.events != events or key.data is not callback:
            self.selector.modify(fd, events, callback)

    def remove(self, fd: int) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(fd)

    # -- timers -----------------------------------------------------------
    def call_at(self, deadline: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(deadline, callback)
        heapq.heappush(self._timers, (deadline, next(self._seq), timer))
        return timer

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return self.call_at(self.time() + delay, callback)

    def when_idle(self, callback: Callable[[], None], at_most: float) -> None:
        """Run callback once no fd is ready, or after ``at_most`` seconds whatever happens."""
        timer = self.call_later(at_most, callback)
        self._idle.append(timer)

    def after_iteration(self, callback: Callable[[], None]) -> None:
        """Run callback after each batch of events (output is flushed there)."""
        self._after_iteration.append(callback)

    # -- signals ----------------------------------------------------------
    @contextlib.contextmanager
    def signals(self, handlers: dict[int, Callable[[int], None]]) -> Iterator[None]:
        """Route the given signals into the loop; restore the old handlers afterwards."""
        old_fd = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        previous = {}
        try:
            for signum, handler in handlers.items():
                previous[signum] = signal.signal(signum, _noop_handler)
                self._signal_handlers[signum] = handler
            yield
        finally:
            for signum, old in previous.items():
                signal.signal(signum, old)
                self._signal_handlers.pop(signum, None)
            signal.set_wakeup_fd(old_fd)

    def _on_wakeup(self, mask: int) -> None:
        try:
            data = os.read(self._wake_r, 4096)
        except BlockingIOError:
            return
        # Deliver each signal once per batch, in arrival order: SIGCHLD floods
        # collapse into one reap pass, while a second SIGTERM still counts.
        seen_chld = False
        for signum in data:
            if signum == signal.SIGCHLD:
                if seen_chld:
                    continue
                seen_chld = True
            handler = self._signal_handlers.get(signum)
            if handler is not None:
                handler(signum)

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"\0")

    # -- running ----------------------------------------------------------
    def stop(self) -> None:
        self._running = False

    def run(self) -> None:
        self._running = True
        select = self.selector.select
        timers = self._timers
        after = self._after_iteration
        while self._running:
            timeout: float | None = None
            while timers and timers[0][2].cancelled:
                heapq.heappop(timers)
            if timers:
                # At most a day: epoll's timeout is an int of milliseconds (24.8 days).
                timeout = min(max(0.0, timers[0][0] - self.time()), MAX_SLEEP)
            if self._idle:
                self._idle = [t for t in self._idle if not t.cancelled]
                if self._idle:
                    timeout = 0.0
            events = select(timeout)
            for key, mask in events:
                key.data(mask)
            if self._idle and not events:
                idle, self._idle = self._idle, []
                for timer in idle:
                    if not timer.cancelled:
                        timer.cancelled = True
                        timer.callback()
            if timers:
                self.run_due()
            for callback in after:
                callback()

    def run_due(self) -> None:
        """Run every timer whose deadline has passed (tests step a fake clock with it)."""
        timers = self._timers
        now = self.time()
        while timers and (timers[0][0] <= now or timers[0][2].cancelled):
            _, _, timer = heapq.heappop(timers)
            if not timer.cancelled:
                timer.cancelled = True
                timer.callback()

    def close(self) -> None:
        self.selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
