"""Readiness and liveness probes under a real `keelrun start`: http against real servers,
exec probes (killed whole at their timeout), a port someone else owns, and unhealthy
instances restarted until --max-restarts ends them."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from conftest import make_app
from support import py
from support.ports import free_port
from support.procs import alive, wait_gone, wait_until

pytestmark = pytest.mark.timeout(60)


SPEC_KEYS = [
    *("name", "type", "pid", "state", "uptime_s", "restarts", "exit_status", "port", "command"),
    *("health", "status", "cpu_percent", "rss_bytes"),
]


def server(mode: str, *args: str) -> str:
    """A Procfile command: netserver.py on the instance's $PORT."""
    return f"exec {py('netserver.py', '$PORT', mode, *args)}"


def test_http_ready_and_liveness_against_a_real_server(tmp_path: Path, runner) -> None:
    healthy = tmp_path / "healthy"
    healthy.touch()
    config = (
        '[tool.keelrun.processes.web]\nready = "http:/ready"\nhealth = "http:/health"\n'
        "health_interval = 0.5\nhealth_retries = 5\nready_interval = 0.2\n"
        '[tool.keelrun.processes.worker]\ndepends_on = ["web"]\n'
    )
    app = make_app(
        tmp_path / "app",
        f"web: {server('file', str(healthy))}\nworker: echo worker up; exec sleep 1000\n",
        pyproject=config,
    )
    k = runner.start(app, "--no-timestamp", "-p", str(free_port()))
    k.wait_for_line(r"^keelrun\s+\| web\.1 is ready: HTTP 200$", 10)
    k.wait_for_line(r"^worker\.1\s+\| worker up$", 10)
    assert k.ps()["web.1"]["health"] == "ok"
    healthy.unlink()  # the server now answers 503
    k.wait_for_line(r"^keelrun\s+\| web\.1 health check failed \(1/5\): HTTP 503$", 10)
    row = k.ps()["web.1"]
    assert (row["state"], row["health"]) == ("ready", "failing")
    [printed] = [r for r in json.loads(k.client("ps", "--json").stdout) if r["name"] == "web.1"]
    assert list(printed) == SPEC_KEYS and printed["health"] == "failing"
    table = k.client("ps").stdout
    assert "ready (failing " in table and "/5)" in table
    healthy.touch()
    wait_until(lambda: k.ps()["web.1"]["health"] == "ok", 10, "healthy again")
    assert "ready (failing" not in k.client("ps").stdout
    assert k.terminate() == 0


def test_unhealthy_is_restarted_and_max_restarts_ends_a_type_never_healthy(
    tmp_path: Path, keelrun
) -> None:
    config = (
        '[tool.keelrun.processes.web]\nhealth = "http:/health"\n'
        "health_interval = 0.2\nhealth_retries = 2\n"
    )
    app = make_app(
        tmp_path,
        f"web: {server('http', '500')}\nworker: exec sleep 1000\n",
        pyproject=config,
    )
    args = ("start", "--log-format", "json", "--max-restarts", "1", "-p", str(free_port()))
    run = keelrun.start(*args, cwd=app)
    assert run.wait_exit(30) == 1, "netserver exits 0 on SIGTERM: a failure all the same"
    unhealthy = run.events("process_unhealthy")
    assert len(unhealthy) == 2 and {e["level"] for e in unhealthy} == {"error"}
    assert "2 health checks failed in a row: HTTP 500" in unhealthy[0]["msg"]
    failed = run.events("health_check_failed")
    assert len(failed) == 2 and {e["level"] for e in failed} == {"warning"}
    assert [e["delay_s"] for e in run.events("process_restarting")] == [1.0]
    assert [e["target"] for e in run.events("process_failed")] == ["web.1"]
    started = [e["pid"] for e in run.events("process_started") if e["target"] == "web.1"]
    assert len(set(started)) == 2


def test_exec_probe_runs_in_the_app_with_the_instance_env(tmp_path: Path, runner) -> None:
    config = (
        '[tool.keelrun.processes.web]\nready = \'exec:test "$PS:$PORT" = "web.1:$EXPECT" '
        "&& test -f flag'\nready_interval = 0.1\n"
    )
    port = free_port()
    app = make_app(tmp_path / "app", "web: exec sleep 1000\n", pyproject=config)
    k = runner.start(app, "--no-timestamp", "-p", str(port), env=runner.env(EXPECT=str(port)))
    k.wait_for_line(r"started web\.1", 10)
    assert k.ps()["web.1"]["state"] == "starting"
    (app / "flag").touch()  # relative to the app root, where the probe runs
    k.wait_for_line(r"^keelrun\s+\| web\.1 is ready: exit status 0$", 10)
    assert k.terminate() == 0


def test_an_exec_probe_still_running_at_its_timeout_is_killed_whole(
    tmp_path: Path, keelrun
) -> None:
    config = (
        "[tool.keelrun.processes.web]\n"
        "ready = 'exec:sleep 60 & echo $! >> probe.pids; echo $$ >> probe.pids; wait'\n"
        "probe_timeout = 0.5\nready_interval = 0.1\nready_timeout = 2\n"
    )
    app = make_app(tmp_path, "web: exec sleep 1000\n", pyproject=config)
    run = keelrun.start("start", "--log-format", "json", "--max-restarts", "0", cwd=app)
    status = run.wait_exit(30)
    assert status == 128 + 15, "web stopped at its ready timeout: a failed start"
    [timeout] = run.events("ready_timeout")
    assert "the last: still running after 0.5s: killed" in timeout["msg"]
    assert timeout["level"] == "error"
    pids = [int(p) for p in (app / "probe.pids").read_text().split()]
    assert len(pids) >= 4, "two tries at least, each a shell and its sleep"
    assert not wait_gone(pids, 5), "the probe's shell and its background sleep are gone"


def test_a_port_owned_by_another_process_keeps_the_instance_starting(
    tmp_path: Path, keelrun
) -> None:
    config = (
        '[tool.keelrun.processes.web]\nready = "port"\nready_timeout = 1.5\n'
        '[tool.keelrun.processes.worker]\ndepends_on = ["web"]\n'
    )
    app = make_app(
        tmp_path, "web: exec sleep 1000\nworker: echo worker started\n", pyproject=config
    )
    with socket.socket() as taken:  # someone else's server on web's port
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ("start", "--log-format", "json", "--max-restarts", "0", "-p", str(port))
        run = keelrun.start(*args, cwd=app)
        assert run.wait_exit(20) == 128 + 15
    assert not run.events("process_ready")
    [timeout] = run.events("ready_timeout")
    assert f"port {port} is held by a process that is not this instance's" in timeout["msg"]
    assert not any(r["proc"] == "worker.1" for r in run.records()), "worker never started"
    assert f"port {port} of web.1 is already in use" in run.stderr


def test_a_port_the_instance_binds_through_a_child_makes_it_ready(tmp_path: Path, keelrun) -> None:
    config = '[tool.keelrun.processes.web]\nready = "port"\n'
    app = make_app(tmp_path, f"web: {server('listen', '--grandchild')}\n", pyproject=config)
    run = keelrun.start("start", "--log-format", "json", "-p", str(free_port()), cwd=app)
    run.wait_for_line(r'"event": "process_ready"', 10)
    worker = int(run.wait_for_match(r"listening \d+ pid (\d+)", 5).group(1))
    [ready] = run.events("process_ready")
    assert f"(pid {worker})" in ready["msg"] and ready["level"] == "info"
    assert alive(worker)
    run.send(15)
    assert run.wait_exit() == 0
