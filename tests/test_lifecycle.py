"""Pure lifecycle rules (keelrun/supervisor/lifecycle.py): no processes needed."""

from __future__ import annotations

import signal

import pytest

from keelrun.supervisor.exitpolicy import restarts
from keelrun.supervisor.lifecycle import (
    RestartTracker,
    State,
    describe_exit,
    exit_code,
)


def exited(code: int) -> int:
    """A wait status as waitpid reports it for exit(code)."""
    return code << 8


def killed(sig: int, core: bool = False) -> int:
    return sig | (0x80 if core else 0)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (exited(0), 0),
        (exited(1), 1),
        (exited(255), 255),
        (killed(signal.SIGKILL), 137),
        (killed(signal.SIGTERM), 143),
        (killed(signal.SIGINT), 130),
        (killed(signal.SIGSEGV, core=True), 139),
    ],
)
def test_exit_code_is_shell_style(status: int, code: int) -> None:
    assert exit_code(status) == code


def test_describe_exit() -> None:
    assert describe_exit(exited(3)) == "exited with status 3"
    assert "SIGKILL" in describe_exit(killed(signal.SIGKILL))
    assert "SIGSEGV" in describe_exit(killed(signal.SIGSEGV, core=True))


@pytest.mark.parametrize(
    ("policy", "status", "restart"),
    [
        ("on-failure", exited(0), False),
        ("on-failure", exited(1), True),
        ("on-failure", killed(signal.SIGKILL), True),
        ("on-failure", killed(signal.SIGTERM), True),
        ("always", exited(0), True),
        ("always", exited(2), True),
        ("always", killed(signal.SIGKILL), True),
        ("never", exited(0), False),
        ("never", exited(2), False),
        ("never", killed(signal.SIGKILL), False),
    ],
)
def test_restart_table(policy, status: int, restart: bool) -> None:
    assert restarts(policy, exit_code(status)) is restart


def test_backoff_doubles_from_1_to_a_30s_cap() -> None:
    tracker = RestartTracker(max_restarts=100)
    delays = []
    for _ in range(8):
        tracker.on_exit(uptime=0.1, failed=True)
        delays.append(tracker.next_delay())
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30]


def test_backoff_and_failures_reset_after_10s_of_uptime() -> None:
    tracker = RestartTracker(max_restarts=2)
    for _ in range(2):
        tracker.on_exit(uptime=1.0, failed=True)
        tracker.next_delay()
    assert tracker.failures == 2
    tracker.on_exit(uptime=9.9, failed=True)  # not long enough to count as stable
    assert tracker.gave_up()
    fresh = RestartTracker(max_restarts=2)
    for _ in range(2):
        fresh.on_exit(uptime=1.0, failed=True)
        fresh.next_delay()
    fresh.on_exit(uptime=10.0, failed=True)  # ran well, then failed: a first failure
    assert fresh.failures == 1 and not fresh.gave_up()
    assert fresh.next_delay() == 1


@pytest.mark.parametrize("max_restarts", [0, 1, 5])
def test_gives_up_after_max_restarts_plus_one_failed_starts(max_restarts: int) -> None:
    tracker = RestartTracker(max_restarts=max_restarts)
    for _ in range(max_restarts):
        tracker.on_exit(uptime=0.0, failed=True)
        assert not tracker.gave_up()
        tracker.next_delay()
    tracker.on_exit(uptime=0.0, failed=True)
    assert tracker.gave_up()


def test_clean_exits_never_count_as_failures_but_back_off() -> None:
    tracker = RestartTracker(max_restarts=0)
    delays = []
    for _ in range(3):
        tracker.on_exit(uptime=0.0, failed=False)
        assert not tracker.gave_up()
        delays.append(tracker.next_delay())
    assert delays == [1, 2, 4]


def test_states() -> None:
    assert State.HELD.public == "starting"
    assert State.READY.public == "ready"
    # Every public state name is one of the eight of `keelrun ps --json`.
    assert {s.public for s in State} == {
        "starting",
        "running",
        "ready",
        "stopping",
        "backoff",
        "stopped",
        "exited",
        "failed",
    }


def test_reset_starts_count_and_backoff_over() -> None:
    tracker = RestartTracker(max_restarts=1)
    for _ in range(2):
        tracker.on_exit(uptime=0.1, failed=True)
        tracker.next_delay()
    assert tracker.gave_up()
    tracker.reset()
    assert not tracker.gave_up()
    assert tracker.next_delay() == 1.0
