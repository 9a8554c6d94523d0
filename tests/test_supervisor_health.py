"""Health and exit-policy rules of the supervisor, in-process: a fake kernel and clock,
scripted probes and notify messages handed to the instance's checks.

The real processes, sockets and probes are proven by test_start_health.py,
test_start_notify.py and test_start_exit_policy.py; these pin down the rules.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from support.fakes import FakeService, exited, killed

from keelrun.control.client import state_cell
from keelrun.supervisor.ending import final_status
from keelrun.supervisor.notify import NotifyMessage

pytestmark = pytest.mark.timeout(10)


def config(**types: str) -> str:
    return "".join(f"[tool.keelrun.processes.{name}]\n{body}\n" for name, body in types.items())


def test_http_ready_holds_dependents_until_a_try_passes(make) -> None:
    h = make(
        "web: app\nworker: job\n",
        config(web='ready = "http:/up"\nready_interval = 1', worker='depends_on = ["web"]'),
    )
    h.probes.verdict["web.1"] = (False, "HTTP 503")
    h.start()
    h.advance(3.0)
    assert h.state("web.1") == "starting" and h.state("worker.1") == "starting"
    assert h.probes.tries["web.1"] == 3  # at 0.1 s, then one interval after each try
    h.probes.verdict["web.1"] = (True, "HTTP 200")
    h.advance(1.0)
    assert h.state("web.1") == "ready" and h.state("worker.1") == "running"
    assert "web.1 is ready: HTTP 200" in h.events()
    assert h.ps("web.1")["health"] is None  # no liveness check


def test_ready_timeout_is_a_failed_start_even_after_a_long_wait(make) -> None:
    # 30 s without becoming ready is not "10 s of good uptime": the count goes on.
    h = make("web: app\n", config(web='ready = "port"\nready_timeout = 30'), max_restarts="1")
    h.probes.verdict["web.1"] = (False, "nothing listens on port 5000")
    h.start()
    for _ in range(2):
        h.advance(30.0)
        assert h.state("web.1") == "stopping"
        h.obey()
        h.advance(1.0)
    assert h.state("web.1") == "failed"
    assert h.sup.shutdown.active and h.sup.shutdown.status == 128 + signal.SIGTERM
    timeouts = [e for e in h.events() if "not ready after 30s" in e]
    assert len(timeouts) == 2 and "the last: nothing listens on port 5000" in timeouts[0]


LIVE = config(web='health = "http:/health"\nhealth_interval = 10\nhealth_retries = 3')


def test_failing_checks_show_in_ps_then_unhealthy_stops_and_restarts(make) -> None:
    h = make("web: app\n", LIVE)
    h.start()
    assert h.state("web.1") == "running" and h.ps("web.1")["health"] == "ok"
    h.advance(10.0)
    assert h.probes.tries["web.1"] == 1  # the first check one interval after the start
    h.probes.verdict["web.1"] = (False, "HTTP 500")
    h.advance(20.0)
    row = h.ps("web.1")
    assert (row["health"], row["health_failures"], row["health_retries"]) == ("failing", 2, 3)
    assert state_cell(row) == "running (failing 2/3)"
    assert "web.1 health check failed (2/3): HTTP 500" in h.events()
    pid = h.sup.instances["web.1"].pid
    h.advance(10.0)
    assert "web.1 is unhealthy (3 health checks failed in a row: HTTP 500): stopping it" in (
        h.events()
    )
    assert h.kernel.signalled(signal.SIGTERM) == [pid] and h.state("web.1") == "stopping"
    tries = h.probes.tries["web.1"]
    h.advance(2.0)
    assert h.probes.tries["web.1"] == tries, "no check while stopping"
    h.obey()
    assert h.state("web.1") == "backoff"
    assert h.sup.instances["web.1"].tracker.failures == 1
    h.advance(1.0)
    assert h.state("web.1") == "running" and h.sup.instances["web.1"].pid != pid
    assert h.ps("web.1")["health"] == "ok", "a new incarnation starts with a clean count"


def test_max_restarts_ends_a_type_that_never_becomes_healthy(make) -> None:
    h = make("web: app\nworker: job\n", LIVE, max_restarts="2")
    h.probes.verdict["web.1"] = (False, "HTTP 500")
    h.start()
    for _ in range(3):
        h.advance(30.0)  # three failed checks: up 30 s, but never seen alive
        h.obey()
        h.advance(4.0)  # the back-off
    assert h.state("web.1") == "failed"
    assert h.sup.shutdown.status == 143 and h.state("worker.1") == "stopped"
    assert "web.1 failed 3 starts in a row: giving up" in h.events()


def test_an_instance_healthy_for_a_while_is_forgiven_when_it_turns_unhealthy(make) -> None:
    h = make("web: app\n", LIVE, max_restarts="1")
    h.start()
    for _ in range(3):
        h.probes.verdict["web.1"] = (True, "HTTP 200")
        h.advance(60.0)  # healthy: checks passed
        h.probes.verdict["web.1"] = (False, "connection refused")
        h.advance(30.0)
        h.obey()
        assert h.state("web.1") == "backoff", "it started well each time: not a crash loop"
        assert h.sup.instances["web.1"].tracker.failures == 1
        h.advance(1.0)
    assert not h.sup.shutdown.active


WATCHDOG = config(web='ready = "notify"\nwatchdog = 2')


def test_notify_types_get_keelruns_socket_and_a_watchdog(make) -> None:
    h = make("web: app\nworker: job\n", WATCHDOG)
    h.start()
    web, worker = h.kernel.spawned
    assert web.env["NOTIFY_SOCKET"] == h.sup.checks.receiver.address
    assert web.env["NOTIFY_SOCKET"].startswith("@keelrun/")
    assert web.env["WATCHDOG_USEC"] == "2000000" and web.watchdog_pid
    assert "NOTIFY_SOCKET" not in worker.env and "WATCHDOG_USEC" not in worker.env
    assert not worker.watchdog_pid


def test_systemds_variables_never_reach_an_instance(make, tmp_path: Path) -> None:
    from keelrun.supervisor import checks, notify

    assert checks._NOTIFY_VARS == notify.NOTIFY_VARS  # the fast path's copy
    h = make("web: app\nworker: job\n", WATCHDOG)
    env = {"NOTIFY_SOCKET": "/run/systemd/notify", "WATCHDOG_USEC": "5", "WATCHDOG_PID": "1"}
    h.sup.settings = h.settings._replace(env=env)
    h.start()
    web, worker = h.kernel.spawned
    assert web.env["NOTIFY_SOCKET"].startswith("@keelrun/") and "WATCHDOG_PID" not in web.env
    assert not any(k in worker.env for k in env)


def test_watchdog_expiry_after_the_first_ping_is_unhealthy(make) -> None:
    h = make("web: app\n", WATCHDOG)
    h.start()
    health = h.sup.instances["web.1"].health
    health.on_notify(NotifyMessage(ready=True, status="serving"))
    assert h.state("web.1") == "ready" and h.ps("web.1")["status"] == "serving"
    h.advance(10.0)  # no WATCHDOG=1 yet: not armed
    assert h.state("web.1") == "ready"
    for _ in range(5):
        health.on_notify(NotifyMessage(watchdog=True))
        h.advance(1.5)
    assert h.state("web.1") == "ready"
    h.advance(0.6)
    assert h.state("web.1") == "stopping"
    assert "web.1 is unhealthy (no WATCHDOG=1 for 2s): stopping it" in h.events()


def test_reloading_stopping_and_status_from_notify(make) -> None:
    h = make("web: app\nworker: job\n", config(web='ready = "notify"'))
    h.start()
    health = h.sup.instances["web.1"].health
    assert h.state("web.1") == "starting" and h.ps("web.1")["status"] is None
    health.on_notify(NotifyMessage(ready=True, status="Gunicorn arbiter booted"))
    assert h.state("web.1") == "ready"
    health.on_notify(NotifyMessage(reloading=True, status="reloading"))
    assert h.state("web.1") == "starting" and h.ps("web.1")["status"] == "reloading"
    health.on_notify(NotifyMessage(ready=True))
    assert h.state("web.1") == "ready" and h.ps("web.1")["status"] == "reloading"
    health.on_notify(NotifyMessage(stopping=True, status="bye"))
    assert h.ps("web.1")["state"] == "stopping" and h.ps("web.1")["status"] == "bye"
    assert h.kernel.signals == [], "STOPPING=1 is the app's word: keelrun sends nothing"
    h.commands.stop({"names": ["web.1"]})  # keelrun can still stop it
    assert h.kernel.signalled(signal.SIGTERM) == [h.sup.instances["web.1"].pid]
    h.obey()
    assert h.ps("web.1")["state"] == "stopped" and h.ps("web.1")["status"] is None


def test_keelrun_tells_systemd_ready_once_settled_and_stopping_first(make) -> None:
    h = make("web: app\nworker: job\nclock: tick\n", config(web='ready = "http:/"'))
    h.sup.checks.service = service = FakeService()
    h.probes.verdict["web.1"] = (False, "HTTP 503")
    h.start()
    h.advance(1.0)
    assert service.sent == [], "web is not ready yet"
    h.probes.verdict["web.1"] = (True, "HTTP 200")
    h.advance(1.0)
    assert service.sent == ["READY=1"]
    h.end("clock.1", exited(0))
    h.commands.on_signal(signal.SIGTERM)
    assert service.sent == ["READY=1", "STOPPING=1"]


def test_success_codes_count_as_success_for_restarts_and_the_exit_status(make) -> None:
    h = make("web: app\nworker: job\n", config(worker="success_codes = [0, 3]"))
    h.start()
    h.end("worker.1", exited(3))
    assert h.state("worker.1") == "exited", "3 is a success: on-failure does not restart"
    assert any(e == "worker.1 (pid 102) exited with status 3" for e in h.events())
    h.end("web.1", exited(0))
    assert h.sup.shutdown.active and h.sup.shutdown.status == 0


def test_exit_code_from_stops_the_others_with_the_runners_status(make) -> None:
    h = make("web: app\nworker: job\ne2e: tests\n", exit_code_from="e2e")
    assert h.settings.type_named("e2e").restart == "never", "the runner's default"
    assert h.settings.type_named("web").restart == "on-failure"
    h.start()
    h.end("worker.1", exited(0))  # ended, not restarted: keelrun goes on
    assert not h.sup.shutdown.active
    h.end("e2e.1", exited(4))  # failed tests are not run again
    assert h.sup.shutdown.active and h.sup.shutdown.status == 4
    assert h.kernel.signalled(signal.SIGTERM) == [h.sup.instances["web.1"].pid]
    assert "every e2e instance has ended: stopping the others (--exit-code-from)" in h.events()


def test_exit_code_from_waits_for_every_instance_of_the_type(make) -> None:
    restarted = config(e2e='restart = "on-failure"')  # not the default "never" of the runner
    h = make("web: app\ne2e: tests\n", restarted, exit_code_from="e2e", formation="e2e=2")
    h.start()
    h.end("e2e.1", exited(1))
    h.advance(1.0)  # restarted (on-failure): not final
    h.end("e2e.1", exited(0))
    assert not h.sup.shutdown.active
    h.end("e2e.2", exited(0))
    assert h.sup.shutdown.status == 0


def test_abort_on_exit_stops_everything_with_the_first_status(make) -> None:
    h = make("web: app\nworker: job\n", abort_on_exit=True, restart="never")
    h.start()
    h.end("worker.1", killed(signal.SIGSEGV))
    assert h.sup.shutdown.active and h.sup.shutdown.status == 139
    assert "worker.1 has ended: stopping everything (--abort-on-exit)" in h.events()


def test_abort_on_exit_waits_for_an_instance_that_will_not_be_restarted(make) -> None:
    h = make("web: app\nworker: job\n", abort_on_exit=True)
    h.start()
    h.end("worker.1", exited(1))  # on-failure: restarted, so not the end
    assert not h.sup.shutdown.active and h.state("worker.1") == "backoff"
    h.advance(1.0)
    h.end("worker.1", exited(0))
    assert h.sup.shutdown.status == 0


def test_with_both_flags_the_runners_status_is_taken_once_everything_stopped(make) -> None:
    # docker compose's answer to --abort-on-exit with --exit-code-from.
    h = make("web: app\ne2e: tests\n", exit_code_from="e2e", abort_on_exit=True, restart="never")
    h.start()
    h.end("web.1", exited(0))
    assert h.sup.shutdown.active and h.sup.shutdown.status is None
    h.obey()  # e2e ends by the stop signal
    assert final_status(h.sup) == 128 + signal.SIGTERM
