"""Starting children: posix_spawn of `/bin/sh -c COMMAND` in a session of its own.

posix_spawn (vfork-based in glibc) is much cheaper than fork+exec of a large
Python process and needs no Python code in the child: the attributes reset
every signal disposition and the signal mask, so nothing keelrun ignores or
blocks leaks into the app, and setsid puts the child in its own session and
process group so that a signal to the group reaches the whole tree.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

SHELL = "/bin/sh"
PR_SET_CHILD_SUBREAPER = 36


# Every signal whose disposition may be inherited as "ignored"; SIGKILL and
# SIGSTOP cannot be changed and glibc reserves 32 and 33.
_RESETTABLE = frozenset(
    s for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP) and s < 65
)
_devnull = "/dev/null"


def become_subreaper() -> bool:
    """Orphaned descendants get reparented to us, so we can reap and stop them."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def make_pipe() -> tuple[int, int]:
    """A pipe whose read end is non-blocking; both ends close on exec."""
    r, w = os.pipe2(os.O_CLOEXEC)
    os.set_blocking(r, False)
    return r, w


def spawn_shell(command: str, env: dict[str, str], stdout_w: int, stderr_w: int) -> int:
    """Start `/bin/sh -c command` in a new session; returns its pid (= its pgid)."""
    return os.posix_spawn(
        SHELL,
        [SHELL, "-c", command],
        env,
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, _devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, stdout_w, 1),
            (os.POSIX_SPAWN_DUP2, stderr_w, 2),
        ],
        setsid=True,
        setsigmask=(),
        setsigdef=_RESETTABLE,
    )


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
