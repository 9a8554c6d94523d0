"""Crashes: restart policies, back-off, giving up, and keelrun's exit status."""

from __future__ import annotations

import datetime as dt
import os
import signal
from pathlib import Path

import pytest
from conftest import make_app

pytestmark = pytest.mark.timeout(30)

JSON = ("--log-format", "json")


def ts(event: dict) -> float:
    return dt.datetime.fromisoformat(event["ts"].replace("Z", "+00:00")).timestamp()


def starts(run, name: str) -> list[dict]:
    return [e for e in run.events("process_started") if e["target"] == name]


def test_on_failure_restarts_with_backoff_then_gives_up(tmp_path: Path, keelrun) -> None:
    app = make_app(tmp_path, "web: echo run; exit 3\nworker: echo up; exec sleep 1000\n")
    run = keelrun.start("start", *JSON, "--max-restarts", "1", cwd=app)
    assert run.wait_exit() == 3, "exit status of the process that failed"
    restarting = run.events("process_restarting")
    assert [e["target"] for e in restarting] == ["web.1"]
    assert restarting[0]["delay_s"] == 1.0
    assert "1s" in restarting[0]["msg"], "the event says when the next try is"
    web_starts = starts(run, "web.1")
    assert len(web_starts) == 2, "up to 1 restart after the first start"
    assert ts(web_starts[1]) - ts(web_starts[0]) >= 0.99, "the announced back-off is honoured"
    failed = run.events("process_failed")
    assert [(e["target"], e["status"]) for e in failed] == [("web.1", 3)]
    # The failure stopped everything else, and the stop came after the failure.
    records = run.records()
    kinds = [r.get("event") for r in records]
    assert kinds.index("process_failed") < kinds.index("stopping")
    assert any(e["target"] == "worker.1" for e in run.events("process_exited")), (
        "worker.1 was stopped"
    )


def test_exit_0_under_on_failure_stays_exited(tmp_path: Path, keelrun) -> None:
    app = make_app(tmp_path, "web: echo once\n")
    run = keelrun.start("start", *JSON, cwd=app)
    assert run.wait_exit() == 0
    assert len(starts(run, "web.1")) == 1
    assert run.events("process_restarting") == []
    assert [e["status"] for e in run.events("all_exited")] == [0]


def test_restart_always_restarts_clean_exits(tmp_path: Path, keelrun) -> None:
    app = make_app(tmp_path, "web: echo run\n")
    run = keelrun.start("start", *JSON, "--restart", "always", "--max-restarts", "0", cwd=app)
    i = run.wait_for_line(r'"event": "process_restarting"')
    run.wait_for_line(r'"event": "process_started"', start=i)
    run.wait_for_line(r'"msg": "run"', start=i)
    run.send(signal.SIGTERM)
    assert run.wait_exit() == 0
    assert len(starts(run, "web.1")) >= 2
    assert run.events("process_failed") == []


def test_restart_never_leaves_a_failed_process_exited(tmp_path: Path, keelrun) -> None:
    app = make_app(tmp_path, "web: exit 4\nworker: echo up; exec sleep 1000\n")
    run = keelrun.start("start", *JSON, "--restart", "never", cwd=app)
    run.wait_for_line(r'"event": "process_exited".*"web.1"')
    run.wait_for_line(r'"proc": "worker.1".*"msg": "up"')
    run.send(signal.SIGTERM)
    assert run.wait_exit() == 0, "a requested stop exits 0"
    assert len(starts(run, "web.1")) == 1
    assert run.events("process_restarting") == []


def test_restart_never_exits_with_first_failure_when_all_ended(tmp_path: Path, keelrun) -> None:
    # a fails first (4), then b (5) once the test lets it, c succeeds: status 4.
    fifo = tmp_path / "b.go"
    os.mkfifo(fifo)
    app = make_app(tmp_path, f"a: exit 4\nb: read x < {fifo}; exit 5\nc: exit 0\n")
    run = keelrun.start("start", *JSON, "--restart", "never", cwd=app)
    run.wait_for_line(r'"event": "process_exited".*"a.1"')
    with open(fifo, "w"):
        pass  # b reads EOF and exits 5
    assert run.wait_exit() == 4
    ended = [(e["target"], e["status"]) for e in run.events("process_exited")]
    assert sorted(ended) == [("a.1", 4), ("b.1", 5), ("c.1", 0)]


def test_all_exit_0_gives_0(tmp_path: Path, keelrun) -> None:
    app = make_app(tmp_path, "a: true\nb: echo b\n")
    run = keelrun.start("start", *JSON, "-m", "a=3", cwd=app)
    assert run.wait_exit() == 0
    assert len(run.events("process_exited")) == 4


@pytest.mark.parametrize(("sig", "name"), [(9, "SIGKILL"), (15, "SIGTERM"), (10, "SIGUSR1")])
def test_death_by_signal_gives_128_plus_n(tmp_path: Path, keelrun, sig: int, name: str) -> None:
    app = make_app(tmp_path, f"web: kill -{sig} $$\n")
    run = keelrun.start("start", *JSON, "--max-restarts", "0", cwd=app)
    assert run.wait_exit() == 128 + sig
    exited = run.events("process_exited")
    assert [e["status"] for e in exited] == [128 + sig]
    assert name in exited[0]["msg"]
    assert run.events("process_failed")


def test_death_by_signal_is_restarted_under_on_failure(tmp_path: Path, keelrun) -> None:
    app = make_app(tmp_path, "web: kill -9 $$\n")
    run = keelrun.start("start", *JSON, "--max-restarts", "1", cwd=app)
    assert run.wait_exit() == 137
    assert len(starts(run, "web.1")) == 2


def test_restart_never_with_signal_death_exits_128_plus_n(tmp_path: Path, keelrun) -> None:
    app = make_app(tmp_path, "web: kill -15 $$\n")
    run = keelrun.start("start", *JSON, "--restart", "never", cwd=app)
    assert run.wait_exit() == 143
    assert run.events("process_failed") == []
    assert [e["status"] for e in run.events("all_exited")] == [143]


def test_command_that_cannot_run_is_a_failed_start(tmp_path: Path, keelrun) -> None:
    app = make_app(tmp_path, "web: ./no-such-program\n")
    run = keelrun.start("start", *JSON, "--max-restarts", "0", cwd=app)
    assert run.wait_exit() == 127, "the shell's 'not found' status"
    assert "Traceback" not in run.stderr
