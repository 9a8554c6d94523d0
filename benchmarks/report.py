"""Results: one Figure per (workload, subject), printed as a table of ratios or as JSON."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

KEELRUN = "keelrun"


@dataclass
class Workload:
    key: str
    title: str
    unit: str
    higher_is_better: bool
    baseline: str | None  # the subject the others are divided by ("raw", "self")
    target: str


@dataclass
class Figure:
    workload: str
    subject: str
    value: float | None = None  # median of the samples
    samples: list[float] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


WORKLOADS = [
    Workload(
        "flood-parse",
        "Log throughput, text, parsing consumer (4 producers, 100-byte lines)",
        "lines/s",
        True,
        "raw",
        "keelrun >= 0.9x raw, 0 lost, 0 mangled",
    ),
    Workload(
        "flood-drain",
        "Log throughput, draining consumer (1 MiB reads; lost = not received intact)",
        "lines/s",
        True,
        "raw",
        "keelrun >= 0.35x raw, lossless; keelrun-json >= 0.3x raw",
    ),
    Workload(
        "start",
        "Start 50 processes: exec -> all 50 announced on stdout",
        "s",
        False,
        "self",
        "keelrun <= 3x self (Popen)",
    ),
    Workload(
        "stop",
        "Stop 50 processes: SIGTERM -> supervisor exited and all 50 gone",
        "s",
        False,
        "self",
        "keelrun <= 0.050 s, none left",
    ),
    Workload(
        "stubborn",
        "Child ignoring SIGTERM, grace 2 s: SIGTERM -> supervisor exit",
        "s",
        False,
        None,
        "keelrun <= 2.1 s, child dead",
    ),
    Workload(
        "idle-cpu",
        "Idle CPU with 20 sleeping processes (supervisor + helpers)",
        "ms/10s",
        False,
        None,
        "keelrun <= 1 ms per 10 s",
    ),
    Workload(
        "pss",
        "Memory with 20 processes: PSS of supervisor + helpers",
        "MB",
        False,
        None,
        "keelrun <= 28 MB",
    ),
    Workload(
        "survivors",
        "Processes surviving SIGKILL of the supervisor (grandchildren, setsid daemon)",
        "procs",
        False,
        None,
        "keelrun 0",
    ),
]


def machine() -> dict[str, str]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def program_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "?"


def fmt_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "lines/s":
        if value >= 1e6:
            return f"{value / 1e6:.2f} M/s"
        return f"{value / 1e3:.1f} k/s"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "procs":
        return f"{value:.0f}"
    return f"{value:.1f} {unit}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    r = a / b
    if r >= 100:
        return f"{r:.0f}x"
    if r >= 10:
        return f"{r:.1f}x"
    return f"{r:.2f}x" if r >= 0.1 else f"{r:.2g}x"


def _details(details: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in details.items())


def print_table(figures: list[Figure], header: dict[str, Any], out: Any = sys.stdout) -> None:
    def p(text: str = "") -> None:
        print(text, file=out)

    for key, value in header.items():
        p(f"{key}: {value}")
    for wl in WORKLOADS:
        rows = [f for f in figures if f.workload == wl.key]
        if not rows:
            continue
        better = "higher" if wl.higher_is_better else "lower"
        p()
        p(f"== {wl.title}")
        p(f"   [{wl.unit}, {better} is better; target: {wl.target}]")
        by_subject = {f.subject: f for f in rows}
        base = by_subject.get(wl.baseline) if wl.baseline else None
        base_value = base.value if base is not None else None
        ours = by_subject.get(KEELRUN)
        ours_value = ours.value if ours is not None else None
        ratio_head = f"x{wl.baseline}" if wl.baseline else ""
        p(f"   {'subject':<13}{'value':>12}  {ratio_head:>9}  {'keelrun/this':>12}  details")
        for f in rows:
            if f.error:
                p(f"   {f.subject + ':':<13}failed ({f.error})")
                continue
            vs_base = _ratio(f.value, base_value) if wl.baseline else ""
            vs_ours = _ratio(ours_value, f.value) if f.subject != KEELRUN else ""
            p(
                f"   {f.subject:<13}{fmt_value(f.value, wl.unit):>12}  {vs_base:>9}  "
                f"{vs_ours:>12}  {_details(f.details)}"
            )


def to_json(figures: list[Figure], header: dict[str, Any]) -> str:
    return json.dumps(
        {
            "header": header,
            "workloads": [asdict(w) for w in WORKLOADS],
            "figures": [asdict(f) for f in figures],
        },
        indent=2,
    )
