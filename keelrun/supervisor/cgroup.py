"""A cgroup v2 of the run's own, where the system lets keelrun make one.

The guardian's environment-marker sweep misses a daemon that called setsid
and cleared its environment. A cgroup catches it: keelrun moves itself and
what it started into a fresh child of its cgroup (lifeline.py says when),
later descendants are born in it, and `cgroup.kill` (Linux 5.14+) ends them
all at once however they hid. Where cgroups are read-only (most containers, most unprivileged
users) this returns None and the marker sweep alone does the job.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable


def _cgroup2_mount() -> str | None:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            if fields[sep + 1] == "cgroup2":
                return fields[4]
    return None


def _own_cgroup() -> str | None:
    with open("/proc/self/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return line[3:].strip()
    return None


def make_run_cgroup(name: str) -> str | None:
    """Create cgroup ``name`` under our own: its path, or None where that is not allowed."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        mount, own = _cgroup2_mount(), _own_cgroup()
        if mount is None or own is None:
            return None
        path = os.path.join(mount, own.lstrip("/"), name)
        os.mkdir(path, 0o755)
    except (OSError, ValueError, IndexError):
        return None
    if not os.path.exists(os.path.join(path, "cgroup.kill")):  # Linux < 5.14
        remove(path)
        return None
    return path


def enter(path: str) -> bool:
    """Move this process into the cgroup: every child it starts is born there."""
    try:
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
    except OSError:
        return False
    return True


def in_background(work: Callable[[], bool]) -> Callable[[], bool]:
    """Run ``work`` on a short-lived thread; returns a function that waits for its result.

    Cgroup migrations mostly wait on the kernel, not the CPU: the loop goes on
    meanwhile. The thread touches no supervisor state.
    """
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(work()), daemon=True)
    thread.start()

    def wait() -> bool:
        thread.join()
        return bool(result and result[0])

    return wait


def adopt(path: str, pids: list[int]) -> None:
    """Move processes that were started before we entered the cgroup into it."""
    procs = os.path.join(path, "cgroup.procs")
    for pid in pids:
        with contextlib.suppress(OSError), open(procs, "w") as f:
            f.write(str(pid))


def remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.rmdir(path)
