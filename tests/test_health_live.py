"""InstanceHealth on a real loop with real processes: every kind of check, start to verdict."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from support.loopkit import Kit
from support.ports import free_port

from keelrun.healthspec import Check, HealthPlan
from keelrun.supervisor.health import InstanceHealth, Phase
from keelrun.supervisor.notify import NotifyReceiver, instance_env
from keelrun.supervisor.probes import ProbeTarget

pytestmark = pytest.mark.timeout(40)


class Events:
    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []

    def names(self) -> list[str]:
        return [name for name, _ in self.log]

    def on_ready(self, why: str) -> None:
        self.log.append(("ready", why))

    def on_ready_timeout(self, why: str) -> None:
        self.log.append(("ready_timeout", why))

    def on_check_failed(self, detail: str, failures: int, retries: int) -> None:
        self.log.append(("check_failed", f"{failures}/{retries} {detail}"))

    def on_unhealthy(self, why: str) -> None:
        self.log.append(("unhealthy", why))

    def on_reloading(self) -> None:
        self.log.append(("reloading", ""))

    def on_app_stopping(self) -> None:
        self.log.append(("app_stopping", ""))


def monitor(kit: Kit, pid: int, port: int, root: Path | str = "/", **plan: object):
    events = Events()
    target = ProbeTarget(kit.loop, pid, port, root, kit.env(PORT=str(port)), 1.0, kit.routes)
    health = InstanceHealth(HealthPlan(**plan), target, events)  # type: ignore[arg-type]
    return health, events


def test_port_ready_once_the_instance_itself_listens(kit: Kit) -> None:
    port = free_port()
    inst = kit.python("listener.py", "0.4", env=kit.env(PORT=str(port)))
    health, events = monitor(kit, inst.pid, port, ready=Check("port"), ready_interval=0.05)
    health.start()
    kit.run_until(lambda: events.log, 10, "a verdict")
    assert events.log == [("ready", f"port {port} is listening (pid {inst.pid})")]
    assert inst.saw("listening")  # not before it listened


def test_port_held_by_someone_else_keeps_the_instance_starting(kit: Kit) -> None:
    port = free_port()
    squatter = kit.python("netserver.py", str(port), "listen")
    kit.run_until(lambda: squatter.lines, 10, "the squatter listening")
    inst = kit.spawn([sys.executable, "-c", "import signal; signal.pause()"])
    health, events = monitor(
        kit, inst.pid, port, ready=Check("port"), ready_interval=0.1, ready_timeout=1.0
    )
    health.start()
    kit.run_for(0.6)
    assert events.log == [] and health.phase is Phase.STARTING
    kit.run_until(lambda: events.log, 5, "the ready timeout")
    ((name, why),) = events.log
    assert name == "ready_timeout"
    assert why.endswith(f"the last: port {port} is held by a process that is not this instance's")


def test_http_ready_then_liveness_fails_into_unhealthy(kit: Kit, tmp_path: Path) -> None:
    port = free_port()
    flag = tmp_path / "healthy"
    inst = kit.python("netserver.py", str(port), "file", str(flag))
    health, events = monitor(
        kit,
        inst.pid,
        port,
        ready=Check("http", path="/ready"),
        health=Check("http", path="/health"),
        ready_interval=0.05,
        health_interval=0.1,
        health_retries=3,
    )
    health.start()
    kit.run_for(0.4)
    assert events.log == []  # 503 until the flag exists
    flag.touch()
    kit.run_until(lambda: events.log, 5, "ready")
    assert events.log == [("ready", "HTTP 200")]
    kit.run_for(0.35)
    assert health.health == "ok" and len(events.log) == 1
    flag.unlink()
    kit.run_until(lambda: "unhealthy" in events.names(), 5, "unhealthy")
    assert events.log[1:] == [
        ("check_failed", "1/3 HTTP 503"),
        ("check_failed", "2/3 HTTP 503"),
        ("unhealthy", "3 health checks failed in a row: HTTP 503"),
    ]
    assert health.phase is Phase.UNHEALTHY


def test_exec_ready_and_an_exec_health_check_that_hangs(kit: Kit, tmp_path: Path) -> None:
    flag = tmp_path / "migrated"
    inst = kit.spawn([sys.executable, "-c", "import signal; signal.pause()"])
    health, events = monitor(
        kit,
        inst.pid,
        free_port(),
        tmp_path,
        ready=Check("exec", command="test -e migrated"),
        health=Check("exec", command="sleep 30"),  # probe_timeout is 1 s
        ready_interval=0.05,
        health_interval=0.05,
        health_retries=2,
    )
    health.start()
    kit.run_for(0.3)
    assert events.log == []
    flag.touch()
    kit.run_until(lambda: events.log, 5, "ready")
    assert events.log == [("ready", "exit status 0")]
    kit.run_until(lambda: "unhealthy" in events.names(), 10, "unhealthy")
    assert events.log[-1] == (
        "unhealthy",
        "2 health checks failed in a row: still running after 1s: killed",
    )
    kit.run_until(lambda: len(kit.routes) == 1, 5, "every probe reaped (the instance remains)")


def test_notify_ready_status_and_a_watchdog_that_stops(kit: Kit) -> None:
    receiver = NotifyReceiver(kit.loop)
    env = instance_env(kit.env(), receiver.address, watchdog=0.5)
    inst = kit.python(
        "notifier.py", "--depth", "1", "--ping", "0.1", "5", "READY=1\nSTATUS=serving", env=env
    )
    health, events = monitor(kit, inst.pid, free_port(), ready=Check("notify"), watchdog=0.5)
    receiver.watch(inst.pid, health.on_notify)
    health.start()
    kit.run_until(lambda: events.log, 10, "ready")
    assert events.log == [("ready", "it sent READY=1")] and health.status == "serving"
    kit.run_until(lambda: inst.saw("pinged"), 10, "the pings done")
    assert len(events.log) == 1  # alive while it pinged
    kit.run_until(lambda: len(events.log) == 2, 5, "unhealthy")
    assert events.log[1] == ("unhealthy", "no WATCHDOG=1 for 0.5s")
    receiver.unwatch(inst.pid)
    receiver.close()
