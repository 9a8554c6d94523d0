"""How keelrun's cost grows with the number of instances: N = 10, 100, 1,000.

For each N, side by side in one run:
- start: exec of `keelrun start -m worker=N` -> every instance has printed its pid;
  *self* is this script spawning the same N shells with subprocess.Popen;
- scale: a running keelrun (worker=1) gets `scale worker=+N` on its socket -> every
  new instance has printed its pid (time from sending the request);
- ps: the `ps` request's round trip with N+1 running (server side: no client start-up);
- stop: SIGTERM -> keelrun exited and all N+1 gone;
- keelrun's RSS and open fds with N+1 running, and per instance.

    python benchmarks/scale.py [--counts 10,100,1000] [--repeat 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import (
    App,
    LineReader,
    become_subreaper,
    launch,
    read_pids,
    supervisors,
    wait_gone,
)
from benchmarks.lifecycle import ANNOUNCE, start_stop_self
from benchmarks.report import machine

TIMEOUT = 120.0


def _request(path: Path, cmd: str, args: dict[str, Any]) -> tuple[float, bytes]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(str(path))
        begun = time.perf_counter()
        s.sendall((json.dumps({"v": 1, "cmd": cmd, "args": args}) + "\n").encode())
        data = b""
        while chunk := s.recv(1 << 20):
            data += chunk
        return time.perf_counter() - begun, data


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def self_start(n: int) -> float:
    """The baseline: this script spawns N announcing shells and reads their pids."""
    return start_stop_self(n).start


def keelrun_run(program: list[str], env: dict[str, str], n: int) -> dict[str, float]:
    """One keelrun: start N, scale +N, ps, stop; the figures of this run."""
    figures: dict[str, float] = {}
    with App.create({"worker": ANNOUNCE}) as app:
        argv = [*program, "start", "-d", str(app.root), "--no-color", "-m", f"worker={n}"]
        with launch(argv, app.root, None, env) as run:
            assert run.proc is not None
            reader = LineReader(run.stdout_fd)
            pids = read_pids(reader, n, time.perf_counter() + TIMEOUT)
            figures["start_s"] = time.perf_counter() - run.started
            assert len(pids) == n, run.failure(f"only {len(pids)} of {n} announced")
            sock = app.root / ".keelrun.sock"
            took, _ = _request(sock, "scale", {"changes": [f"worker=+{n}"]})
            begun = time.perf_counter() - took
            more = read_pids(reader, n, time.perf_counter() + TIMEOUT)
            figures["scale_s"] = time.perf_counter() - begun
            assert len(more) == n, run.failure(f"only {len(more)} of {n} scaled up")
            pids += more
            ps = [_request(sock, "ps", {})[0] for _ in range(5)]
            figures["ps_s"] = statistics.median(ps)
            figures["rss_kib"] = _rss_kib(run.proc.pid)
            figures["fds"] = len(os.listdir(f"/proc/{run.proc.pid}/fd"))
            begun = time.perf_counter()
            os.kill(run.proc.pid, signal.SIGTERM)
            ended = wait_gone([run.proc.pid, *pids], begun + TIMEOUT, drain_fd=run.stdout_fd)
            figures["stop_s"] = (ended or float("nan")) - begun
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--counts", default="10,100,1000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.counts.split(",")]
    become_subreaper()
    (sup,) = supervisors(["keelrun"])
    assert sup.program is not None, sup.missing_reason
    print(", ".join(f"{k} {v}" for k, v in machine().items()))
    results: dict[int, dict[str, float]] = {}
    for n in counts:
        runs = [keelrun_run(sup.program, sup.env, n) for _ in range(args.repeat)]
        row = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        row["self_start_s"] = statistics.median(self_start(n) for _ in range(args.repeat))
        results[n] = row
    print(
        f"{'N':>6} {'self start':>11} {'start':>9} {'xself':>6} {'scale +N':>9} "
        f"{'ps':>8} {'stop':>8} {'RSS':>9} {'fds':>6} {'ms/inst':>8} {'KiB/inst':>9}"
    )
    for n, r in results.items():
        print(
            f"{n:>6} {r['self_start_s'] * 1000:>9.0f}ms {r['start_s'] * 1000:>7.0f}ms "
            f"{r['start_s'] / r['self_start_s']:>5.2f}x {r['scale_s'] * 1000:>7.0f}ms "
            f"{r['ps_s'] * 1000:>6.0f}ms {r['stop_s'] * 1000:>6.0f}ms "
            f"{r['rss_kib'] / 1024:>7.1f}MiB {int(r['fds']):>6} "
            f"{r['scale_s'] * 1000 / n:>8.2f} "
            f"{(r['rss_kib'] - results[counts[0]]['rss_kib']) / max(2 * (n - counts[0]), 1):>9.1f}"
        )
    print(
        "ms/inst: scale +N time per new instance. KiB/inst: keelrun's RSS growth per instance"
        f" relative to N={counts[0]} (2N instances running at measurement)."
    )
    if args.json:
        Path(args.json).write_text(json.dumps({str(n): r for n, r in results.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
