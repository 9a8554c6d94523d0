"""Helpers for driving a real `keelrun` in the background and inspecting /proc.

Modules: procs (/proc: alive, markers, waiting, reaping), runner (the `keelrun`
fixture's runs), control (the `runner` fixture, control-socket tests), faults (the
`fault_runs` fixture), lines (output collected as lines), wire (raw socket requests).

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
    poll_until,
    ppid_of,
    proc_environ,
    rss_kib,
    signal_masks,
    tree,
    wait_gone,
    wait_until,
    zombies_in,
)
from support.runner import CHILDREN, MARK_VAR, Keelrun, RunSet, py

__all__ = [
    "CHILDREN",
    "MARK_VAR",
    "Keelrun",
    "RunSet",
    "alive",
    "cmdline",
    "host_pid",
    "marked_pids",
    "ns_pids",
    "pid_state",
    "poll_until",
    "ppid_of",
    "proc_environ",
    "py",
    "rss_kib",
    "signal_masks",
    "tree",
    "wait_gone",
    "wait_until",
    "zombies_in",
]
