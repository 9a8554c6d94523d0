"""Workload 1: four producers flood numbered 100-byte lines through a supervisor.

Each subject (raw pipe or a supervisor) gets its own number of lines per
producer, found by short pilot runs, so that every measured run takes about
`seconds`: honcho moves tens of thousands of lines a second, the raw pipe
tens of millions, and one fixed N cannot suit both.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks import consumers
from benchmarks.consumers import FloodStats
from benchmarks.harness import (
    Supervisor,
    bench_env,
    set_pipe_size,
    supervise,
    tracked,
)

PRODUCERS = 4
PRODUCER = Path(__file__).with_name("producer.py")
PILOT_LINES = 5_000
MAX_LINES = 50_000_000
IDLE_TIMEOUT = 5.0

Consumer = Callable[[int, int, int, float], FloodStats]
CONSUMERS: dict[str, Consumer] = {"parse": consumers.parse, "drain": consumers.drain}


def producer_argv(producer: int, lines: int) -> list[str]:
    return [sys.executable, str(PRODUCER), str(producer), str(lines)]


def producer_speed(lines: int = 5_000_000) -> float:
    """Lines/s of one producer writing to /dev/null: it must not be the bottleneck."""
    start = time.perf_counter()
    subprocess.run(
        [*producer_argv(0, lines), "--exit"], stdout=subprocess.DEVNULL, check=True, timeout=60
    )
    return lines / (time.perf_counter() - start)


def flood_raw(consumer: Consumer, lines: int, pipe_size: int | None) -> FloodStats:
    """The baseline: the same producers writing into one shared pipe, no supervisor."""
    with tracked() as run:
        env = bench_env(run.token)
        read_fd, write_fd = os.pipe()
        try:
            if pipe_size:
                set_pipe_size(read_fd, pipe_size)
            for i in range(PRODUCERS):
                run.spawn_raw(producer_argv(i, lines), write_fd, env)
            os.close(write_fd)
            write_fd = -1
            return consumer(read_fd, PRODUCERS, lines, IDLE_TIMEOUT)
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)


def flood_supervised(
    sup: Supervisor, consumer: Consumer, lines: int, json: bool, pipe_size: int | None
) -> FloodStats:
    entries = {f"p{i}": "exec " + " ".join(producer_argv(i, lines)) for i in range(PRODUCERS)}
    with supervise(sup, entries, json=json, pipe_size=pipe_size) as run:
        stats = consumer(run.stdout_fd, PRODUCERS, lines, IDLE_TIMEOUT)
        if stats.good == 0:
            raise run.failure("no producer line came through" + _notes(stats))
        return stats


def _notes(stats: FloodStats) -> str:
    return f" ({'; '.join(stats.notes)})" if stats.notes else ""


@dataclass
class FloodResult:
    lines_per_producer: int
    samples: list[FloodStats]


def measure(
    run_once: Callable[[int], FloodStats], repeat: int, seconds: float, fixed_lines: int | None
) -> FloodResult:
    """Size N by pilot runs (unless fixed), then collect `repeat` runs of about `seconds`."""
    samples: list[FloodStats] = []
    lines = fixed_lines or PILOT_LINES
    while fixed_lines is None:
        stats = run_once(lines)
        elapsed = (stats.last or 0) - (stats.first or 0)
        rate = stats.rate
        if elapsed >= seconds / 2 or lines >= MAX_LINES or rate is None or not stats.complete:
            samples.append(stats)  # long enough to count (or as far as it goes)
            break
        wanted = int(rate * seconds / PRODUCERS)
        lines = min(MAX_LINES, max(lines * 4, wanted) if elapsed < 0.2 else wanted)
    while len(samples) < repeat:
        samples.append(run_once(lines))
    return FloodResult(lines, samples)
