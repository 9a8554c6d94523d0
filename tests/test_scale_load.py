"""A thousand instances under one keelrun (README "Scale and load"): real processes.

The bounds are the contract's: `ps --json` within 0.5 s with 1,000 running,
every instance of `scale worker=+100` spawned and heard from within 1 s, a stop
of all within the grace plus 1 s. Performance as such is measured in
benchmarks/scale.py.
"""

from __future__ import annotations

import re
import resource
import signal
import socket
import time
from pathlib import Path

import pytest
from conftest import make_app
from support.runner import Keelrun
from support.wire import read_replies, request_line

pytestmark = pytest.mark.timeout(120)

WORKER = 'worker: echo "$PS up"; exec sleep 1000\n'


def _limits(pid: int) -> tuple[int, int]:
    text = Path(f"/proc/{pid}/limits").read_text()
    m = re.search(r"Max open files\s+(\d+)\s+(\d+)", text)
    assert m is not None, text
    return int(m.group(1)), int(m.group(2))


def _timed(path: Path, cmd: str, args: dict | None = None) -> tuple[float, list[dict]]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(path))
        t0 = time.monotonic()
        s.sendall(request_line(cmd, args))
        replies = read_replies(s)
        return time.monotonic() - t0, replies


def _count(run: Keelrun, pattern: bytes, start: int = 0) -> int:
    rx = re.compile(pattern)
    with run._cond:
        return sum(1 for line in run.lines[start:] if rx.search(line))


def _count_up(run: Keelrun, start: int = 0) -> int:
    return _count(run, rb" up$", start)


def test_keelrun_raises_its_fd_limit_but_not_its_childrens(tmp_path: Path, keelrun) -> None:
    app = make_app(tmp_path, WORKER)
    run = keelrun.start("start", cwd=app, wrapper=["prlimit", "--nofile=1024:4096", "--"])
    run.wait_for_line(r"worker\.1\s+\| worker\.1 up")
    assert _limits(run.pid) == (4096, 4096)
    child = int(run.wait_for_match(r"started worker\.1 \(pid (\d+)").group(1))
    assert _limits(child) == (1024, 4096)
    run.send(signal.SIGTERM)
    assert run.wait_exit() == 0


def test_a_thousand_instances(tmp_path: Path, keelrun) -> None:
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 4000:
        pytest.skip("the hard fd limit here is below what 1,000 instances need")
    app = make_app(tmp_path, WORKER)
    # A soft limit of 1024 would not hold 2,000 pipe ends: keelrun raises it.
    run = keelrun.start(
        "start",
        "-m",
        "worker=1000",
        "-t",
        "5",
        cwd=app,
        wrapper=["prlimit", f"--nofile=1024:{resource.getrlimit(resource.RLIMIT_NOFILE)[1]}", "--"],
    )
    deadline = time.monotonic() + 60
    while _count_up(run) < 1000:
        assert time.monotonic() < deadline, f"{_count_up(run)} of 1000 up"
        run.wait_for_line(
            r" up$", timeout=max(0.1, deadline - time.monotonic()), start=len(run.lines)
        )
    sock = app / ".keelrun.sock"

    # ps --json within 0.5 s, every row there.
    took, replies = _timed(sock, "ps")
    assert replies[0]["ok"] and len(replies[0]["result"]) == 1000
    assert took < 0.5, took
    assert all(row["state"] == "running" and row["rss_bytes"] for row in replies[0]["result"])

    # scale +100: all spawned and heard from within 1 s of the request.
    mark = len(run.lines)
    t0 = time.monotonic()
    took, replies = _timed(sock, "scale", {"changes": ["worker=+100"]})
    assert replies[0]["result"] == {"worker": {"from": 1000, "to": 1100}}
    while _count_up(run, mark) < 100:
        left = t0 + 1.0 - time.monotonic()
        assert left > 0, f"{_count_up(run, mark)} of 100 heard from within 1 s"
        run.wait_for_line(r" up$", timeout=left, start=len(run.lines))
    up = {
        line.split(b"| ")[1].split()[0].decode()
        for line in run.lines[mark:]
        if line.endswith(b" up")
    }
    assert up == {f"worker.{n}" for n in range(1001, 1101)}

    # Scaled back down: once the removed instances have ended, they leave ps.
    mark = len(run.lines)
    _took, replies = _timed(sock, "scale", {"changes": ["worker=1000"]})
    assert replies[0]["ok"]
    deadline = time.monotonic() + 15
    while _count(run, rb"worker\.1\d\d\d \(pid \d+\) killed by SIGTERM", mark) < 100:
        left = deadline - time.monotonic()
        assert left > 0, "the 100 removed instances did not all stop"
        run.wait_for_line(r"killed by SIGTERM", timeout=left, start=len(run.lines))
    _took, replies = _timed(sock, "ps")
    names = {row["name"] for row in replies[0]["result"]}
    assert names == {f"worker.{n}" for n in range(1, 1001)}

    # A stop of all 1,000 within the grace (5 s) plus 1 s.
    t0 = time.monotonic()
    run.send(signal.SIGTERM)
    assert run.wait_exit(timeout=6.0) == 0
    assert time.monotonic() - t0 < 6.0
