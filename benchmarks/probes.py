"""Idle cost of liveness probes: N instances, each with an http health check every INTERVAL.

usage: python benchmarks/probes.py [--instances 20] [--interval 10] [--windows 3]
                                   [--only keelrun|machinery] [--json PATH]

keelrun: a real `keelrun start` runs N tiny HTTP servers, each with
``health = "http:/health"`` every INTERVAL; each server prints a line per
request, so the benchmark sees every probe moment in keelrun's output. After
each burst of N probes, a quiet window (INTERVAL minus a margin on each side)
is measured from keelrun's /proc/PID/schedstat: its CPU time (ns) and the
times it was scheduled (its wakeups).

machinery: keelrun's own machinery (keelrun/supervisor/health.py with the http
probe, on keelrun's Loop) in this process against N real tiny HTTP servers
(child processes). All N checks start together, so the probe moments are
bursts every INTERVAL; between two bursts, a quiet window (INTERVAL minus a
margin on each side) is measured: this process's CPU time
(CLOCK_PROCESS_CPUTIME_ID, ns) and the loop's wakeups (selector returns other
than the one that ends the window), and, first, the same window with no
probe at all (what the measurement itself costs). Reported per 10 s, with
the cost of the bursts themselves. Target: under 1 ms of CPU per 10 s outside the bursts.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make keelrun importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from keelrun.healthspec import Check, HealthPlan
from keelrun.loop import Loop
from keelrun.supervisor.health import InstanceHealth
from keelrun.supervisor.probeapi import ChildRoutes, ProbeResult
from keelrun.supervisor.probes import ProbeTarget, make_probe

SERVER = r"""
import socket, signal, sys
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(64)
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    c.recv(4096)
    c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
    c.close()
"""
TARGET_MS_PER_10S = 1.0


class Counting:
    """Listener of every InstanceHealth: counts what the checks said."""

    def __init__(self) -> None:
        self.failed: list[str] = []

    def on_ready(self, why: str) -> None: ...
    def on_ready_timeout(self, why: str) -> None: ...
    def on_reloading(self) -> None: ...
    def on_app_stopping(self) -> None: ...

    def on_check_failed(self, detail: str, failures: int, retries: int) -> None:
        self.failed.append(detail)

    def on_unhealthy(self, why: str) -> None:
        self.failed.append(why)


def start_servers(n: int) -> list[tuple[subprocess.Popen[bytes], int]]:
    servers = []
    for _ in range(n):
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVER], stdout=subprocess.PIPE, start_new_session=True
        )
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 10)
        if not ready:
            raise SystemExit("a test server did not start within 10 s")
        servers.append((proc, int(proc.stdout.readline())))
    return servers


def stop_servers(servers: list[tuple[subprocess.Popen[bytes], int]]) -> None:
    for proc, _ in servers:
        os.killpg(proc.pid, signal.SIGKILL)
    for proc, _ in servers:
        # No reaper runs in this benchmark: collect each one here, and tell Popen.
        _, status = os.waitpid(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.stdout is not None:
            proc.stdout.close()


def measure(instances: int, interval: float, windows: int) -> dict[str, Any]:
    servers = start_servers(instances)
    loop = Loop()
    wakeups = [0]
    real_select = loop.selector.select

    def counting_select(timeout: float | None = None) -> Any:
        events = real_select(timeout)
        wakeups[0] += 1
        return events

    loop.selector.select = counting_select  # type: ignore[method-assign]
    listener = Counting()
    results: list[ProbeResult] = []
    round_cpu: list[int] = []  # ns of CPU per burst, first probe start to last result
    burst: dict[str, int] = {}

    def factory(check: Check, target: ProbeTarget) -> Any:
        probe = make_probe(check, target)
        start = probe.start

        def counted_start(on_result: Any) -> None:
            burst.setdefault("cpu0", time.process_time_ns())
            burst["pending"] = burst.get("pending", 0) + 1

            def done(result: ProbeResult) -> None:
                results.append(result)
                on_result(result)
                burst["pending"] -= 1
                if burst["pending"] == 0:
                    round_cpu.append(time.process_time_ns() - burst.pop("cpu0"))

            start(done)

        probe.start = counted_start  # type: ignore[method-assign]
        return probe

    margin = min(1.0, interval / 4)
    # The measurement's own cost: one window of the same length with nothing to do.
    baseline_cpu, at = time.process_time_ns(), loop.time()
    loop.call_at(at + interval - 2 * margin, loop.stop)
    loop.run()
    baseline = {"seconds": loop.time() - at, "cpu_ns": time.process_time_ns() - baseline_cpu}

    plan = HealthPlan(health=Check("http", path="/health"), health_interval=interval)
    monitors = []
    for proc, port in servers:
        target = ProbeTarget(loop, proc.pid, port, "/", {}, 2.0, ChildRoutes())
        monitors.append(InstanceHealth(plan, target, listener, factory))
    t0 = loop.time()
    for m in monitors:
        m.start()

    quiet: list[dict[str, float]] = []

    def open_window(k: int) -> None:
        cpu, woke, at = time.process_time_ns(), wakeups[0], loop.time()

        def close_window() -> None:
            seconds = loop.time() - at
            quiet.append(
                {
                    "seconds": seconds,
                    "cpu_ns": time.process_time_ns() - cpu,
                    "wakeups": wakeups[0] - woke - 1,  # minus the one that ends the window
                }
            )
            if k == windows:
                loop.stop()

        loop.call_at(t0 + (k + 1) * interval - margin, close_window)

    for k in range(1, windows + 1):  # after the first burst: steady state
        loop.call_at(t0 + k * interval + margin, lambda k=k: open_window(k))
    try:
        loop.run()
    finally:
        for m in monitors:
            m.stop()
        loop.close()
        stop_servers(servers)

    per10 = [w["cpu_ns"] / 1e6 * 10 / w["seconds"] for w in quiet]
    return {
        "instances": instances,
        "interval_s": interval,
        "windows": quiet,
        "outside_ms_per_10s": max(per10),
        "outside_ms_per_10s_mean": sum(per10) / len(per10),
        "outside_wakeups": sum(int(w["wakeups"]) for w in quiet),
        "baseline_ms_per_10s": baseline["cpu_ns"] / 1e6 * 10 / baseline["seconds"],
        "probes": len(results),
        "probes_ok": sum(r.ok for r in results),
        "round_cpu_ms": [ns / 1e6 for ns in round_cpu],
        "failures": listener.failed,
        "target_ms_per_10s": TARGET_MS_PER_10S,
    }


LOGGING_SERVER = r"""
import os, signal, socket, sys
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(os.environ["PORT"])))
s.listen(64)
while True:
    c, _ = s.accept()
    line = c.recv(4096).split(b"\r\n", 1)[0]
    c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
    c.close()
    os.write(1, b"probed " + line + b"\n")
"""


def schedstat(pid: int) -> tuple[int, int]:
    """CPU time (ns) and times scheduled of a process (its main thread: keelrun has one)."""
    with open(f"/proc/{pid}/schedstat") as f:
        ran, _waited, slices = f.read().split()
    return int(ran), int(slices)


def free_base_port() -> int:
    """A base port with nothing listening on it (the instances take base .. base+N-1)."""
    import socket

    for base in range(20000 + os.getpid() % 97 * 100, 60000, 1000):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", base)) != 0:
                return base
    raise SystemExit("no free port")


def measure_keelrun(instances: int, interval: float, windows: int) -> dict[str, Any]:
    """A real `keelrun start`: keelrun's CPU between the bursts of probes."""
    import tempfile

    repo = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        app = Path(tmp)
        (app / "server.py").write_text(LOGGING_SERVER)
        (app / "Procfile").write_text(f"web: exec {sys.executable} server.py\n")
        (app / "keelrun.toml").write_text(
            f'[processes.web]\nhealth = "http:/health"\nhealth_interval = {interval}\n'
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEELRUN_")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo), env.get("PYTHONPATH")]))
        env.pop("PORT", None)
        argv = [sys.executable, "-m", "keelrun", "start", "-m", f"web={instances}"]
        argv += ["-p", str(free_base_port()), "--no-color", "--socket", str(app / "s")]
        proc = subprocess.Popen(argv, cwd=app, env=env, stdout=subprocess.PIPE)
        try:
            return _watch(proc, instances, interval, windows)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            if proc.stdout is not None:
                proc.stdout.close()


def _watch(
    proc: subprocess.Popen[bytes], instances: int, interval: float, windows: int
) -> dict[str, Any]:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    pending = b""
    margin = min(1.0, interval / 4)
    seen = 0  # probe lines
    quiet: list[dict[str, float]] = []
    window: tuple[float, int, int] | None = None  # start time, cpu ns, slices
    closed: int | None = None  # cpu ns when the last window closed
    bursts: list[int] = []  # keelrun's cpu ns from one window's end to the next's start
    deadline = time.monotonic() + interval * (windows + 3) + 30
    burst_end: float | None = None
    while len(quiet) < windows:
        now = time.monotonic()
        if now > deadline:
            raise SystemExit(f"keelrun's probes did not come ({seen} seen)")
        if burst_end is not None and window is None and now >= burst_end + margin:
            window = (now, *schedstat(proc.pid))
            if closed is not None:
                bursts.append(window[1] - closed)
        if window is not None and now >= window[0] + interval - 2 * margin:
            cpu, slices = schedstat(proc.pid)
            seconds = time.monotonic() - window[0]
            quiet.append(
                {"seconds": seconds, "cpu_ns": cpu - window[1], "wakeups": slices - window[2]}
            )
            window = burst_end = None
            closed = cpu
        timeout = 0.05 if burst_end is not None or window is not None else 1.0
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            continue
        data = os.read(fd, 65536)
        if not data:
            raise SystemExit("keelrun ended early")
        pending += data
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if b"probed GET /health" in line:
                seen += 1
                if seen % instances == 0 and seen > instances:  # after the first burst
                    burst_end = time.monotonic()
    per10 = [w["cpu_ns"] / 1e6 * 10 / w["seconds"] for w in quiet]
    return {
        "instances": instances,
        "interval_s": interval,
        "windows": quiet,
        "outside_ms_per_10s": max(per10),
        "outside_ms_per_10s_mean": sum(per10) / len(per10),
        "outside_wakeups": sum(int(w["wakeups"]) for w in quiet),
        "probes": seen,
        "burst_cpu_ms": [ns / 1e6 for ns in bursts],
        "target_ms_per_10s": TARGET_MS_PER_10S,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=20)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--only", choices=("keelrun", "machinery"))
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    out: dict[str, Any] = {}
    ok = True
    if args.only in (None, "keelrun"):
        k = measure_keelrun(args.instances, args.interval, args.windows)
        out["keelrun"] = k
        print(
            "\n".join(
                [
                    f"keelrun start: {k['instances']} instances, http liveness every"
                    f" {k['interval_s']:g} s",
                    f"  quiet windows:         {len(k['windows'])} x"
                    f" {k['windows'][0]['seconds']:.2f} s",
                    f"  keelrun's CPU outside: {k['outside_ms_per_10s']:.3f} ms per 10 s (worst"
                    f" window; mean {k['outside_ms_per_10s_mean']:.3f};"
                    f" target < {TARGET_MS_PER_10S:g})",
                    f"  keelrun's wakeups:     {k['outside_wakeups']}",
                    f"  probes seen:           {k['probes']}",
                    "  CPU around each burst: "
                    + (", ".join(f"{ms:.2f}" for ms in k["burst_cpu_ms"]) or "-")
                    + " ms (the probes, their lines, the timers)",
                ]
            )
        )
    if args.only in (None, "machinery"):
        r = measure(args.instances, args.interval, args.windows)
        out["machinery"] = r
        ok = _print_machinery(r)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0 if ok else 1


def _print_machinery(r: dict[str, Any]) -> bool:
    rounds = r["round_cpu_ms"]
    per_round = sum(rounds) / len(rounds) if rounds else 0.0
    lines = [
        f"machinery alone: {r['instances']} instances, http liveness every {r['interval_s']:g} s",
        f"  quiet windows:         {len(r['windows'])} x {r['windows'][0]['seconds']:.2f} s",
        f"  CPU outside probes:    {r['outside_ms_per_10s']:.3f} ms per 10 s (worst window;"
        f" mean {r['outside_ms_per_10s_mean']:.3f}; target < {TARGET_MS_PER_10S:g})",
        f"  the measurement alone: {r['baseline_ms_per_10s']:.3f} ms per 10 s (an empty window)",
        f"  wakeups outside:       {r['outside_wakeups']}",
        f"  probes:                {r['probes_ok']} of {r['probes']} ok",
        f"  CPU per probe round:   {per_round:.2f} ms"
        f" ({per_round / r['instances']:.3f} ms a probe)",
    ]
    print("\n".join(lines))
    return bool(r["probes"]) and r["probes"] == r["probes_ok"]


if __name__ == "__main__":
    sys.exit(main())
