"""An inotify descriptor that only says "something changed here": the watcher's idle gate.

watchfiles' Rust loop wakes every `step` to look at the changes it has
collected, so a watcher that called it all the time would cost CPU while
nothing happens. The helper thread instead sleeps in poll() on this
descriptor and lets watchfiles collect and debounce only once it is readable.
Linux only; elsewhere `open_gate` returns None and watchfiles is polled.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import sys
from collections.abc import Iterable

# <sys/inotify.h>: the events watchfiles turns into changes (a bare close is not one).
_IN_MODIFY = 0x002
_IN_ATTRIB = 0x004
_IN_MOVED_FROM = 0x040
_IN_MOVED_TO = 0x080
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_IN_DELETE_SELF = 0x400
_IN_MOVE_SELF = 0x800
_IN_ONLYDIR = 0x01000000
MASK = (
    _IN_MODIFY
    | _IN_ATTRIB
    | _IN_MOVED_FROM
    | _IN_MOVED_TO
    | _IN_CREATE
    | _IN_DELETE
    | _IN_DELETE_SELF
    | _IN_MOVE_SELF
)


class Gate:
    """Readable (``fd``) once anything changed in a watched directory since the last drain."""

    def __init__(self, libc: ctypes.CDLL, fd: int) -> None:
        self._libc = libc
        self.fd = fd

    def add(self, directories: Iterable[str]) -> None:
        """Watch each directory (not recursively); vanished ones are skipped.

        Raises OSError when the system refuses a watch (the inotify watch limit).
        """
        for path in directories:
            if self._libc.inotify_add_watch(self.fd, os.fsencode(path), MASK | _IN_ONLYDIR) < 0:
                err = ctypes.get_errno()
                if err not in (errno.ENOENT, errno.ENOTDIR, errno.EACCES):
                    raise OSError(err, f"cannot watch {path}: {os.strerror(err)}")

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self.fd, 65536):
                pass

    def close(self) -> None:
        os.close(self.fd)


def open_gate() -> Gate | None:
    """A new gate, or None where inotify is not available."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        # The interpreter's own symbols include libc's; find_library would run ldconfig.
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, AttributeError):
        return None
    return Gate(libc, fd) if fd >= 0 else None
