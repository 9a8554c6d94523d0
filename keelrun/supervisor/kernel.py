"""What the supervisor asks of the operating system, in one object.

Spawning, signalling groups, reaping and looking at the process tree go
through a ``Kernel``, so that the supervisor's state machine can be driven in
tests by a fake one (the way gunicorn's tests script ``waitpid``), while the
real-process suites prove the real one.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator

from keelrun.supervisor import procscan, spawn


class Child:
    """A started process: its pid (also its process group) and the read ends of its output
    (for a tty one, ``stdout`` is its pty's master and ``stderr`` is -1).

    A plain class, not a dataclass: this module is imported on every start,
    and a dataclass costs about a millisecond to build.
    """

    __slots__ = ("pid", "proc", "stderr", "stdout")

    def __init__(
        self, pid: int, stdout: int, stderr: int, proc: subprocess.Popen[bytes] | None = None
    ) -> None:
        self.pid = pid
        self.stdout = stdout
        self.stderr = stderr
        self.proc = proc  # never waited on: see spawn.py

    def __repr__(self) -> str:
        return f"Child(pid={self.pid}, stdout={self.stdout}, stderr={self.stderr})"


class Kernel:
    def __init__(self, child_fd_limit: tuple[int, int] | None = None) -> None:
        # keelrun raised its own fd limit (raise_fd_limit): children get the old one back.
        self.child_fd_limit = child_fd_limit

    def spawn(self, command: str, env: dict[str, str], watchdog_pid: bool = False) -> Child:
        """Start ``/bin/sh -c COMMAND`` in a session of its own; OSError if it cannot be.

        ``watchdog_pid``: the shell sets WATCHDOG_PID to the instance's pid first.
        """
        fds: list[int] = []
        try:
            out_r, out_w = spawn.make_pipe()
            fds += (out_r, out_w)
            err_r, err_w = spawn.make_pipe()
            fds += (err_r, err_w)
            proc = spawn.spawn_shell(command, env, out_w, err_w, watchdog_pid)
        except OSError:
            spawn.close_quietly(*fds)
            raise
        spawn.close_quietly(out_w, err_w)
        if self.child_fd_limit is not None:
            spawn.restore_fd_limit(proc.pid, self.child_fd_limit)
        return Child(proc.pid, out_r, err_r, proc)

    def spawn_tty(self, command: str, env: dict[str, str], watchdog_pid: bool = False) -> Child:
        """Start it on a new pty (80x24) as its controlling terminal: ``stdout`` is the
        master, non-blocking; there is no ``stderr`` (-1). OSError if it cannot be."""
        from keelrun.supervisor import terminal

        master, slave, path = terminal.open_pty()
        try:
            proc = terminal.spawn_on_tty(command, env, slave, path, watchdog_pid)
        except OSError:
            spawn.close_quietly(master, slave)
            raise
        # Only the child holds the slave now: the master sees EOF once its processes end.
        spawn.close_quietly(slave)
        if self.child_fd_limit is not None:
            spawn.restore_fd_limit(proc.pid, self.child_fd_limit)
        return Child(proc.pid, master, -1, proc)

    def reaped(self, child: Child, status: int) -> None:
        """The reaper collected ``child``: tell its Popen, so that it never waits itself."""
        if child.proc is not None:
            spawn.reaped(child.proc, status)
            child.proc = None

    def reap(self) -> Iterator[tuple[int, int]]:
        """Every child that has ended: (pid, wait status). The only waitpid in keelrun."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            yield pid, status

    def signal_group(self, pgid: int, sig: int) -> bool:
        return spawn.signal_group(pgid, sig)

    def group_alive(self, pgid: int) -> bool:
        return spawn.group_alive(pgid)

    def signal_process(self, pid: int, sig: int) -> None:
        try:
            os.kill(pid, sig)
        except OSError as e:
            if e.errno not in (errno.ESRCH, errno.EPERM):
                raise

    def descendants(self) -> list[tuple[int, int]]:
        """(pid, pgid) of every living descendant of keelrun."""
        return procscan.descendants(os.getpid())
