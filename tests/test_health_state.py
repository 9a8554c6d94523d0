"""Readiness tries, liveness, the watchdog and notify as state machines, on a fake clock."""

from __future__ import annotations

import pytest

from keelrun.healthspec import Check, HealthPlan
from keelrun.loop import Loop
from keelrun.supervisor.health import InstanceHealth, Phase
from keelrun.supervisor.healthstate import (
    LivenessCounter,
    ReadinessClock,
    Verdict,
    WatchdogClock,
    health_value,
)
from keelrun.supervisor.notify import NotifyMessage
from keelrun.supervisor.probeapi import ChildRoutes, ProbeResult, ResultCallback
from keelrun.supervisor.probes import ProbeTarget

# -- the pure clocks ----------------------------------------------------------


def test_readiness_clock_defaults() -> None:
    clock = ReadinessClock(started=100.0, interval=0.5, timeout=60.0)
    assert clock.first_try_at() == pytest.approx(100.1)
    assert clock.failed(100.2, "refused") == pytest.approx(100.7)
    assert clock.failed(159.6, "refused") is None  # 160.1 is past the deadline
    assert clock.tries == 2 and clock.timeout_reason() == "2 tries, the last: refused"
    assert not clock.expired(159.99) and clock.expired(160.0)
    slow = ReadinessClock(started=0, interval=0.05, timeout=1)
    assert slow.first_try_at() == 0.05
    assert ReadinessClock(0, 1, 1).timeout_reason() == "no try finished"


def test_liveness_counter() -> None:
    live = LivenessCounter(interval=10, retries=3)
    assert live.next_at(5) == 15
    assert live.record(False, "HTTP 500") is Verdict.FAILING
    assert live.record(True) is Verdict.OK and live.failures == 0
    assert [live.record(False, "x") for _ in range(3)] == [
        Verdict.FAILING,
        Verdict.FAILING,
        Verdict.UNHEALTHY,
    ]
    assert LivenessCounter(1, 1).record(False) is Verdict.UNHEALTHY


def test_watchdog_clock_arms_on_the_first_ping() -> None:
    wd = WatchdogClock(timeout=5)
    assert wd.deadline is None and not wd.expired(1000)
    wd.ping(10)
    assert wd.deadline == 15 and not wd.expired(14.9) and wd.expired(15)
    wd.ping(14)
    assert not wd.expired(15) and wd.expired(19)


def test_health_value() -> None:
    assert health_value(False, 0) is None
    assert health_value(True, 0) == "ok"
    assert health_value(True, 2) == "failing"
    assert health_value(True, 0, unhealthy=True) == "failing"


# -- the driver, with a fake clock and scripted probes ---------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeProbe:
    """A probe whose tries the test ends by hand (``finish``)."""

    def __init__(self, check: Check, clock: Clock) -> None:
        self.check = check
        self.clock = clock
        self.cb: ResultCallback | None = None
        self.starts: list[float] = []
        self.cancels = 0

    @property
    def running(self) -> bool:
        return self.cb is not None

    def start(self, on_result: ResultCallback) -> None:
        assert self.cb is None
        self.cb = on_result
        self.starts.append(self.clock())

    def cancel(self) -> None:
        self.cb = None
        self.cancels += 1

    def finish(self, ok: bool, detail: str = "") -> None:
        cb, self.cb = self.cb, None
        assert cb is not None, "no try running"
        cb(ProbeResult(ok, detail or ("fine" if ok else "bad")))


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[object, ...]] = []

    def on_ready(self, why: str) -> None:
        self.events.append(("ready", why))

    def on_ready_timeout(self, why: str) -> None:
        self.events.append(("ready_timeout", why))

    def on_check_failed(self, detail: str, failures: int, retries: int) -> None:
        self.events.append(("check_failed", detail, failures, retries))

    def on_unhealthy(self, why: str) -> None:
        self.events.append(("unhealthy", why))

    def on_reloading(self) -> None:
        self.events.append(("reloading",))

    def on_app_stopping(self) -> None:
        self.events.append(("app_stopping",))


class Rig:
    def __init__(self, **plan: object) -> None:
        self.clock = Clock()
        self.loop = Loop(self.clock)
        self.probes: dict[str, FakeProbe] = {}
        self.rec = Recorder()
        target = ProbeTarget(self.loop, 1, 5000, "/", {}, 2.0, ChildRoutes())
        self.health = InstanceHealth(HealthPlan(**plan), target, self.rec, self._factory)  # type: ignore[arg-type]
        self._made: list[FakeProbe] = []

    def _factory(self, check: Check, target: ProbeTarget) -> FakeProbe:
        probe = FakeProbe(check, self.clock)
        self._made.append(probe)
        return probe

    @property
    def ready_probe(self) -> FakeProbe:
        return self._made[0]

    @property
    def live_probe(self) -> FakeProbe:
        return self._made[-1]

    def advance(self, seconds: float) -> None:
        """Move the clock in small steps, running every timer due on the way."""
        end = self.clock.now + seconds
        while self.clock.now < end:
            self.clock.now = min(end, self.clock.now + 0.01)
            self.loop.run_due()

    def at(self) -> float:
        return self.clock.now - 1000.0


HTTP = Check("http", path="/health")


def test_ready_tries_every_interval_after_the_end_of_the_last() -> None:
    rig = Rig(ready=HTTP)
    rig.health.start()
    assert rig.health.phase is Phase.STARTING
    rig.advance(0.1)
    assert rig.ready_probe.starts == [pytest.approx(1000.1)]
    rig.advance(1.0)  # the try hangs: no second one starts meanwhile
    rig.ready_probe.finish(False, "no answer within 2s")
    rig.advance(0.49)
    assert len(rig.ready_probe.starts) == 1
    rig.advance(0.02)
    assert len(rig.ready_probe.starts) == 2
    rig.ready_probe.finish(True, "HTTP 200")
    assert rig.rec.events == [("ready", "HTTP 200")]
    assert rig.health.phase is Phase.UP and rig.health.health is None
    rig.advance(60)
    assert len(rig.ready_probe.starts) == 2 and rig.rec.events == [("ready", "HTTP 200")]


def test_not_ready_in_time() -> None:
    rig = Rig(ready=Check("port"), ready_timeout=3.0)
    rig.health.start()
    while rig.at() < 2.9:
        rig.advance(0.01)
        if rig.ready_probe.running:
            rig.ready_probe.finish(False, "nothing listens on port 5000")
    assert rig.rec.events == []
    rig.advance(0.2)
    assert rig.rec.events == [
        ("ready_timeout", "6 tries, the last: nothing listens on port 5000"),
    ]
    assert rig.health.phase is Phase.NOT_READY


def test_a_try_running_at_the_deadline_is_cancelled() -> None:
    rig = Rig(ready=HTTP, ready_timeout=1.0)
    rig.health.start()
    rig.advance(0.2)
    assert rig.ready_probe.running
    rig.advance(0.9)
    assert not rig.ready_probe.running and rig.ready_probe.cancels == 1
    assert rig.rec.events == [("ready_timeout", "no try finished")]


def test_log_readiness_waits_for_the_supervisor() -> None:
    rig = Rig(ready=Check("log", pattern="up"), ready_timeout=5)
    rig.health.start()
    rig.advance(1)
    assert rig.rec.events == [] and rig._made == []
    rig.health.log_matched()
    rig.health.log_matched()
    assert rig.rec.events == [("ready", "its log matched")]
    rig.advance(10)
    assert len(rig.rec.events) == 1  # the deadline was cancelled


def test_liveness_after_ready_retries_then_unhealthy() -> None:
    rig = Rig(ready=HTTP, health=Check("exec", command="check"), health_interval=10)
    rig.health.start()
    rig.advance(0.1)
    rig.ready_probe.finish(True, "HTTP 200")
    live = rig.live_probe
    assert live.check.kind == "exec" and rig.health.health == "ok"
    rig.advance(9.9)
    assert live.starts == []  # the first check one interval after ready
    rig.advance(0.2)
    live.finish(False, "exit status 1")
    assert rig.health.health == "failing"
    assert (rig.health.liveness.failures, rig.health.liveness.retries) == (1, 3)
    assert not rig.health.proven
    rig.advance(10.1)
    live.finish(True)
    assert rig.health.health == "ok" and rig.health.liveness.failures == 0
    assert rig.health.proven
    for _ in range(3):
        rig.advance(10.1)
        live.finish(False, "exit status 1")
    assert rig.rec.events == [
        ("ready", "HTTP 200"),
        ("check_failed", "exit status 1", 1, 3),
        ("check_failed", "exit status 1", 1, 3),
        ("check_failed", "exit status 1", 2, 3),
        ("unhealthy", "3 health checks failed in a row: exit status 1"),
    ]
    assert rig.health.phase is Phase.UNHEALTHY and rig.health.health == "failing"
    rig.advance(60)
    assert len(live.starts) == 5


def test_liveness_without_ready_starts_at_once() -> None:
    rig = Rig(health=Check("port"), health_interval=2, health_retries=1)
    rig.health.start()
    assert rig.health.phase is Phase.UP
    rig.advance(2.05)
    rig.live_probe.finish(False, "nothing listens on port 5000")
    assert rig.rec.events == [
        ("unhealthy", "1 health check failed in a row: nothing listens on port 5000")
    ]


def test_notify_ready_reloading_stopping() -> None:
    rig = Rig(ready=Check("notify"), health=HTTP, health_interval=1)
    rig.health.start()
    rig.health.on_notify(NotifyMessage(status="migrating"))
    assert rig.health.status == "migrating" and rig.health.phase is Phase.STARTING
    rig.health.on_notify(NotifyMessage(ready=True, status="serving"))
    assert rig.rec.events == [("ready", "it sent READY=1")]
    assert rig.health.status == "serving"
    rig.advance(1.05)
    rig.live_probe.finish(True)
    rig.health.on_notify(NotifyMessage(reloading=True))
    assert rig.health.phase is Phase.RELOADING
    starts = len(rig.live_probe.starts)
    rig.advance(5)
    assert len(rig.live_probe.starts) == starts  # no checks while reloading
    rig.health.on_notify(NotifyMessage(ready=True))
    assert rig.health.phase is Phase.UP
    rig.advance(1.05)
    assert len(rig.live_probe.starts) == starts + 1
    rig.health.on_notify(NotifyMessage(stopping=True))
    assert not rig.live_probe.running
    rig.health.on_notify(NotifyMessage(ready=True))
    rig.advance(5)
    assert rig.rec.events == [
        ("ready", "it sent READY=1"),
        ("reloading",),
        ("ready", "it sent READY=1 after reloading"),
        ("app_stopping",),
    ]


def test_ready_1_counts_only_for_ready_notify() -> None:
    rig = Rig(ready=Check("port"), watchdog=5.0)
    rig.health.start()
    rig.health.on_notify(NotifyMessage(ready=True, status="up"))
    assert rig.rec.events == [] and rig.health.phase is Phase.STARTING
    assert rig.health.status == "up"


def test_watchdog_after_the_first_ping() -> None:
    rig = Rig(ready=Check("notify"), watchdog=5.0)
    rig.health.start()
    rig.health.on_notify(NotifyMessage(ready=True))
    rig.advance(30)
    assert rig.rec.events == [("ready", "it sent READY=1")]  # never pinged: not armed
    assert rig.health.health == "ok"
    for _ in range(10):  # pings every 4 s keep it alive
        rig.health.on_notify(NotifyMessage(watchdog=True))
        rig.advance(4)
    assert len(rig.rec.events) == 1
    rig.advance(0.99)
    assert len(rig.rec.events) == 1
    rig.advance(0.02)
    assert rig.rec.events[-1] == ("unhealthy", "no WATCHDOG=1 for 5s")
    assert rig.health.health == "failing"


def test_watchdog_holds_one_timer_however_often_the_app_pings() -> None:
    rig = Rig(watchdog=5.0)
    rig.health.start()
    for _ in range(1000):
        rig.health.on_notify(NotifyMessage(watchdog=True))
    live = [t for _, _, t in rig.loop._timers if not t.cancelled]
    assert len(live) == 1


def test_watchdog_trigger() -> None:
    rig = Rig(watchdog=5.0)
    rig.health.start()
    rig.health.on_notify(NotifyMessage(watchdog_trigger=True))
    assert rig.rec.events == [("unhealthy", "the app triggered its watchdog (WATCHDOG=trigger)")]


def test_stop_ends_everything() -> None:
    rig = Rig(ready=HTTP, health=HTTP, watchdog=1.0)
    rig.health.start()
    rig.health.on_notify(NotifyMessage(watchdog=True))
    rig.advance(0.15)
    assert rig.ready_probe.running
    rig.health.stop()
    assert not rig.ready_probe.running
    rig.advance(120)
    assert rig.rec.events == []
    assert not [t for _, _, t in rig.loop._timers if not t.cancelled]
