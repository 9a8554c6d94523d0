"""CPU and memory figures for `keelrun ps`: one pass over /proc for every instance.

With a thousand instances `ps` must still answer within half a second, so on
Linux each /proc/PID/stat is read once per request and gives the parent, the
CPU time, the start time and the resident size; psutil, which reads several
files per process, is used only where there is no /proc (macOS).

CPU % is averaged over each process's lifetime, as ps(1) reports it (a single
request has no earlier sample to take a difference from), and summed over the
instance's process tree, as is RSS.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from keelrun.supervisor.procscan import stat_fields

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(slots=True)
class Snapshot:
    """Every process at one moment: its children, CPU seconds, age and RSS."""

    children: dict[int, list[int]] = field(default_factory=dict)
    cpu_s: dict[int, float] = field(default_factory=dict)
    age_s: dict[int, float] = field(default_factory=dict)
    rss: dict[int, int] = field(default_factory=dict)


def snapshot() -> Snapshot | None:
    """One pass over /proc; None where there is no /proc (then psutil answers)."""
    try:
        with open("/proc/uptime", "rb") as f:
            uptime = float(f.read().split()[0])
        entries = os.listdir("/proc")
    except OSError:
        return None
    snap = Snapshot()
    for name in entries:
        if not name.isdigit():
            continue
        fields = stat_fields(name, 22)
        if fields is None or fields[0] == b"Z":
            continue
        pid = int(name)
        snap.children.setdefault(int(fields[1]), []).append(pid)
        snap.cpu_s[pid] = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
        snap.age_s[pid] = max(uptime - int(fields[19]) / _CLOCK_TICKS, 1e-3)
        snap.rss[pid] = int(fields[21]) * _PAGE
    return snap


def tree_stats(pid: int, snap: Snapshot | None) -> tuple[float | None, int | None]:
    """(CPU %, RSS bytes) of a process and its descendants."""
    if snap is None:
        return _psutil_stats(pid)
    if pid not in snap.rss:
        return None, None
    cpu = 0.0
    rss = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        if p in snap.rss:
            cpu += snap.cpu_s[p] / snap.age_s[p] * 100.0
            rss += snap.rss[p]
        stack.extend(snap.children.get(p, ()))
    return round(cpu, 1), rss


def _psutil_stats(pid: int) -> tuple[float | None, int | None]:
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None, None
    cpu = 0.0
    rss = 0
    now = time.time()
    for proc in procs:
        try:
            with proc.oneshot():
                times = proc.cpu_times()
                age = max(now - proc.create_time(), 1e-3)
                cpu += (times.user + times.system) / age * 100.0
                rss += proc.memory_info().rss
        except psutil.Error:
            continue
    return round(cpu, 1), rss
