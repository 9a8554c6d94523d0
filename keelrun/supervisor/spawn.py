"""Starting children: `/bin/sh -c COMMAND` in a session of its own.

subprocess.Popen (vfork-based since Python 3.10) rather than os.posix_spawn:
glibc's posix_spawn leaves its two internal signals (32 and 33) ignored in
the child, and an ignored signal survives exec into the app. keelrun resets
the dispositions it inherited at start-up (`reset_inherited_signals`), Popen
restores SIGPIPE and SIGXFSZ that Python ignores, and exec resets every
signal keelrun handles; so the app starts with no signal ignored or blocked.

The trap: Popen must never wait for its child, since the supervisor's one
reaper does. keelrun never calls wait() or poll(), keeps each Popen until its
child is reaped, and then sets its returncode, so that neither Popen.__del__
nor subprocess' internal clean-up ever calls waitpid behind the reaper's back.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys

from keelrun.supervisor.shellcmd import exec_form

SHELL = "/bin/sh"
PR_SET_CHILD_SUBREAPER = 36
# Python itself ignores these; Popen(restore_signals=True) resets them in children.
_PYTHON_IGNORES = (signal.SIGPIPE, signal.SIGXFSZ)


def become_subreaper() -> bool:
    """Orphaned descendants get reparented to us, so we can reap and stop them."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def raise_fd_limit() -> tuple[int, int] | None:
    """Raise keelrun's soft fd limit to the hard one; the old limits, if they changed.

    Each instance holds two pipe ends in keelrun, so 1,000 instances need more
    than the usual soft limit of 1024; raised once at start, later scale-ups
    benefit too. Children are given the old limit back (restore_fd_limit):
    programs that select() or close every possible fd do not expect a huge one.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft == hard:
        return None
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        return None
    return soft, hard


def restore_fd_limit(pid: int, limits: tuple[int, int]) -> None:
    """Give a child (just spawned, still a shell or its app) the fd limit keelrun started with."""
    import resource

    with contextlib.suppress(OSError, ValueError):
        resource.prlimit(pid, resource.RLIMIT_NOFILE, limits)


def make_pipe() -> tuple[int, int]:
    """A pipe whose read end is non-blocking; both ends close on exec."""
    r, w = os.pipe2(os.O_CLOEXEC)
    os.set_blocking(r, False)
    return r, w


def reset_inherited_signals(keep: set[int]) -> None:
    """Clear the inherited signal mask and ignored dispositions (except ``keep``).

    Both would be inherited through exec by every child: a keelrun started
    with SIGUSR1 ignored must not start apps deaf to SIGUSR1.
    """
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    for sig in signal.valid_signals():
        if sig in keep or sig in _PYTHON_IGNORES or sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        with contextlib.suppress(OSError, ValueError):
            if signal.getsignal(sig) == signal.SIG_IGN:
                signal.signal(sig, signal.SIG_DFL)


def spawn_shell(
    command: str, env: dict[str, str], stdout_w: int, stderr_w: int, watchdog_pid: bool = False
) -> subprocess.Popen[bytes]:
    """Start `/bin/sh -c command` in a new session (its pid is its pgid).

    The command's last simple command is exec'd when it is a program (shellcmd.py).
    ``watchdog_pid``: the script first exports WATCHDOG_PID=$$ (notify.with_watchdog_pid).
    """
    script = exec_form(command)
    if watchdog_pid:
        from keelrun.supervisor.notify import with_watchdog_pid

        script = with_watchdog_pid(script)
    return subprocess.Popen(
        [SHELL, "-c", script],
        stdin=subprocess.DEVNULL,
        stdout=stdout_w,
        stderr=stderr_w,
        env=env,
        close_fds=True,
        restore_signals=True,
        start_new_session=True,
    )


def reaped(proc: subprocess.Popen[bytes], status: int) -> None:
    """Record the status the reaper collected, so that Popen never waits itself."""
    proc.returncode = os.waitstatus_to_exitcode(status)


def signal_group(pgid: int, sig: int) -> bool:
    """Signal a process group; False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        # A member changed uid (setuid program): the group still exists.
        return True
    return True


def group_alive(pgid: int) -> bool:
    return signal_group(pgid, 0)


def close_quietly(*fds: int) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
