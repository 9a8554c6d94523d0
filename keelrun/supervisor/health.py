"""One incarnation's health: readiness tries, liveness checks, the watchdog, notify messages.

``InstanceHealth`` is created when an instance's process is spawned and
stopped when it ends; it owns the probes and timers of that process and
tells its listener (the supervisor) what happened: ready, not ready in time,
a failed check, unhealthy, reloading, stopping. It never signals or stops a
process itself. Between events it holds at most one timer per concern
(readiness try, ready deadline, liveness check, watchdog) and no probe
runs: idle, it costs nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Protocol

from keelrun.healthspec import Check, HealthPlan
from keelrun.loop import Timer
from keelrun.supervisor.healthstate import (
    LivenessCounter,
    ReadinessClock,
    Verdict,
    WatchdogClock,
    health_value,
)
from keelrun.supervisor.notify import NotifyMessage
from keelrun.supervisor.probeapi import Probe, ProbeResult
from keelrun.supervisor.probes import ProbeTarget, make_probe

PROBED = ("port", "http", "exec")


class HealthListener(Protocol):
    def on_ready(self, why: str) -> None: ...
    def on_ready_timeout(self, why: str) -> None: ...
    def on_check_failed(self, detail: str, failures: int, retries: int) -> None: ...
    def on_unhealthy(self, why: str) -> None: ...
    def on_reloading(self) -> None: ...
    def on_app_stopping(self) -> None: ...


class Phase(enum.Enum):
    STARTING = "starting"  # waiting for the ready check
    UP = "up"  # ready (or running, without a ready check): liveness runs
    RELOADING = "reloading"  # RELOADING=1 until the next READY=1 (no deadline: the watchdog's job)
    APP_STOPPING = "app-stopping"  # STOPPING=1: no more checks
    UNHEALTHY = "unhealthy"
    NOT_READY = "not-ready"  # ready_timeout passed
    OFF = "off"  # stopped by the supervisor


ProbeFactory = Callable[[Check, ProbeTarget], Probe]


class InstanceHealth:
    def __init__(
        self,
        plan: HealthPlan,
        target: ProbeTarget,
        listener: HealthListener,
        probe_factory: ProbeFactory = make_probe,
    ) -> None:
        self.plan = plan
        self.target = target
        self.loop = target.loop
        self.listener = listener
        self.phase = Phase.OFF
        self.status: str | None = None  # the last STATUS= of notify
        self.readiness: ReadinessClock | None = None
        self.liveness = LivenessCounter(plan.health_interval, plan.health_retries)
        self.watchdog = WatchdogClock(plan.watchdog) if plan.watchdog is not None else None
        self._factory = probe_factory
        self._ready_probe: Probe | None = None
        self._live_probe: Probe | None = None
        self._ready_timer: Timer | None = None  # next readiness try
        self._deadline: Timer | None = None  # ready_timeout
        self._live_timer: Timer | None = None
        self._wd_timer: Timer | None = None

    # -- what `ps` shows ------------------------------------------------
    @property
    def health(self) -> str | None:
        unhealthy = self.phase is Phase.UNHEALTHY
        return health_value(self.plan.has_check, self.liveness.failures, unhealthy)

    @property
    def app_stopping(self) -> bool:
        """The app said STOPPING=1: `ps` shows it stopping."""
        return self.phase is Phase.APP_STOPPING

    @property
    def proven(self) -> bool:
        """Whether this incarnation was ever seen alive by its liveness checks or watchdog:
        one that never was has not started well, however long it ran."""
        pinged = self.watchdog is not None and self.watchdog.last_ping is not None
        return self.liveness.passed or pinged

    # -- driven by the supervisor ---------------------------------------
    def start(self) -> None:
        """The process was spawned: begin the ready check (or liveness, without one)."""
        ready = self.plan.ready
        if ready is None:
            self.phase = Phase.UP
            self._start_liveness()
            return
        self.phase = Phase.STARTING
        clock = ReadinessClock(self.loop.time(), self.plan.ready_interval, self.plan.ready_timeout)
        self.readiness = clock
        self._deadline = self.loop.call_at(clock.deadline, self._ready_deadline)
        if ready.kind in PROBED:
            self._ready_probe = self._factory(ready, self.target)
            self._ready_timer = self.loop.call_at(clock.first_try_at(), self._ready_try)

    def log_matched(self) -> None:
        """``ready = "log:REGEX"``: the supervisor saw a matching line."""
        if self.phase is Phase.STARTING:
            self._became_ready("its log matched")

    def on_notify(self, msg: NotifyMessage) -> None:
        """A datagram from the instance's tree (NotifyReceiver routes it here)."""
        if msg.status is not None:
            self.status = msg.status
        if self.phase in (Phase.OFF, Phase.UNHEALTHY, Phase.NOT_READY, Phase.APP_STOPPING):
            return
        if msg.stopping:
            self._cancel_all()
            self.phase = Phase.APP_STOPPING
            self.listener.on_app_stopping()
            return
        if self.watchdog is not None:
            if msg.watchdog_trigger:
                self._unhealthy("the app triggered its watchdog (WATCHDOG=trigger)")
                return
            if msg.watchdog:
                self.watchdog.ping(self.loop.time())
                if self._wd_timer is None:
                    self._arm_watchdog()
        if self.plan.ready is None or self.plan.ready.kind != "notify":
            return
        if msg.reloading and self.phase is Phase.UP:
            self.phase = Phase.RELOADING
            self._live_timer = _cancel(self._live_timer)
            if self._live_probe is not None:
                self._live_probe.cancel()
            self.listener.on_reloading()
        if msg.ready:
            if self.phase is Phase.STARTING:
                self._became_ready("it sent READY=1")
            elif self.phase is Phase.RELOADING:
                self.phase = Phase.UP
                self._start_liveness()
                self.listener.on_ready("it sent READY=1 after reloading")

    def stop(self) -> None:
        """The process is stopping or ended: no more probes, timers or events."""
        self._cancel_all()
        self.phase = Phase.OFF

    # -- readiness ------------------------------------------------------
    def _ready_try(self) -> None:
        self._ready_timer = None
        if self.phase is Phase.STARTING and self._ready_probe is not None:
            self._ready_probe.start(self._ready_result)

    def _ready_result(self, result: ProbeResult) -> None:
        if self.phase is not Phase.STARTING or self.readiness is None:
            return
        if result.ok:
            self._became_ready(result.detail)
            return
        at = self.readiness.failed(self.loop.time(), result.detail)
        if at is not None:
            self._ready_timer = self.loop.call_at(at, self._ready_try)

    def _ready_deadline(self) -> None:
        self._deadline = None
        if self.phase is not Phase.STARTING or self.readiness is None:
            return
        self._cancel_all()
        self.phase = Phase.NOT_READY
        self.listener.on_ready_timeout(self.readiness.timeout_reason())

    def _became_ready(self, why: str) -> None:
        self._ready_timer = _cancel(self._ready_timer)
        self._deadline = _cancel(self._deadline)
        if self._ready_probe is not None:
            self._ready_probe.cancel()
            self._ready_probe = None
        self.phase = Phase.UP
        self._start_liveness()
        self.listener.on_ready(why)

    # -- liveness -------------------------------------------------------
    def _start_liveness(self) -> None:
        if self.plan.health is None:
            return
        self.liveness.reset()
        if self._live_probe is None:
            self._live_probe = self._factory(self.plan.health, self.target)
        self._live_timer = self.loop.call_at(
            self.liveness.next_at(self.loop.time()), self._live_try
        )

    def _live_try(self) -> None:
        self._live_timer = None
        if self.phase is Phase.UP and self._live_probe is not None:
            self._live_probe.start(self._live_result)

    def _live_result(self, result: ProbeResult) -> None:
        if self.phase is not Phase.UP:
            return
        verdict = self.liveness.record(result.ok, result.detail)
        if verdict is Verdict.UNHEALTHY:
            n = self.liveness.retries
            self._unhealthy(
                f"{n} health check{'s' if n > 1 else ''} failed in a row: {result.detail}"
            )
            return
        if verdict is Verdict.FAILING:
            self.listener.on_check_failed(
                result.detail, self.liveness.failures, self.liveness.retries
            )
        self._live_timer = self.loop.call_at(
            self.liveness.next_at(self.loop.time()), self._live_try
        )

    # -- watchdog -------------------------------------------------------
    def _arm_watchdog(self) -> None:
        assert self.watchdog is not None and self.watchdog.deadline is not None
        self._wd_timer = self.loop.call_at(self.watchdog.deadline, self._watchdog_check)

    def _watchdog_check(self) -> None:
        """One timer per watchdog period, however often the app pings: a ping only moves
        the deadline, and the timer re-arms itself at the new one when it fires."""
        self._wd_timer = None
        wd = self.watchdog
        if wd is None or self.phase in (Phase.OFF, Phase.UNHEALTHY, Phase.APP_STOPPING):
            return
        if wd.expired(self.loop.time()):
            self._unhealthy(f"no WATCHDOG=1 for {wd.timeout:g}s")
        else:
            self._arm_watchdog()

    def _unhealthy(self, why: str) -> None:
        self._cancel_all()
        self.phase = Phase.UNHEALTHY
        self.listener.on_unhealthy(why)

    def _cancel_all(self) -> None:
        self._ready_timer = _cancel(self._ready_timer)
        self._deadline = _cancel(self._deadline)
        self._live_timer = _cancel(self._live_timer)
        self._wd_timer = _cancel(self._wd_timer)
        for probe in (self._ready_probe, self._live_probe):
            if probe is not None and probe.running:
                probe.cancel()


def _cancel(timer: Timer | None) -> None:
    if timer is not None:
        timer.cancel()
    return None
