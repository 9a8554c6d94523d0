"""CPU and memory figures for `keelrun ps` (psutil, imported only here)."""

from __future__ import annotations

import time

from keelrun.supervisor.procscan import ProcessTree, descendants


def group_stats(pid: int, tree: ProcessTree) -> tuple[float | None, int | None]:
    """(CPU %, RSS bytes) of a process and its descendants.

    CPU % is averaged over each process's lifetime, as ps(1) reports it: a
    single request has no earlier sample to take a difference from.
    """
    import psutil

    # The tree comes from one /proc pass per request: psutil's children()
    # would walk all of /proc again for every instance.
    procs = []
    for p in (pid, *(child for child, _ in descendants(pid, tree))):
        try:
            procs.append(psutil.Process(p))
        except psutil.Error:
            continue
    if not procs:
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
