"""Helpers for driving a real `keelrun` in the background and inspecting /proc.

Every run gets a unique marker variable in its environment; keelrun hands its
environment down, so every descendant (daemons included) carries it, and a
scan of /proc/*/environ finds whatever a run left behind.
"""

from support.procs import (
    alive,
    cmdline,
    host_pid,
    marked_pids,
    ns_pids,
    pid_state,
    ppid_of,
    rss_kib,
    signal_masks,
    tree,
    wait_gone,
    wait_until,
    zombies_in,
)
from support.runner import CHILDREN, MARK_VAR, Keelrun, Launcher, py

__all__ = [
    "CHILDREN",
    "MARK_VAR",
    "Keelrun",
    "Launcher",
    "alive",
    "cmdline",
    "host_pid",
    "marked_pids",
    "ns_pids",
    "pid_state",
    "ppid_of",
    "py",
    "rss_kib",
    "signal_masks",
    "tree",
    "wait_gone",
    "wait_until",
    "zombies_in",
]
