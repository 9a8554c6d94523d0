"""Pure lifecycle rules: states, back-off, exit statuses (the restart predicate: exitpolicy.py).

No I/O here, so every rule is unit-tested with plain values and a fake clock.
"""

from __future__ import annotations

import enum
import os

BACKOFF_INITIAL = 1.0
BACKOFF_MAX = 30.0
# An instance that stayed up this long counts as started well: its failure
# counter and back-off start over.
STABLE_UPTIME = 10.0


class State(enum.Enum):
    STARTING = "starting"  # spawned, waiting for its readiness check
    RUNNING = "running"
    READY = "ready"
    STOPPING = "stopping"
    BACKOFF = "backoff"  # waiting to be restarted
    STOPPED = "stopped"  # stopped on request; stays down until started again
    EXITED = "exited"  # ended by itself and not restarted
    FAILED = "failed"  # gave up after too many failed starts
    HELD = "starting-held"  # waiting for its dependencies (shown as "starting")

    @property
    def public(self) -> str:
        return "starting" if self is State.HELD else self.value


def exit_code(wait_status: int) -> int:
    """A shell-style exit code: the status, or 128+N for death by signal N."""
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


def describe_exit(wait_status: int) -> str:
    code = os.waitstatus_to_exitcode(wait_status)
    if code < 0:
        import signal

        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    return f"exited with status {code}"


class RestartTracker:
    """Counts failed starts in a row and computes the back-off before the next try.

    A plain class, not a dataclass: this module is imported on every start,
    and a dataclass costs about a millisecond to build.
    """

    __slots__ = ("failures", "initial", "max_restarts", "maximum", "stable_after", "step")

    def __init__(
        self,
        max_restarts: int,
        initial: float = BACKOFF_INITIAL,
        maximum: float = BACKOFF_MAX,
        stable_after: float = STABLE_UPTIME,
    ) -> None:
        self.max_restarts = max_restarts
        self.initial = initial
        self.maximum = maximum
        self.stable_after = stable_after
        self.failures = 0  # failed starts in a row
        self.step = 0  # back-off step: restarts in a row, clean or not

    def __repr__(self) -> str:
        return (
            f"RestartTracker(max_restarts={self.max_restarts}, "
            f"failures={self.failures}, step={self.step})"
        )

    def on_exit(self, uptime: float, failed: bool) -> None:
        if uptime >= self.stable_after:
            self.failures = 0
            self.step = 0
        if failed:
            self.failures += 1

    def reset(self) -> None:
        """A restart someone asked for starts the count and the back-off over."""
        self.failures = 0
        self.step = 0

    def gave_up(self) -> bool:
        """True once the failed starts exceed the restarts allowed after the first start."""
        return self.failures > self.max_restarts

    def next_delay(self) -> float:
        delay = min(self.maximum, self.initial * (2.0**self.step))
        self.step += 1
        return delay
