"""Resource limits: out of file descriptors, and hundreds of instances."""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from support.faults import Runs, write_app
from support.procs import alive, poll_until

FD_LIMIT = 64


def _limit_fds() -> None:
    # Runs in the forked child just before exec: only keelrun gets the limit.
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


def test_scaling_past_the_fd_limit(tmp_path: Path, fault_runs: Runs) -> None:
    app = write_app(tmp_path / "app", "s: sleep 1000\n")
    # --max-restarts 0: a failed start would stop everything, but a spawn that
    # keelrun itself could not make is not the app failing: it is retried.
    run = fault_runs(
        "start", "--no-timestamp", "-m", "s=3", "--max-restarts", "0", cwd=app,
        preexec_fn=_limit_fds,
    )  # fmt: skip
    run.wait_for_socket()
    run.wait_for_line(r"started s\.3")
    first = {r["name"]: r["pid"] for r in run.ps()}
    assert len(first) == 3

    # Two pipes per instance: 40 instances need more than 64 descriptors.
    start = run.mark()
    result = run.client("scale", "s=40")
    assert result.returncode == 0, result.stderr
    m = run.wait_for_line(r"cannot start (s\.\d+): (.*)", 10, start)
    assert "Too many open files" in m.group(2)
    # Retried after its back-off, and keelrun is still there.
    run.wait_for_line(rf"cannot start {re.escape(m.group(1))}: .*retrying in 2s", 10, start)

    # keelrun is alive, answers, and still supervises what it started before.
    assert run.proc.poll() is None
    rows = {r["name"]: r for r in run.ps()}
    for name, pid in first.items():
        assert rows[name]["pid"] == pid and rows[name]["state"] == "running"
        assert alive(pid)
    running = [r for r in rows.values() if r["state"] == "running"]
    assert 3 < len(running) < 40

    # Scaling back down frees the descriptors and stops the extras gracefully.
    assert run.client("scale", "s=2").returncode == 0
    assert poll_until(lambda: len(run.ps()) == 2, 10), run.ps()
    assert not alive(first["s.3"])
    start = run.mark()
    result = run.client("scale", "s=+1")  # a spawn works again once fds are free
    assert result.returncode == 0, result.stderr
    run.wait_for_line(r"started s\.3", 5, start)

    assert run.client("stop").returncode == 0
    assert run.wait(15) == 0
    assert not any(alive(p) for p in first.values())


def _start_500(tmp_path: Path, fault_runs: Runs):
    app = write_app(tmp_path / "app", "sleeper: sleep 1000\n")
    run = fault_runs("start", "--no-timestamp", "-m", "sleeper=500", "-t", "5", cwd=app)
    run.wait_for_line(r"started sleeper\.500 ", 30)
    pids = [int(m) for m in re.findall(r"started sleeper\.\d+ \(pid (\d+)", "\n".join(run.lines))]
    assert len(set(pids)) == 500
    assert poll_until(lambda: all(alive(p) for p in pids), 10)
    run.wait_for_socket()
    return run, pids


def test_500_instances_start_and_stop_within_the_grace(tmp_path: Path, fault_runs: Runs) -> None:
    run, pids = _start_500(tmp_path, fault_runs)
    started = time.monotonic()
    run.signal(signal.SIGTERM)
    assert run.wait(30) == 0
    assert time.monotonic() - started < 5 + 3  # within the grace, plus margin
    stopped = [line for line in run.lines if "killed by SIGTERM" in line]
    assert len(stopped) == 500
    assert not any(alive(p) for p in pids)
    assert run.leftovers() == []


def test_500_instances_listed_by_ps_promptly(tmp_path: Path, fault_runs: Runs) -> None:
    """Regression: ps walked all of /proc once per instance, inside the loop (15-30 s)."""
    run, pids = _start_500(tmp_path, fault_runs)
    began = time.monotonic()
    try:
        listed = run.client("ps", "--json", timeout=5)
    except subprocess.TimeoutExpired:
        pytest.fail("keelrun ps took more than 5 s for 500 instances")
    assert time.monotonic() - began < 5
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert sorted(r["name"] for r in rows) == sorted(f"sleeper.{n}" for n in range(1, 501))
    assert sorted(r["pid"] for r in rows) == sorted(pids)
    assert all(r["state"] == "running" for r in rows)
    run.signal(signal.SIGTERM)
    assert run.wait(30) == 0


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_over(pid: int, seconds: float) -> float:
    before = _cpu_seconds(pid)
    time.sleep(seconds)  # a measurement window, not a synchronisation
    return _cpu_seconds(pid) - before


def test_out_of_fds_with_a_client_waiting_does_not_spin(tmp_path: Path, fault_runs: Runs) -> None:
    """Regression: accept() failing with EMFILE left the listening socket armed, and the
    level-triggered loop spun at 100% CPU while a client waited."""
    app = write_app(tmp_path / "app", "s: sleep 1000\n")
    run = fault_runs("start", "--no-timestamp", "-m", "s=1", cwd=app, preexec_fn=_limit_fds)
    run.wait_for_socket()
    assert run.client("scale", "s=40").returncode == 0
    run.wait_for_line(r"Too many open files", 10)
    assert _cpu_over(run.pid, 1.0) < 0.3, "busy before any client waits"

    fd_dir = f"/proc/{run.pid}/fd"
    idle: list[socket.socket] = []
    try:
        # Idle connections take keelrun's last descriptors; one more waits in the backlog.
        while (before := len(os.listdir(fd_dir))) < FD_LIMIT and len(idle) < FD_LIMIT:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(str(run.socket_path))
            idle.append(s)
            # Accepted: keelrun holds one more descriptor.
            assert poll_until(lambda b=before: len(os.listdir(fd_dir)) > b, 5)
        waiting = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        waiting.connect(str(run.socket_path))
        idle.append(waiting)
        assert run.proc.poll() is None
        busy = _cpu_over(run.pid, 1.0)
    finally:
        for s in idle:
            s.close()
    assert run.request("ping")["ok"]  # served again once descriptors are free
    assert run.client("stop").returncode == 0
    assert run.wait(15) == 0
    assert busy < 0.3, f"keelrun used {busy:.2f} s of CPU in 1 s while out of descriptors"
