"""Pure rules of readiness tries, liveness, the watchdog and the `health` of `ps`.

Plain values and a clock reading passed in: no loop, no I/O, so each rule is
unit-tested with a fake clock. health.py drives them with timers and probes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

# The first readiness try comes this soon after the spawn (or after
# ready_interval, if shorter): a fast app is not kept waiting a whole interval.
FIRST_TRY = 0.1


@dataclass(slots=True)
class ReadinessClock:
    """Tries of a readiness probe: ``interval`` from the end of one try to the start of the
    next, the whole bounded by ``timeout`` from ``started``."""

    started: float
    interval: float
    timeout: float
    tries: int = 0
    last: str = ""  # what the last failed try said

    @property
    def deadline(self) -> float:
        return self.started + self.timeout

    def first_try_at(self) -> float:
        return self.started + min(self.interval, FIRST_TRY)

    def failed(self, now: float, detail: str) -> float | None:
        """Record a failed try; when the next one starts, or None when none fits before
        the deadline."""
        self.tries += 1
        self.last = detail
        at = now + self.interval
        return at if at < self.deadline else None

    def expired(self, now: float) -> bool:
        return now >= self.deadline

    def timeout_reason(self) -> str:
        if not self.tries:
            return "no try finished"
        return f"{self.tries} tries, the last: {self.last}"


class Verdict(enum.Enum):
    OK = "ok"
    FAILING = "failing"  # failed, fewer than `retries` times in a row
    UNHEALTHY = "unhealthy"  # `retries` failures in a row


@dataclass(slots=True)
class LivenessCounter:
    """Liveness checks every ``interval`` (end of one to start of the next); ``retries``
    failures in a row make the instance unhealthy."""

    interval: float
    retries: int
    failures: int = 0
    last: str = ""
    passed: bool = False  # a check has passed in this incarnation

    def next_at(self, now: float) -> float:
        return now + self.interval

    def record(self, ok: bool, detail: str = "") -> Verdict:
        if ok:
            self.failures = 0
            self.passed = True
            return Verdict.OK
        self.failures += 1
        self.last = detail
        return Verdict.UNHEALTHY if self.failures >= self.retries else Verdict.FAILING

    def reset(self) -> None:
        self.failures = 0


@dataclass(slots=True)
class WatchdogClock:
    """An instance that sent no WATCHDOG=1 for ``timeout`` seconds after its first is
    unhealthy; before its first ping the watchdog is not armed."""

    timeout: float
    last_ping: float | None = None

    def ping(self, now: float) -> None:
        self.last_ping = now

    @property
    def deadline(self) -> float | None:
        return None if self.last_ping is None else self.last_ping + self.timeout

    def expired(self, now: float) -> bool:
        deadline = self.deadline
        return deadline is not None and now >= deadline


def health_value(has_check: bool, failures: int, unhealthy: bool = False) -> str | None:
    """``health`` of `ps --json`: null without a check, else "ok" or "failing"."""
    if not has_check:
        return None
    return "failing" if failures or unhealthy else "ok"
