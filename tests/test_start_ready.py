"""Readiness: ready = "port" / "log:REGEX", depends_on, ready_timeout."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_app
from support import py
from support.ports import free_port

pytestmark = pytest.mark.timeout(30)


def position(records: list[dict], pred) -> int:
    return next(i for i, r in enumerate(records) if pred(r))


def is_event(event: str, target: str):
    return lambda r: r.get("event") == event and r.get("target") == target


def msg_of(proc: str, prefix: str):
    return lambda r: r["proc"] == proc and r["msg"].startswith(prefix)


CONFIG_PORT = """
[tool.keelrun.processes.web]
ready = "port"
[tool.keelrun.processes.worker]
depends_on = ["web"]
"""


def test_port_readiness_holds_dependents_until_web_listens(tmp_path: Path, keelrun) -> None:
    app = make_app(
        tmp_path,
        f"web: exec {py('listener.py', '0.5')}\nworker: echo worker-started\nclock: echo tick\n",
        pyproject=CONFIG_PORT,
    )
    run = keelrun.start("start", "--log-format", "json", "-p", str(free_port()), cwd=app)
    run.wait_for_line(r'"worker-started"')
    records = run.records()
    listening = position(records, msg_of("web.1", "listening on"))
    ready = position(records, is_event("process_ready", "web.1"))
    worker = position(records, is_event("process_started", "worker.1"))
    assert listening < ready < worker
    assert any(r.get("event") == "process_held" and r["target"] == "worker.1" for r in records)
    # clock depends on nothing: not held back by web's late bind.
    assert position(records, is_event("process_started", "clock.1")) < listening
    run.send(15)
    assert run.wait_exit() == 0


def test_log_readiness(tmp_path: Path, keelrun) -> None:
    config = CONFIG_PORT.replace('"port"', r'"log:^Listening on \\d+$"')
    app = make_app(
        tmp_path,
        # A near miss first: the pattern is a real regex, searched per line.
        'web: echo "Listening on soon"; sleep 0.3; echo "Listening on 8080"; exec sleep 1000\n'
        "worker: echo worker-started; exec sleep 1000\n",
        pyproject=config,
    )
    run = keelrun.start("start", "--log-format", "json", cwd=app)
    run.wait_for_line(r'"worker-started"')
    records = run.records()
    near_miss = position(records, msg_of("web.1", "Listening on soon"))
    line = position(records, msg_of("web.1", "Listening on 8080"))
    ready = position(records, is_event("process_ready", "web.1"))
    assert near_miss < line < ready < position(records, is_event("process_started", "worker.1"))
    assert "web.1" in records[ready]["msg"]
    run.send(15)
    assert run.wait_exit() == 0


def test_ready_event_in_text_logs(tmp_path: Path, keelrun) -> None:
    config = '[tool.keelrun.processes.web]\nready = "log:up"\n'
    app = make_app(tmp_path, "web: echo up; exec sleep 1000\n", pyproject=config)
    run = keelrun.start("start", "--no-timestamp", cwd=app)
    run.wait_for_line(r"^keelrun \| web\.1 is ready")
    run.send(15)
    assert run.wait_exit() == 0


def test_ready_timeout_stops_and_counts_as_failed_start(tmp_path: Path, keelrun) -> None:
    config = (
        '[tool.keelrun.processes.web]\nready = "port"\nready_timeout = 0.5\n'
        '[tool.keelrun.processes.worker]\ndepends_on = ["web"]\n'
    )
    app = make_app(
        tmp_path,
        "web: echo waiting; exec sleep 1000\nworker: echo worker-started\n",
        pyproject=config,
    )
    run = keelrun.start(
        "start", "--log-format", "json", "--max-restarts", "0", "-p", str(free_port()), cwd=app
    )
    assert run.wait_exit() == 128 + 15, "the status of web, stopped by SIGTERM"
    assert [e["target"] for e in run.events("ready_timeout")] == ["web.1"]
    assert [e["target"] for e in run.events("process_failed")] == ["web.1"]
    assert not any(r["proc"] == "worker.1" for r in run.records()), "worker never started"


def test_ready_timeout_obeys_max_restarts(tmp_path: Path, keelrun) -> None:
    config = '[tool.keelrun.processes.web]\nready = "log:never"\nready_timeout = 0.3\n'
    app = make_app(
        tmp_path, "web: trap 'exit 0' TERM; echo waiting; sleep 1000 & wait\n", pyproject=config
    )
    run = keelrun.start("start", "--log-format", "json", "--max-restarts", "1", cwd=app)
    status = run.wait_exit()
    assert status != 0, "a ready timeout is a failure even if the process exits 0 on SIGTERM"
    assert len(run.events("ready_timeout")) == 2
    assert len(run.events("process_restarting")) == 1
    assert len(run.events("process_failed")) == 1
