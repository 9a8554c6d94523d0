"""Workloads 2-6: start and stop 50 processes, a stubborn child, idling, SIGKILL survivors.

Processes announce themselves with `echo $$; exec sleep 1000`: the shell the
supervisor runs prints its own pid and then becomes the sleep, so the pid
read from the supervisor's output is the workload process itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import (
    Launched,
    LineReader,
    Supervisor,
    SupervisorFailed,
    alive,
    bench_env,
    cpu_ns,
    descendants,
    discard_output,
    marked_pids,
    pss_kb,
    read_pids,
    supervise,
    tracked,
    wait_gone,
)

ANNOUNCE = "echo $$; exec sleep 1000"
STUBBORN = "trap '' TERM; echo $$; exec sleep 1000"  # SIG_IGN survives exec
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0  # honcho's grace is 5 s; anything slower is a hang


@dataclass
class StartStop:
    start: float  # exec of the supervisor -> every process has announced itself
    stop: float | None  # SIGTERM -> supervisor exited and every process gone; None: timeout
    left: int  # processes still alive at the end of the stop


def _formation(prefix: str, count: int, command: str) -> dict[str, str]:
    return {f"{prefix}{i:02d}": command for i in range(count)}


def _sup_pid(run: Launched) -> int:
    assert run.proc is not None
    return run.proc.pid


def _await_pids(run: Launched, count: int) -> tuple[LineReader, list[int]]:
    reader = LineReader(run.stdout_fd)
    pids = read_pids(reader, count, time.perf_counter() + START_TIMEOUT)
    if len(pids) < count:
        raise run.failure(f"only {len(pids)} of {count} processes announced themselves")
    return reader, pids


def _stop(run: Launched, pids: list[int]) -> tuple[float | None, int]:
    begun = time.perf_counter()
    os.kill(_sup_pid(run), signal.SIGTERM)
    ended = wait_gone([_sup_pid(run), *pids], begun + STOP_TIMEOUT, drain_fd=run.stdout_fd)
    left = sum(alive(pid) for pid in pids)
    return (ended - begun if ended is not None else None), left


def start_stop(sup: Supervisor, count: int) -> StartStop:
    with supervise(sup, _formation("s", count, ANNOUNCE)) as run:
        _, pids = _await_pids(run, count)
        started = time.perf_counter() - run.started
        stop, left = _stop(run, pids)
        return StartStop(started, stop, left)


def start_stop_self(count: int) -> StartStop:
    """The baseline: the benchmark spawns (subprocess.Popen) and stops the processes itself."""
    with tracked() as run:
        env = bench_env(run.token)
        read_fd, write_fd = os.pipe()
        try:
            begun = time.perf_counter()
            for _ in range(count):
                run.spawn_raw(["/bin/sh", "-c", ANNOUNCE], write_fd, env)
            os.close(write_fd)
            write_fd = -1
            pids = read_pids(LineReader(read_fd), count, begun + START_TIMEOUT)
            started = time.perf_counter() - begun
            if len(pids) < count:
                raise SupervisorFailed(f"only {len(pids)} of {count} processes announced")
            begun = time.perf_counter()
            for proc in run.extra:
                os.killpg(proc.pid, signal.SIGTERM)
            ended = wait_gone(pids, begun + STOP_TIMEOUT)
            left = sum(alive(pid) for pid in pids)
            return StartStop(started, ended - begun if ended is not None else None, left)
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)


@dataclass
class Stubborn:
    exit_after: float | None  # SIGTERM -> supervisor exit; None: it did not exit
    child_dead: bool  # the SIGTERM-ignoring child was dead when the supervisor exited


def stubborn(sup: Supervisor, grace: float) -> Stubborn:
    with supervise(sup, {"stubborn": STUBBORN}, grace=grace) as run:
        _, pids = _await_pids(run, 1)
        begun = time.perf_counter()
        os.kill(_sup_pid(run), signal.SIGTERM)
        ended = wait_gone([_sup_pid(run)], begun + STOP_TIMEOUT, drain_fd=run.stdout_fd)
        dead = not alive(pids[0])
        return Stubborn(ended - begun if ended is not None else None, dead)


@dataclass
class Idle:
    cpu_ms_per_10s: float
    pss_mb: float
    helpers: int  # processes of the supervisor's tree besides the workload (honcho: readers)


def idle(sup: Supervisor, count: int, window: float, settle: float) -> Idle:
    with supervise(sup, _formation("i", count, ANNOUNCE)) as run:
        _, pids = _await_pids(run, count)
        discard_output(run.stdout_fd, settle)  # let start-up work (imports, threads) finish
        workload = set(pids)
        own = ({_sup_pid(run)} | descendants(_sup_pid(run))) - workload
        before = cpu_ns(own)
        discard_output(run.stdout_fd, window)
        after_set = ({_sup_pid(run)} | descendants(_sup_pid(run))) - workload
        after = cpu_ns(own | after_set)
        pss = pss_kb(after_set)
        cpu_ms = (after - before) / 1e6 * 10.0 / window
        return Idle(cpu_ms, pss / 1024, len(after_set) - 1)


@dataclass
class Survivors:
    before: int  # processes carrying the run's token just before SIGKILL
    survivors: int  # still alive (not zombies) after the supervisor is gone


# Daemons and grandchildren: a shell with a background and a foreground sleep; a
# double-forked `setsid` daemon left in a session of its own; and a plain process.
KILL_FORMATION = {
    "plain": ANNOUNCE,
    "tree": "sleep 1000 & echo $$; sleep 1000",
    "daemon": "(setsid sleep 1000 &); echo $$; exec sleep 1000",
}
KILL_SLEEPS = 5  # plain 1, tree 2, daemon 2
SURVIVOR_WAIT = 2.0


def _marked_sleeps(token: str) -> int:
    count = 0
    for pid in marked_pids(token):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "sleep":
                count += 1
    return count


def _poll_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """/proc has no change events: a short, bounded poll is the only way to watch it."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def sigkill_survivors(sup: Supervisor) -> Survivors:
    with supervise(sup, KILL_FORMATION) as run:
        _await_pids(run, len(KILL_FORMATION))
        if not _poll_until(lambda: _marked_sleeps(run.token) >= KILL_SLEEPS, 5.0):
            raise run.failure(f"fewer than {KILL_SLEEPS} sleeps came up")
        before = len(marked_pids(run.token))
        os.kill(_sup_pid(run), signal.SIGKILL)
        assert run.proc is not None
        run.proc.wait(timeout=5)
        _poll_until(lambda: not marked_pids(run.token), SURVIVOR_WAIT, 0.05)
        return Survivors(before, len(marked_pids(run.token)))
