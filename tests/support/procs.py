"""Reading /proc: who is alive, who is a zombie, who carries a marker."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


def _stat_fields(pid: int) -> list[bytes] | None:
    """Fields of /proc/PID/stat after the command name: [state, ppid, pgrp, session, ...]."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rfind(b")") + 2 :].split()


def pid_state(pid: int) -> str | None:
    """The one-letter state (R, S, Z, ...) or None when the pid is gone."""
    fields = _stat_fields(pid)
    return fields[0].decode() if fields else None


def alive(pid: int) -> bool:
    """Exists and is not a zombie."""
    state = pid_state(pid)
    return state is not None and state not in ("Z", "X")


def ppid_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def pgid_sid(pid: int) -> tuple[int, int] | None:
    fields = _stat_fields(pid)
    return (int(fields[2]), int(fields[3])) if fields else None


def _all_pids() -> list[int]:
    return [int(n) for n in os.listdir("/proc") if n.isdigit()]


def tree(root: int) -> dict[int, str]:
    """Every descendant of root (zombies included) as pid -> state; root not included."""
    children: dict[int, list[int]] = {}
    states: dict[int, str] = {}
    for pid in _all_pids():
        fields = _stat_fields(pid)
        if fields:
            states[pid] = fields[0].decode()
            children.setdefault(int(fields[1]), []).append(pid)
    found: dict[int, str] = {}
    stack = list(children.get(root, ()))
    while stack:
        pid = stack.pop()
        found[pid] = states[pid]
        stack.extend(children.get(pid, ()))
    return found


def zombies_in(root: int) -> list[int]:
    return sorted(pid for pid, state in tree(root).items() if state == "Z")


def marked_pids(marker: str) -> list[int]:
    """Living processes whose environment holds the entry ``marker`` (e.g. "VAR=value")."""
    needle = marker.encode()
    me = os.getpid()
    found = []
    for pid in _all_pids():
        if pid == me:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if needle in env and alive(pid):
            found.append(pid)
    return found


def wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait (pidfd, no polling) until every pid has exited; return those still alive."""
    fds: dict[int, int] = {}
    for pid in pids:
        try:
            fds[os.pidfd_open(pid)] = pid
        except ProcessLookupError:
            continue
    try:
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        pending = set(fds)
        deadline = time.monotonic() + timeout
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for fd, _ in poller.poll(left * 1000):
                pending.discard(fd)
                poller.unregister(fd)
        return sorted(fds[fd] for fd in pending if alive(fds[fd]))
    finally:
        for fd in fds:
            os.close(fd)


def poll_until(predicate: Callable[[], T], timeout: float, step: float = 0.02) -> T:
    """For states the kernel sends no event for (e.g. "no zombie left"): re-check until
    the predicate holds or ``timeout`` passes; returns its last value (falsy on timeout)."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        pause.wait(step)


def wait_until(predicate: Callable[[], T], timeout: float, what: str, step: float = 0.02) -> T:
    """poll_until that fails the test on timeout; returns the predicate's (truthy) value."""
    value = poll_until(predicate, timeout, step)
    if not value:
        raise AssertionError(f"timed out after {timeout:g}s waiting for: {what}")
    return value


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def signal_masks(status_text: str) -> dict[str, int]:
    """SigBlk/SigIgn/SigCgt of a /proc/PID/status text, as integers."""
    masks = {}
    for line in status_text.splitlines():
        key, _, value = line.partition(":")
        if key in ("SigBlk", "SigIgn", "SigCgt", "SigPnd", "ShdPnd"):
            masks[key] = int(value.strip(), 16)
    return masks


def kill_all(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, sig)


def reap_marked(marker: str, grace: float) -> list[str]:
    """Give the processes carrying ``marker`` up to ``grace`` seconds to end on their own
    (re-scanning, so late-born ones count too), SIGKILL the rest; returns those killed,
    described while they still had a command line."""
    poll_until(lambda: not marked_pids(marker), grace, step=0.05)
    left = marked_pids(marker)
    described = [_described(pid) for pid in left]
    kill_all(left, signal.SIGKILL)
    return described


def ns_pids(pid: int) -> list[int]:
    """The pid as seen from each pid namespace, outermost first (NSpid)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("NSpid:"):
                return [int(x) for x in line.split()[1:]]
    raise AssertionError(f"no NSpid for {pid}")


def host_pid(root: int, inner: int) -> int:
    """The host pid of the descendant of root whose innermost pid is ``inner``."""
    for pid in tree(root):
        with contextlib.suppress(OSError, AssertionError):
            if ns_pids(pid)[-1] == inner:
                return pid
    raise AssertionError(f"no descendant of {root} has namespace pid {inner}")


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def _described(pid: int) -> str:
    return f"{pid} ({cmdline(pid)[:200]})"


def describe(pids: Iterable[int]) -> str:
    """ "pid (command line)" of each, for failure messages."""
    return ", ".join(_described(pid) for pid in pids)


def proc_environ(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as f:
        raw = f.read()
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(): v.decode(errors="replace") for k, v in pairs}
