"""The event loop (keelrun/loop.py): timers, fds and signals, for real."""

from __future__ import annotations

import os
import selectors
import signal
import time

import pytest

from keelrun.loop import Loop

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def loop():
    lp = Loop()
    # A run that never stops fails the test after 5 s instead of hanging it.
    lp.call_later(5.0, lambda: (_ for _ in ()).throw(AssertionError("loop ran too long")))
    yield lp
    lp.close()


def test_timers_fire_in_deadline_order(loop: Loop) -> None:
    fired: list[str] = []
    now = time.monotonic()
    loop.call_at(now + 0.03, lambda: fired.append("c"))
    loop.call_at(now + 0.01, lambda: fired.append("a"))
    loop.call_later(0.02, lambda: fired.append("b"))
    loop.call_at(now + 0.01, lambda: fired.append("a2"))  # same deadline: insertion order
    loop.call_at(now + 0.04, loop.stop)
    loop.run()
    assert fired == ["a", "a2", "b", "c"]
    assert time.monotonic() - now >= 0.04


def test_cancelled_timer_does_not_fire(loop: Loop) -> None:
    fired: list[str] = []
    t = loop.call_later(0.01, lambda: fired.append("cancelled"))
    loop.call_later(0.02, lambda: fired.append("kept"))
    loop.call_later(0.03, loop.stop)
    t.cancel()
    loop.run()
    assert fired == ["kept"]


def test_timer_added_from_a_callback_and_after_iteration(loop: Loop) -> None:
    fired: list[str] = []
    turns: list[int] = []
    loop.after_iteration(lambda: turns.append(1))
    loop.call_later(0, lambda: loop.call_later(0.01, lambda: (fired.append("x"), loop.stop())))
    loop.run()
    assert fired == ["x"] and len(turns) >= 2


def test_readable_fd_calls_back(loop: Loop) -> None:
    r, w = os.pipe()
    got: list[bytes] = []

    def on_read(mask: int) -> None:
        assert mask & selectors.EVENT_READ
        got.append(os.read(r, 100))
        loop.remove(r)
        loop.stop()

    loop.add_reader(r, on_read)
    loop.call_later(0.01, lambda: os.write(w, b"hello"))
    loop.run()
    assert got == [b"hello"]
    os.close(r)
    os.close(w)


def test_set_events_registers_modifies_and_removes(loop: Loop) -> None:
    r, w = os.pipe()
    seen: list[int] = []

    def on_write(mask: int) -> None:
        seen.append(mask)
        loop.set_events(w, 0, on_write)  # unregister: no busy loop on an always-writable fd
        loop.call_later(0.01, loop.stop)

    loop.set_events(w, selectors.EVENT_WRITE, on_write)
    loop.run()
    assert seen == [selectors.EVENT_WRITE]
    loop.remove(w)  # removing twice is harmless
    os.close(r)
    os.close(w)


def test_signal_sent_to_self_arrives_as_a_loop_callback(loop: Loop) -> None:
    got: list[int] = []
    before = signal.getsignal(signal.SIGUSR1)

    def on_usr1(signum: int) -> None:
        got.append(signum)
        loop.stop()

    with loop.signals({signal.SIGUSR1: on_usr1}):
        loop.call_later(0.01, lambda: os.kill(os.getpid(), signal.SIGUSR1))
        loop.run()
    assert got == [signal.SIGUSR1]
    assert signal.getsignal(signal.SIGUSR1) == before, "previous handler restored"


def test_repeated_signals_count_but_sigchld_floods_collapse(loop: Loop) -> None:
    got: list[int] = []
    handlers = {s: got.append for s in (signal.SIGUSR2, signal.SIGCHLD)}
    with loop.signals(handlers):
        for sig in (signal.SIGUSR2, signal.SIGCHLD, signal.SIGCHLD, signal.SIGUSR2):
            os.kill(os.getpid(), sig)  # all four wait in the wakeup pipe: one batch
        loop.call_later(0.05, loop.stop)
        loop.run()
    assert got.count(signal.SIGUSR2) == 2
    assert got.count(signal.SIGCHLD) == 1


def test_a_deadline_past_what_epoll_can_wait_for_is_no_crash() -> None:
    """A health interval or grace of months: epoll takes at most ~24.8 days."""
    loop = Loop()
    fired: list[str] = []
    loop.call_later(30_000_000, lambda: fired.append("far"))
    r, w = os.pipe()
    loop.add_reader(r, lambda mask: (fired.append("near"), loop.stop()))
    os.write(w, b"x")
    loop.run()  # the far timer's wait is clamped, not an OverflowError
    assert fired == ["near"]
    loop.remove(r)
    os.close(r)
    os.close(w)
    loop.close()
