"""`keelrun scale` and `keelrun ps` against a real `keelrun start`, checked in /proc."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest
from support.control import TRAPPING, Keelrun, Runner
from support.procs import alive, proc_environ

pytestmark = pytest.mark.timeout(60)

PROCFILE = f"web: {TRAPPING}\nworker: {TRAPPING}\nclock: {TRAPPING}\n"
BASE = 7000  # web 7000, worker 7100, clock 7200 (type k gets base + 100k)
PS_KEYS = {
    "name",
    "type",
    "pid",
    "state",
    "uptime_s",
    "restarts",
    "exit_status",
    "cpu_percent",
    "rss_bytes",
    "port",
    "command",
    "health",  # README "Health: readiness, liveness, notify"
    "status",
}
STATES = {"starting", "running", "ready", "stopping", "backoff", "stopped", "exited", "failed"}


def _start(runner: Runner, *args: str) -> Keelrun:
    k = runner.start(runner.app(PROCFILE), "-p", str(BASE), *args)
    return k


def _ps_json(k: Keelrun) -> dict[str, dict]:
    r = k.client("ps", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    return {row["name"]: row for row in rows}


def _exited(k: Keelrun, name: str, since: int = 0) -> None:
    k.wait_for_line(rf"keelrun\s+\| {re.escape(name)} \(pid \d+\) ", 10, since)


def _one_line_error(r, status: int) -> str:  # type: ignore[no-untyped-def]
    assert r.returncode == status, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("keelrun: "), r.stderr
    return lines[0]


def test_scale_up_starts_real_processes_with_ports_and_names(runner: Runner) -> None:
    k = _start(runner)
    k.wait_ready("web.1", "worker.1", "clock.1")
    r = k.client("scale", "worker=3")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "worker: 1 -> 3"
    k.wait_ready("worker.2", "worker.3")

    rows = _ps_json(k)
    assert sorted(rows) == ["clock.1", "web.1", "worker.1", "worker.2", "worker.3"]
    for n in (1, 2, 3):
        row = rows[f"worker.{n}"]
        assert row["type"] == "worker"
        assert row["port"] == BASE + 100 + n - 1
        assert alive(row["pid"])
        env = proc_environ(row["pid"])
        assert env["PORT"] == str(BASE + 100 + n - 1)
        assert env["PS"] == env["DYNO"] == f"worker.{n}"
        k.wait_for_line(rf"worker\.{n}\s+\| worker\.{n} up port={BASE + 100 + n - 1}$")


def test_scale_relative_several_at_once_and_graceful_scale_down(runner: Runner) -> None:
    k = _start(runner, "-m", "worker=3")
    k.wait_ready("web.1", "worker.1", "worker.2", "worker.3", "clock.1")
    before = k.ps()

    assert k.client("scale", "worker=+1").returncode == 0
    k.wait_ready("worker.4")
    assert k.ps()["worker.4"]["port"] == BASE + 103

    mark = k.mark()
    r = k.client("scale", "worker=-2", "web=+1", "clock=0")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["worker: 4 -> 2", "web: 1 -> 2", "clock: 1 -> 0"]
    # The highest-numbered workers are stopped gracefully: their TERM trap runs.
    for name in ("worker.4", "worker.3", "clock.1"):
        k.wait_for_line(rf"{re.escape(name)}\s+\| {re.escape(name)} got TERM$", 10, mark)
        _exited(k, name, mark)
    k.wait_ready("web.2")

    after = k.ps()
    assert sorted(after) == ["web.1", "web.2", "worker.1", "worker.2"]
    for name in ("web.1", "worker.1", "worker.2"):
        assert after[name]["pid"] == before[name]["pid"], name
        assert alive(after[name]["pid"])
    assert not alive(before["worker.3"]["pid"])
    assert not alive(before["clock.1"]["pid"])
    assert after["web.2"]["port"] == BASE + 1
    assert proc_environ(after["web.2"]["pid"])["PS"] == "web.2"
    assert "got TERM" not in "".join(
        line for line in k.lines[mark:] if re.search(r"(worker\.[12]|web\.1)\s+\|", line)
    )


def test_scale_a_type_from_zero_and_back(runner: Runner) -> None:
    k = _start(runner, "-m", "clock=0")
    k.wait_ready("web.1", "worker.1")
    assert "clock.1" not in k.ps()
    assert k.client("scale", "clock=2").returncode == 0
    k.wait_ready("clock.1", "clock.2")
    rows = k.ps()
    assert [rows[f"clock.{n}"]["port"] for n in (1, 2)] == [BASE + 200, BASE + 201]
    assert proc_environ(rows["clock.2"]["pid"])["PORT"] == str(BASE + 201)


def test_scale_bad_input_is_exit_2_with_one_line(runner: Runner) -> None:
    k = _start(runner)
    k.wait_ready("worker.1")
    pids = {n: r["pid"] for n, r in k.ps().items()}

    line = _one_line_error(k.client("scale", "nosuch=2"), 2)
    assert "nosuch" in line
    for bad in ("worker", "worker=abc", "worker=+x", "=3", "worker=1.5"):
        _one_line_error(k.client("scale", bad), 2)
    _one_line_error(k.client("scale", "worker=2", "worker=3"), 2)
    # An unknown type among good ones changes nothing.
    _one_line_error(k.client("scale", "worker=3", "nosuch=1"), 2)
    assert {n: r["pid"] for n, r in k.ps().items()} == pids


def test_scale_absurd_count_is_an_input_error(runner: Runner) -> None:
    k = _start(runner)
    k.wait_ready("worker.1")
    huge = "9" * 5000
    _one_line_error(k.client("scale", f"worker={huge}"), 2)
    _one_line_error(k.client("scale", "worker=1000000"), 2)
    reply = k.request("scale", {"changes": [f"worker={huge}"]})
    assert reply["ok"] is False and reply["kind"] == "input"
    assert k.ps()["worker.1"]["state"] == "running"


CLIENT_COMMANDS = [
    ("scale", "web=2"),
    ("ps",),
    ("ps", "--json"),
    ("stop",),
    ("stop", "web"),
    ("restart",),
    ("signal", "USR1", "web"),
    ("logs",),
    ("reload",),
]


def test_every_client_exits_1_when_no_keelrun_runs(runner: Runner, tmp_path: Path) -> None:
    app = runner.app(PROCFILE, name="idle")
    dead = socket.socket(socket.AF_UNIX)
    k = Keelrun.__new__(Keelrun)  # only its client(): nothing is started here
    k.app, k.env = app, runner.env()
    for args in CLIENT_COMMANDS:
        line = _one_line_error(k.client(*args), 1)
        assert "no keelrun is running" in line and ".keelrun.sock" in line, line
    # A socket file with nobody listening (a killed keelrun's) reads the same.
    dead.bind(str(app / ".keelrun.sock"))
    dead.close()
    line = _one_line_error(k.client("ps"), 1)
    assert "no keelrun is running" in line


def test_ps_table_has_every_column(runner: Runner) -> None:
    k = runner.start(runner.app(f"web: {TRAPPING}\nonce: echo bye\n"), "-p", str(BASE))
    k.wait_ready("web.1")
    _exited(k, "once.1")
    r = k.client("ps")
    assert r.returncode == 0, r.stderr
    header, *rows = r.stdout.splitlines()
    assert header.split() == [
        "NAME",
        "PID",
        "STATE",
        "UPTIME",
        "RESTARTS",
        "EXIT",
        "CPU%",
        "RSS",
        "PORT",
        "COMMAND",
    ]
    by_name = {row.split()[0]: row for row in rows}
    assert set(by_name) == {"web.1", "once.1"}
    web = by_name["web.1"].split()
    assert web[2] == "running" and web[1].isdigit() and web[8] == str(BASE)
    assert by_name["web.1"].endswith(TRAPPING)
    once = by_name["once.1"].split()
    assert once[1] == "-" and once[2] == "exited" and once[5] == "0"
    assert by_name["once.1"].endswith("echo bye")
    # Aligned: every column starts where its header does.
    for col in ("STATE", "PORT", "COMMAND"):
        at = header.index(col)
        assert all(row[at - 2 : at] == "  " and row[at] != " " for row in rows), col


def test_ps_json_keys_and_values(runner: Runner) -> None:
    k = runner.start(
        runner.app(f"web: {TRAPPING}\nonce: echo bye\nfails: exit 3\n"),
        "-p",
        str(BASE),
        "--restart",
        "never",
    )
    k.wait_ready("web.1")
    _exited(k, "once.1")
    _exited(k, "fails.1")
    rows = _ps_json(k)
    for row in rows.values():
        assert set(row) == PS_KEYS
        assert row["state"] in STATES
        assert isinstance(row["restarts"], int)
    web = rows["web.1"]
    assert web["type"] == "web" and web["state"] == "running" and alive(web["pid"])
    assert isinstance(web["uptime_s"], (int, float)) and web["uptime_s"] >= 0
    assert isinstance(web["cpu_percent"], (int, float))
    assert isinstance(web["rss_bytes"], int) and web["rss_bytes"] > 0
    assert web["port"] == BASE and web["command"] == TRAPPING and web["exit_status"] is None
    assert rows["once.1"]["state"] == "exited" and rows["once.1"]["exit_status"] == 0
    assert rows["once.1"]["pid"] is None and rows["once.1"]["port"] == BASE + 100
    assert rows["fails.1"]["exit_status"] == 3 and rows["fails.1"]["state"] == "exited"
    assert all(r["health"] is None and r["status"] is None for r in rows.values()), "no checks"


# Ignores SIGTERM: only the grace's SIGKILL ends it.
STUBBORN = 'trap \'echo "$PS ignores TERM"\' TERM; echo "$PS up port=$PORT"; ' + (
    "while :; do sleep 30 & wait $!; done"
)


def test_scale_down_uses_the_type_grace_then_kills(runner: Runner) -> None:
    app = runner.app(f"web: {TRAPPING}\nworker: {STUBBORN}\n")
    (app / "keelrun.toml").write_text("timeout = 20\n[processes.worker]\ngrace = 1\n")
    k = runner.start(app, "-m", "worker=2")
    k.wait_ready("web.1", "worker.1", "worker.2")
    pid = k.ps()["worker.2"]["pid"]
    mark = k.mark()
    assert k.client("scale", "worker=1").returncode == 0
    k.wait_for_line(r"worker\.2\s+\| worker\.2 ignores TERM$", 10, mark)
    assert k.ps()["worker.2"]["state"] == "stopping"
    k.wait_for_line(r"keelrun\s+\| worker\.2 still running after 1s: SIGKILL", 10, mark)
    _exited(k, "worker.2", mark)
    rows = k.ps()
    assert sorted(rows) == ["web.1", "worker.1"] and not alive(pid)
    # Scale the last one away too, so that keelrun's own stop (timeout 20) is quick.
    mark = k.mark()
    assert k.client("scale", "worker=0").returncode == 0
    _exited(k, "worker.1", mark)


def test_scale_up_while_scaling_down_keeps_the_instance(runner: Runner) -> None:
    app = runner.app(f"web: {TRAPPING}\nworker: {STUBBORN}\n")
    (app / "keelrun.toml").write_text("[processes.worker]\ngrace = 1\n")
    k = runner.start(app, "-m", "worker=2", "-t", "1")
    k.wait_ready("worker.1", "worker.2")
    mark = k.mark()
    assert k.client("scale", "worker=1").returncode == 0
    k.wait_for_line(r"worker\.2\s+\| worker\.2 ignores TERM$", 10, mark)
    assert k.client("scale", "worker=2").returncode == 0
    # worker.2 is killed after its grace and comes back: scaled up again, it must run.
    k.wait_for_line(r"worker\.2\s+\| worker\.2 up ", 10, mark)
    row = k.ps()["worker.2"]
    assert row["state"] == "running" and alive(row["pid"])
