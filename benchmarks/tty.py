"""A tty instance next to a pipe instance under a real `keelrun start`.

    python benchmarks/tty.py               # one run, about half a minute
    python benchmarks/tty.py --quick       # a smoke run
    python benchmarks/tty.py --json PATH   # raw figures too

Throughput: the same workload runs as the one process of `web` under
`python -m keelrun start` (this checkout; text output with time and prefix,
no colour), once on pipes and once with `--tty web`; keelrun's stdout is a
1 MiB pipe read by run.py's consumers, which check the lines. Workloads:
"writes" is benchmarks/producer.py (numbered 100-byte lines in 4000-byte
writes); "print" is a Python app print()ing the same lines: block-buffered on
a pipe, line-buffered on a terminal, as any app behaves. The "raw" columns
read the app's pipe or pty master directly, without keelrun: the kernel's
own limit. Spawning: the time of the spawn call itself (Popen returns once
the child has exec'd), pipes against a pty, and against the rejected
alternative of a preexec_fn taking the controlling terminal.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `keelrun` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import consumers
from benchmarks.producer import PAYLOAD

REPO = Path(__file__).resolve().parent.parent
PRODUCER = Path(__file__).with_name("producer.py")
F_SETPIPE_SZ = 1031
# One line, so that it fits a Procfile.
PRINTER = (
    "import sys; p = sys.argv[2]; "
    "[print(f'p0 {i:012d} {p}') for i in range(int(sys.argv[1]))]; print('p0 DONE')"
)


# --------------------------------------------------------------- keelrun start
def workload_argv(workload: str, lines: int) -> list[str]:
    if workload == "writes":
        return [sys.executable, str(PRODUCER), "0", str(lines), "--exit"]
    return [sys.executable, "-c", PRINTER, str(lines), PAYLOAD.decode()]


def flood(kind: str, workload: str, lines: int, consumer: str) -> consumers.FloodStats:
    """The workload as `web` under `keelrun start` (``--tty web`` for kind "tty")."""
    argv = workload_argv(workload, lines)
    with tempfile.TemporaryDirectory(prefix="keelrun-bench-tty-") as root:
        Path(root, "Procfile").write_text(f"web: {shlex.join(argv)}\n")
        cmd = [sys.executable, "-m", "keelrun", "start", "-d", root, "--no-color"]
        if kind == "tty":
            cmd += ["--tty", "web"]
        path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path}
        env.pop("KEELRUN_SOCKET", None)
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env, cwd=root
        )
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        fcntl.fcntl(fd, F_SETPIPE_SZ, 1 << 20)  # the consumer's pipe is 1 MiB, as in run.py
        read = consumers.drain if consumer == "drain" else consumers.parse
        stats = read(fd, 1, lines, 10.0)
        proc.stdout.read()
        if proc.wait(30) != 0:
            stats.notes.append(f"keelrun exited with status {proc.returncode}")
    return stats


def flood_raw(kind: str, workload: str, lines: int) -> consumers.FloodStats:
    """The baseline: the draining consumer reads the app's pipe or pty master itself."""
    from keelrun.supervisor import terminal

    argv = workload_argv(workload, lines)
    if kind == "tty":
        fd, slave, path = terminal.open_pty()
        proc = terminal.spawn_on_tty(shlex.join(argv), dict(os.environ), slave, path)
    else:
        fd, slave = os.pipe()
        fcntl.fcntl(fd, F_SETPIPE_SZ, 1 << 20)
        proc = subprocess.Popen(argv, stdout=slave)
    os.close(slave)
    try:
        stats = consumers.drain(fd, 1, lines, 10.0)
    except OSError as e:  # EIO: the pty ended before every line came
        stats = consumers.FloodStats(1, lines)
        stats.notes.append(str(e))
    proc.wait(30)
    os.close(fd)
    return stats


# ------------------------------------------------------------------ spawning
def spawn_cost(count: int) -> dict[str, float]:
    """Microseconds per spawn call, for `exec true` on pipes, on a pty, and with preexec_fn."""
    from keelrun.supervisor import spawn, terminal

    env = dict(os.environ)

    def on_pipes() -> tuple[subprocess.Popen[bytes], list[int]]:
        out_r, out_w = spawn.make_pipe()
        err_r, err_w = spawn.make_pipe()
        proc = spawn.spawn_shell("true", env, out_w, err_w)
        spawn.close_quietly(out_w, err_w)
        return proc, [out_r, err_r]

    def on_pty() -> tuple[subprocess.Popen[bytes], list[int]]:
        master, slave, path = terminal.open_pty()
        proc = terminal.spawn_on_tty("true", env, slave, path)
        os.close(slave)
        return proc, [master]

    def with_preexec() -> tuple[subprocess.Popen[bytes], list[int]]:
        master, slave, _ = terminal.open_pty()
        proc = subprocess.Popen(
            ["/bin/sh", "-c", "exec true"],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            close_fds=True,
            restore_signals=True,
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )
        os.close(slave)
        return proc, [master]

    # Round robin, so that the load of a shared machine weighs on each alike; medians.
    makers = {"pipes": on_pipes, "pty": on_pty, "pty, preexec_fn": with_preexec}
    times: dict[str, list[float]] = {name: [] for name in makers}
    for _ in range(count):
        for name, make in makers.items():
            start = time.perf_counter()
            proc, fds = make()
            times[name].append(time.perf_counter() - start)
            proc.wait()  # the benchmark is the parent here: no supervisor reaps
            spawn.close_quietly(*fds)
    return {name: statistics.median(t) * 1e6 for name, t in times.items()}


# ------------------------------------------------------------------- framing
def framing_cost(rounds: int) -> dict[str, float]:
    """MB/s of the per-read CPU work: framers on 4 KiB and 64 KiB reads, escape removal."""
    from keelrun.supervisor.ansi import strip_ansi
    from keelrun.supervisor.framing import LineFramer
    from keelrun.supervisor.terminal import TtyFramer

    line = b"p0 000000000042 " + PAYLOAD
    coloured = b"\x1b[32mINFO\x1b[0m \x1b[1mworker\x1b[22m " + PAYLOAD[:60] + b" \xc3\xa9"
    results: dict[str, float] = {}

    def rate(name: str, work: object, data: bytes) -> None:
        start = time.perf_counter()
        for _ in range(rounds):
            work(data)  # type: ignore[operator]
        results[name] = len(data) * rounds / (time.perf_counter() - start) / 1e6

    for size in (4096, 65536):
        lf = (line + b"\n") * (size // (len(line) + 1))
        crlf = lf.replace(b"\n", b"\r\n")
        rate(f"LineFramer, {size // 1024} KiB reads (pipe)", LineFramer().feed, lf)
        rate(f"TtyFramer, {size // 1024} KiB reads (pty)", TtyFramer().feed, crlf)
        rate(f"TtyFramer + strip, {size // 1024} KiB reads", TtyFramer(strip=True).feed, crlf)
    block = (coloured + b"\n") * (65536 // (len(coloured) + 1))
    rate("strip_ansi, 64 KiB of coloured lines", strip_ansi, block)
    rate("strip_ansi, 64 KiB without escapes", strip_ansi, (line + b"\n") * 650)
    return results


# ---------------------------------------------------------------------- main
def _k(rate: float | None) -> str:
    return "-" if rate is None else f"{rate / 1e3:,.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    ap.add_argument("--lines", type=int, help="lines per throughput run (default 1,000,000)")
    ap.add_argument("--json", help="write the figures to this file")
    args = ap.parse_args()
    lines = args.lines or (20_000 if args.quick else 1_000_000)
    figures: dict[str, object] = {"lines": lines}
    print(f"log throughput under keelrun start, {lines:,} lines of 100 bytes, klines/s")
    print("(raw: the consumer reads the app's pipe or pty itself, no keelrun)")
    print(
        f"{'workload':26} {'pipe raw':>9} {'pipe':>7} {'pty raw':>8} {'tty':>7}"
        f" {'tty/pipe':>9} {'tty/pty raw':>12}"
    )
    for workload, consumer in (("writes", "drain"), ("writes", "parse"), ("print", "drain")):
        row: dict[str, float | None] = {}
        for kind in ("pipe", "tty"):
            runs = [("", flood(kind, workload, lines, consumer))]
            if consumer == "drain":  # the parser reads keelrun's lines, not \r\n ones
                runs.append((" raw", flood_raw(kind, workload, lines)))
            for suffix, stats in runs:
                if not stats.complete or stats.lost or stats.mangled or stats.disorder:
                    raise SystemExit(f"{kind}{suffix} {workload}/{consumer}: lines lost: {stats}")
                row[kind + suffix] = stats.rate
        name = f"{workload}, {consumer} consumer"
        figures[name] = row
        pipe, tty = row["pipe"] or 1.0, row["tty"] or 0.0
        raw_tty = row.get("tty raw")
        print(
            f"{name:26} {_k(row.get('pipe raw')):>9} {_k(pipe):>7} {_k(raw_tty):>8} {_k(tty):>7}"
            f" {tty / pipe:>8.2f}x {(f'{tty / raw_tty:.2f}x' if raw_tty else '-'):>12}"
        )
    spawns = spawn_cost(20 if args.quick else 200)
    figures["spawn_us"] = spawns
    print("\nspawn call (Popen until exec), `exec true`, median")
    for name, us in spawns.items():
        print(f"  {name:34} {us:8.0f} us  {us / spawns['pipes']:5.2f}x pipes")
    framing = framing_cost(20 if args.quick else 400)
    figures["framing_mb_s"] = framing
    print("\nper-read CPU work, MB/s")
    for name, mbs in framing.items():
        print(f"  {name:42} {mbs:8.0f}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
