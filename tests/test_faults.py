"""Hostile children and a hostile environment: keelrun keeps supervising and stops cleanly.

Every test runs the real `python -m keelrun start` with real children; waits
are bounded and event-driven (a line, a reply, a pid gone), and the `runs`
fixture fails the test if any process carrying the run's marker is left.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support.faults import PY, Runs, write_app
from support.procs import alive, poll_until

from keelrun.loop import Loop

MiB = 1024 * 1024


def _script(root: Path, name: str, code: str) -> str:
    """Write a child script into the app; its Procfile command."""
    (root / name).write_text(code)
    return f"exec {PY} {name}"


# ------------------------------------------------------------ closed streams

CLOSE_STDOUT = """
import os, signal, sys, time
signal.signal(signal.SIGUSR1, lambda *a: os._exit(3))
print("up", flush=True)
os.close(1)
print("stdout closed", file=sys.stderr, flush=True)
if "both" in sys.argv:
    os.close(2)
while True:
    time.sleep(60)
"""


def test_child_that_closes_its_output_stays_supervised(tmp_path: Path, fault_runs: Runs) -> None:
    app = tmp_path / "app"
    app.mkdir()
    cmd = _script(app, "closer.py", CLOSE_STDOUT)
    write_app(app, f"out: {cmd}\nboth: {cmd} both\nidle: sleep 1000\n")
    run = fault_runs("start", "--no-timestamp", "--restart", "never", cwd=app)
    run.wait_for_line(r"^out\.1 +\| stdout closed$")
    run.wait_for_line(r"^both\.1 +\| stdout closed$")
    run.wait_for_socket()
    rows = {r["name"]: r for r in run.ps()}
    for name in ("out.1", "both.1"):
        assert rows[name]["state"] == "running", rows[name]
        assert alive(rows[name]["pid"])

    # Its exit is still seen although neither pipe is open any more.
    start = run.mark()
    assert run.client("signal", "USR1", "out", "both").returncode == 0
    run.wait_for_line(rf"out\.1 \(pid {rows['out.1']['pid']}\) exited with status 3", 5, start)
    run.wait_for_line(rf"both\.1 \(pid {rows['both.1']['pid']}\) exited with status 3", 5, start)
    states = {r["name"]: r["state"] for r in run.ps()}
    assert states["out.1"] == states["both.1"] == "exited"
    assert states["idle.1"] == "running"

    assert run.client("stop").returncode == 0
    assert run.wait(10) == 0


# ---------------------------------------------------------- grandchild pipe


@pytest.mark.parametrize("grandchild", ["sleep 1000", "sh -c 'trap \"\" TERM; sleep 1000'"])
def test_exit_seen_while_grandchild_holds_the_pipe(
    tmp_path: Path, fault_runs: Runs, grandchild: str
) -> None:
    app = write_app(
        tmp_path / "app",
        f'leader: {grandchild} & echo "bg $!"; exit 4\nidle: sleep 1000\n',
    )
    run = fault_runs("start", "--no-timestamp", "--restart", "never", "-t", "1", cwd=app)
    m = run.wait_for_line(r"^leader\.1 +\| bg (\d+)$")
    seen = time.monotonic()
    bg = int(m.group(1))
    run.wait_for_line(r"leader\.1 \(pid \d+\) exited with status 4", 5)
    assert time.monotonic() - seen < 2.0, "exit reported late: keelrun waited for the pipe"
    # The rest of the group is stopped (SIGKILL after the 1 s grace if it ignores TERM).
    assert poll_until(lambda: not alive(bg), 5), "grandchild outlived its instance"
    run.wait_for_socket()
    rows = {r["name"]: r for r in run.ps()}
    assert rows["leader.1"]["state"] == "exited" and rows["leader.1"]["exit_status"] == 4
    assert rows["idle.1"]["state"] == "running"
    run.signal(signal.SIGTERM)
    assert run.wait(10) == 0


# ------------------------------------------------------------ stdout EPIPE


def test_own_stdout_closed_stops_children_and_exits_1(tmp_path: Path, fault_runs: Runs) -> None:
    app = write_app(
        tmp_path / "app",
        "tick: while true; do echo tick; sleep 0.05; done\n"
        "quiet: sleep 1000\n"
        "stubborn: trap '' TERM; while true; do sleep 1; done\n",
    )
    r, w = os.pipe()
    run = fault_runs("start", "-t", "1", cwd=app, stdout=w)
    os.close(w)
    seen = b""
    deadline = time.monotonic() + 10
    while b"tick" not in seen:
        assert time.monotonic() < deadline, seen
        ready, _, _ = select.select([r], [], [], 1)
        if ready:
            seen += os.read(r, 65536)
    os.close(r)  # the consumer goes away: the next write gets EPIPE
    started = time.monotonic()
    assert run.wait(15) == 1
    assert time.monotonic() - started < 8  # grace 1 s, then SIGKILL
    assert b"Traceback" not in run.stderr, run.stderr.decode(errors="replace")
    assert run.leftovers() == []


# ------------------------------------------------------ Procfile gone + reload


def test_reload_without_procfile_changes_nothing(tmp_path: Path, fault_runs: Runs) -> None:
    app = write_app(tmp_path / "app", "web: sleep 1000\nworker: sleep 1001\n")
    run = fault_runs("start", "--no-timestamp", cwd=app)
    run.wait_for_socket()
    run.wait_for_line(r"started worker\.1")
    before = {r["name"]: r["pid"] for r in run.ps()}
    (app / "Procfile").unlink()

    result = run.client("reload")
    assert result.returncode == 2, result
    assert "Procfile" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr

    start = run.mark()
    run.signal(signal.SIGHUP)  # the same path from a signal: an event, nothing else
    run.wait_for_line(r"Procfile", 5, start)
    rows = run.ps()
    assert {r["name"]: r["pid"] for r in rows} == before
    assert all(r["state"] == "running" and alive(r["pid"]) for r in rows)
    assert run.proc.poll() is None
    assert run.client("stop").returncode == 0
    assert run.wait(10) == 0


# ------------------------------------------------------------ clock jumps


def test_loop_timers_ignore_wall_clock_jumps(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop's deadlines are monotonic: a wall clock jumping a day either way changes nothing."""
    jumps = iter([86400.0, -86400.0] * 10_000)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + next(jumps))
    loop = Loop()
    fired: list[float] = []
    t0 = time.monotonic()
    loop.call_later(0.2, lambda: fired.append(time.monotonic() - t0))
    loop.call_later(0.3, loop.stop)
    stop_after_5s = threading.Timer(5, lambda: (loop.stop(), loop.wake()))
    stop_after_5s.start()
    try:
        loop.run()
    finally:
        stop_after_5s.cancel()
        loop.close()
    assert len(fired) == 1
    assert 0.19 <= fired[0] < 1.0


# A wall clock that jumps an hour (forwards or backwards) every 0.2 s, in keelrun only.
JUMPY_CLOCK = """
import time
_real = time.time
_start = _real()
def _jumpy():
    now = _real()
    return now + {sign} * 3600.0 * int((now - _start) / 0.2)
time.time = _jumpy
"""


@pytest.mark.parametrize("sign", [1, -1], ids=["forward", "backward"])
def test_grace_and_backoff_survive_clock_jumps(tmp_path: Path, fault_runs: Runs, sign: int) -> None:
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(JUMPY_CLOCK.format(sign=sign))
    app = write_app(
        tmp_path / "app",
        "crash: echo up; exit 1\nstubborn: trap '' TERM; echo up; while true; do sleep 1; done\n",
    )
    from support.runner import base_env

    env = base_env()
    env["PYTHONPATH"] = os.pathsep.join([str(hook), env["PYTHONPATH"]])
    started = time.monotonic()
    run = fault_runs("start", "--no-timestamp", "--max-restarts", "2", "-t", "1", cwd=app, env=env)
    # Back-off 1 s then 2 s: the third failed start comes ~3 s after the first.
    run.wait_for_line(r"restarting crash\.1 in 1s", 10)
    run.wait_for_line(r"restarting crash\.1 in 2s", 10)
    run.wait_for_line(r"crash\.1 failed", 10)
    failed_after = time.monotonic() - started
    assert 2.5 <= failed_after < 8, failed_after
    # Then everything stops; the TERM-ignoring child is killed after its 1 s grace.
    assert run.wait(10) == 1
    total = time.monotonic() - started
    assert total - failed_after >= 0.9 and total < 12, (failed_after, total)


# ------------------------------------------------------------ hostile children

NO_NEWLINE = """
import os
chunk = b"x" * (1024 * 1024)
for _ in range(6):
    os.write(1, chunk)
os.write(1, b"\\nend\\n")
import time
time.sleep(1000)
"""


def test_endless_line_comes_out_in_1mib_pieces(tmp_path: Path, fault_runs: Runs) -> None:
    app = tmp_path / "app"
    app.mkdir()
    write_app(app, f"blob: {_script(app, 'blob.py', NO_NEWLINE)}\n")
    run = fault_runs("start", "--no-timestamp", "--no-prefix", cwd=app)
    run.wait_for_line(r"^end$", 20)
    pieces = [line for line in run.lines if line.startswith("x")]
    assert [len(p) for p in pieces] == [MiB] * 6
    rss_kib = _rss_kib(run.pid)
    assert rss_kib < 150 * 1024, f"keelrun RSS {rss_kib} KiB after a 6 MiB line"
    run.signal(signal.SIGTERM)
    assert run.wait(10) == 0


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        m = re.search(r"^VmRSS:\s+(\d+)", f.read(), re.M)
    assert m
    return int(m.group(1))


ESCAPER = """
import os, signal, sys, time
how = sys.argv[1]
pid = os.fork()
if pid == 0:
    if how == "setsid":
        os.setsid()
    else:
        os.setpgid(0, 0)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("escaped", os.getpid(), os.getpgid(0), flush=True)
    while True:
        time.sleep(60)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
while True:
    time.sleep(60)
"""


@pytest.mark.parametrize("how", ["setsid", "setpgid"])
def test_escaped_term_ignoring_descendant_is_killed_at_stop(
    tmp_path: Path, fault_runs: Runs, how: str
) -> None:
    app = tmp_path / "app"
    app.mkdir()
    write_app(app, f"esc: {_script(app, 'esc.py', ESCAPER)} {how}\n")
    run = fault_runs("start", "--no-timestamp", "-t", "1", cwd=app)
    m = run.wait_for_line(r"escaped (\d+) (\d+)")
    pid, pgid = int(m.group(1)), int(m.group(2))
    assert pgid == pid  # it really left the instance's group
    started = time.monotonic()
    run.signal(signal.SIGTERM)
    assert run.wait(15) == 0
    assert time.monotonic() - started < 6
    assert not alive(pid)
    assert run.leftovers() == []


FORK_TREE = """
import os, signal, sys, time
# A bounded fork bomb: depth 3, fan-out 4 (84 processes); every other leaf
# leaves the group with setsid and ignores SIGTERM.
def grow(depth):
    for i in range(4):
        if os.fork() == 0:
            if depth < 3:
                grow(depth + 1)
            elif i % 2:
                os.setsid()
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            while True:
                time.sleep(60)
grow(1)
print("grown", flush=True)
while True:
    time.sleep(60)
"""


def test_bounded_fork_bomb_is_stopped_whole(tmp_path: Path, fault_runs: Runs) -> None:
    app = tmp_path / "app"
    app.mkdir()
    write_app(app, f"bomb: {_script(app, 'bomb.py', FORK_TREE)}\n")
    run = fault_runs("start", "--no-timestamp", "-t", "1", cwd=app)
    run.wait_for_line(r"\| grown$", 20)
    assert poll_until(lambda: len(run.leftovers()) >= 85, 10), len(run.leftovers())
    started = time.monotonic()
    run.signal(signal.SIGTERM)
    assert run.wait(20) == 0
    assert time.monotonic() - started < 8
    assert run.leftovers() == []


def test_keelrun_sigkilled_leaves_nothing(tmp_path: Path, fault_runs: Runs) -> None:
    """The guardian: even daemons that left the group die with a SIGKILLed keelrun."""
    app = tmp_path / "app"
    app.mkdir()
    write_app(app, f"esc: {_script(app, 'esc.py', ESCAPER)} setsid\nplain: sleep 1000\n")
    run = fault_runs("start", "--no-timestamp", cwd=app)
    m = run.wait_for_line(r"escaped (\d+)")
    run.wait_for_line(r"started plain\.1")
    run.proc.kill()
    run.wait(10)
    assert poll_until(lambda: not run.leftovers(), 5), run.leftovers()
    # A process being killed has no environment left (so no marker) a moment
    # before it is a zombie: wait for that moment too, bounded.
    escaped = int(m.group(1))
    assert poll_until(lambda: not alive(escaped), 5), f"pid {escaped} survived"


def test_signal_storm_is_harmless(tmp_path: Path, fault_runs: Runs) -> None:
    """Bursts of USR1, HUP and orphan SIGCHLDs never crash or wedge keelrun."""
    app = write_app(
        tmp_path / "app",
        # Each `( (exit 1) & )` leaves an orphan that keelrun, as subreaper, reaps.
        "churn: trap '' USR1; while true; do ( (exit 1) & ); sleep 0.01; done\n"
        "idle: trap '' USR1; while true; do sleep 1; done\n",
    )
    run = fault_runs("start", "--no-timestamp", "-t", "1", cwd=app)
    run.wait_for_socket()
    for _ in range(50):
        run.signal(signal.SIGUSR1)
        run.signal(signal.SIGHUP)
    assert run.ps()  # still answering after the storm
    rows = run.ps()
    assert all(r["state"] == "running" and r["restarts"] == 0 for r in rows), rows
    run.signal(signal.SIGTERM)
    assert run.wait(10) == 0
    assert b"Traceback" not in run.stderr


if __name__ == "__main__":  # pragma: no cover
    sys.exit(subprocess.call([sys.executable, "-m", "pytest", __file__]))


def test_stopped_child_is_killed_after_the_grace(tmp_path: Path, fault_runs: Runs) -> None:
    """A child that sent itself SIGSTOP cannot act on SIGTERM: SIGKILL after the grace."""
    app = write_app(tmp_path / "app", 'frozen: echo "me $$"; kill -STOP $$; sleep 1000\n')
    run = fault_runs("start", "--no-timestamp", "-t", "1", cwd=app)
    pid = int(run.wait_for_line(r"\| me (\d+)$").group(1))

    def stopped() -> bool:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return data[data.rfind(b")") + 2 : data.rfind(b")") + 3] == b"T"

    assert poll_until(stopped, 5)
    run.wait_for_socket()
    assert run.ps()[0]["state"] == "running"  # stopped by a signal is still alive
    started = time.monotonic()
    run.signal(signal.SIGTERM)
    assert run.wait(10) == 0
    assert 0.9 <= time.monotonic() - started < 5
    assert not alive(pid)


BIG_LINES = """
import os, time
line = b"y" * (1024 * 1024 - 1) + b"\\n"
for _ in range(200):
    os.write(1, line)
os.write(1, b"done\\n")
time.sleep(1000)
"""


def test_memory_stays_bounded_after_many_1mib_lines(tmp_path: Path, fault_runs: Runs) -> None:
    """Regression: the log ring kept 1000 lines whatever their size (up to 1 GiB)."""
    app = tmp_path / "app"
    app.mkdir()
    write_app(app, f"big: {_script(app, 'big.py', BIG_LINES)}\n")
    run = fault_runs("start", "--no-timestamp", "--no-prefix", cwd=app)
    run.wait_for_line(r"^done$", 40)
    assert sum(1 for line in run.lines if line.startswith("y")) == 200
    rss_kib = _rss_kib(run.pid)
    run.signal(signal.SIGTERM)
    assert run.wait(10) == 0
    assert rss_kib < 120 * 1024, f"keelrun holds {rss_kib // 1024} MiB after 200 MiB of output"


WALKER = """
import os, signal, sys, time
# A daemon that never keeps a pid: every 10 ms it forks, the child calls setsid,
# ignores SIGTERM and carries on, and the parent exits. Bounded: 3000 steps.
signal.signal(signal.SIGTERM, signal.SIG_IGN)
if os.fork() == 0:
    for step in range(3000):
        if step == 10:
            print("walking", flush=True)
        time.sleep(0.01)
        if os.fork():
            os._exit(0)
        os.setsid()
    os._exit(0)
while True:
    time.sleep(60)
"""


def test_walking_daemon_is_caught_at_stop(tmp_path: Path, fault_runs: Runs) -> None:
    app = tmp_path / "app"
    app.mkdir()
    write_app(app, f"walker: {_script(app, 'walker.py', WALKER)}\n")
    run = fault_runs("start", "--no-timestamp", "-t", "1", cwd=app)
    run.wait_for_line(r"\| walking$")
    started = time.monotonic()
    run.signal(signal.SIGTERM)
    assert run.wait(15) == 0
    assert time.monotonic() - started < 6
    assert run.leftovers() == []
