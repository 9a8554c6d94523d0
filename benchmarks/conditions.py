"""Under which conditions the throughput figures hold: one factor changed at a time.

The draining-consumer row of benchmarks/run.py (keelrun 0.59x the raw pipe on
one machine) measured 0.37x under another harness. This script changes one
condition at a time from the run.py setup (4 producers, 100-byte lines, a
consumer reading 1 MiB at a time from a pipe grown to 1 MiB) and prints
keelrun's ratio to the raw pipe under the same condition, in one run:

- the consumer's read size (64 KiB, what many harnesses use, vs 1 MiB);
- the consumer's pipe size (the kernel's 64 KiB vs 1 MiB);
- the line length (20, 100, 1000 bytes);
- the number of producers (1, 4, 16).

Producers are this file run as ``producer N LINES LENGTH``: each writes its
lines (ending in "~") in writes of at most 4 KiB (whole lines, atomic on a
shared pipe), then waits. The consumer counts the lines ending in "~" (text) or
'~"}' (JSON) in each read, in C; losslessness itself is checked by run.py.

    python benchmarks/conditions.py [--seconds 2] [--repeat 3] [--only N]
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import (
    App,
    become_subreaper,
    bench_env,
    launch,
    set_pipe_size,
    supervisors,
    tracked,
)
from benchmarks.report import machine

KIB = 1024
BASE = {"read": 1024 * KIB, "pipe": 1024 * KIB, "length": 100, "producers": 4}
VARIANTS = [
    ("as run.py", {}),
    ("read 64 KiB", {"read": 64 * KIB}),
    ("pipe 64 KiB (kernel default)", {"pipe": 0}),
    ("read and pipe 64 KiB", {"read": 64 * KIB, "pipe": 0}),
    ("20-byte lines", {"length": 20}),
    ("1000-byte lines", {"length": 1000}),
    ("1 producer", {"producers": 1}),
    ("16 producers", {"producers": 16}),
]
TIMEOUT = 60.0


def produce(producer: int, lines: int, length: int) -> None:
    """A producer: ``lines`` lines of ``length`` bytes, then wait to be stopped."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    line = (b"p%d " % producer).ljust(length - 2, b"x") + b"~\n"
    per_write = max(1, 4096 // length)
    block = line * per_write
    left = lines
    while left > 0:
        n = min(per_write, left)
        data = memoryview(block)[: n * length]
        while data:
            data = data[os.write(1, data) :]
        left -= n
    signal.pause()


def consume(fd: int, total: int, read_size: int, marker: bytes) -> float:
    """Lines per second from the first byte until ``total`` marked lines arrived."""
    buf = bytearray(read_size)
    view = memoryview(buf)
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    overlap = len(marker) - 1
    tail = b""
    seen = 0
    first = last = 0.0
    while seen < total:
        if not poller.poll(TIMEOUT * 1000):
            raise RuntimeError(f"stalled after {seen} of {total} lines")
        n = os.readv(fd, [buf])
        if n == 0:
            raise RuntimeError(f"EOF after {seen} of {total} lines")
        last = time.perf_counter()
        first = first or last
        seen += buf.count(marker, 0, n)
        if tail:  # a marker split across two reads
            seen += (tail + bytes(view[: min(n, overlap)])).count(marker)
        tail = bytes(view[max(0, n - overlap) : n])
    return total / max(last - first, 1e-9)


def _argv(producer: int, lines: int, length: int) -> list[str]:
    return [sys.executable, __file__, "producer", str(producer), str(lines), str(length)]


def raw(cond: dict[str, int], lines: int) -> float:
    with tracked() as run:
        env = bench_env(run.token)
        read_fd, write_fd = os.pipe()
        try:
            if cond["pipe"]:
                set_pipe_size(read_fd, cond["pipe"])
            for i in range(cond["producers"]):
                run.spawn_raw(_argv(i, lines, cond["length"]), write_fd, env)
            os.close(write_fd)
            write_fd = -1
            return consume(read_fd, cond["producers"] * lines, cond["read"], b"~\n")
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)


def keelrun(
    program: list[str], env: dict[str, str], cond: dict[str, int], lines: int, json: bool
) -> float:
    entries = {
        f"p{i}": "exec " + " ".join(_argv(i, lines, cond["length"]))
        for i in range(cond["producers"])
    }
    with App.create(entries) as app:
        argv = [*program, "start", "-d", str(app.root), "--no-color"]
        if json:
            argv += ["--log-format", "json"]
        with launch(argv, app.root, cond["pipe"] or None, env) as run:
            marker = b'~"}\n' if json else b"~\n"
            return consume(run.stdout_fd, cond["producers"] * lines, cond["read"], marker)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["producer"]:
        produce(int(args[1]), int(args[2]), int(args[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of a raw run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", type=int, metavar="N", help="the first N conditions only")
    opts = parser.parse_args(args)
    become_subreaper()
    (sup,) = supervisors(["keelrun"])
    assert sup.program is not None, sup.missing_reason
    print(", ".join(f"{k} {v}" for k, v in machine().items()))
    head = ("condition", "raw lines/s", "keelrun", "ratio", "json", "ratio")
    print("{:<30} {:>12} {:>10} {:>6} {:>10} {:>6}".format(*head))
    for label, change in VARIANTS[: opts.only]:
        cond = {**BASE, **change}
        # Size the run so the raw pipe takes about --seconds; keelrun takes longer.
        pilot = raw(cond, 20_000)
        lines = max(20_000, int(pilot * opts.seconds / cond["producers"]))
        rows = []
        for _ in range(opts.repeat):
            rows.append(
                (
                    raw(cond, lines),
                    keelrun(sup.program, sup.env, cond, lines, False),
                    keelrun(sup.program, sup.env, cond, lines, True),
                )
            )
        r, k, j = (statistics.median(col) for col in zip(*rows, strict=True))
        cells = (label, r / 1e6, k / 1e6, k / r, j / 1e6, j / r)
        print("{:<30} {:>10.2f} M {:>8.2f} M {:>5.2f}x {:>8.2f} M {:>5.2f}x".format(*cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
