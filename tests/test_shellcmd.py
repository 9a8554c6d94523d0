"""A lone simple command is exec'd by its shell, so the app is the instance's process."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest
from conftest import make_app

from keelrun.supervisor.shellcmd import exec_form


@pytest.mark.parametrize(
    "command",
    [
        "python3 web.py",
        "gunicorn app:app --bind 0.0.0.0:$PORT",
        "sleep 1 > /dev/null 2>&1",
        "echo $(date)",
        "./bin/worker --queue=default",
    ],
)
def test_simple_commands_are_execd(command: str) -> None:
    assert exec_form(command) == "exec " + command


@pytest.mark.parametrize(
    "command",
    [
        "echo $$; sleep 1",
        "sleep 1 & sleep 2",
        "a | b",
        "cd x && y",
        "FOO=1 python x",
        "exec sleep 1",
        "(sleep 1)",
        "if true; then x; fi",
        "trap '' TERM; sleep 1",
        "cd /tmp",
        "ulimit -n 64",
        "'quoted' arg",
        "{ echo a; }",
        "a\nb",
    ],
)
def test_everything_else_is_left_to_the_shell(command: str) -> None:
    assert exec_form(command) == command


APP = """\
import os, signal, sys, time
def stop(*_):
    print("stopping", flush=True)
    time.sleep(0.3)
    print("stopped", flush=True)
    sys.exit(7)
signal.signal(signal.SIGTERM, stop)
print("pid", os.getpid(), flush=True)
while True:
    time.sleep(1)
"""


def test_the_app_is_the_leader_and_its_status_and_last_lines_are_its_own(
    tmp_path: Path, keelrun
) -> None:
    app = make_app(tmp_path, f"web: {sys.executable} app.py\n")
    (app / "app.py").write_text(APP)
    run = keelrun.start("start", "--no-timestamp", "--log-format", "json", cwd=app)
    run.wait_for_line(r'"msg": "pid \d+"')
    app_pid = next(int(r["msg"].split()[1]) for r in run.records() if r.get("proc") == "web.1")
    started = run.events("process_started")
    assert started[0]["pid"] == app_pid  # no shell in between
    run.send(signal.SIGTERM)
    assert run.wait_exit() == 0
    records = run.records()
    exited = next(i for i, r in enumerate(records) if r.get("event") == "process_exited")
    assert records[exited]["status"] == 7  # the app's own status, not the shell's 143
    stopped = next(i for i, r in enumerate(records) if r.get("msg") == "stopped")
    assert stopped < exited  # its last line comes before its exit
