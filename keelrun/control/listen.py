"""Where the control socket's file is created, and how (README "Control socket protocol").

A live keelrun on the path is refused, a stale socket left by a killed one is
replaced, and the file is created with mode 0600 with no window in which
others may connect. A path too long for a Unix socket, or a default socket
whose app root cannot be written, is served at its stand-in
(keelrun.control.address); a socket the user named is created where named or
not at all.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from pathlib import Path
from typing import NamedTuple

from keelrun.control.address import UnsafeDirectory, fits, private_dir, stand_ins
from keelrun.errors import InputError, RuntimeFailure


class AlreadyRunning(RuntimeFailure):
    pass


# Why a socket cannot be created where it was asked for, but might be elsewhere.
_UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


class _Unwritable(Exception):
    pass


class Listening(NamedTuple):
    sock: socket.socket  # non-blocking, listening
    address: Path  # where it was bound
    moved: str | None  # why it is not at the path asked for (None: it is)


def listen(path: Path, *, fallback: bool) -> Listening:
    """Listen on ``path``, or (``fallback``: the default socket) on its stand-in."""
    why = f"longer than a Unix socket allows ({len(os.fsencode(str(path)))} bytes)"
    if fits(path):
        try:
            return Listening(_listen(path, path), path, None)
        except _Unwritable as e:
            if not fallback:
                raise InputError(str(path), f"cannot listen: {e}") from None
            why = f"{path.parent} is not writable: {e}"
    tried = []
    for address in stand_ins(path):
        try:
            private_dir(address.parent)
        except UnsafeDirectory:
            raise
        except OSError as e:
            tried.append(f"{address.parent}: {e.strerror or e}")
            continue
        try:
            return Listening(_listen(address, path), address, why)
        except _Unwritable as e:
            tried.append(f"{address}: {e}")
    raise RuntimeFailure(f"{path}: cannot listen ({why}), nor at {'; '.join(tried)}")


def _listen(address: Path, path: Path) -> socket.socket:
    if os.path.lexists(address):
        if os.path.isdir(address):
            raise InputError(str(address), "is a directory, not a socket")
        if not stat.S_ISSOCK(os.lstat(address).st_mode):
            raise RuntimeFailure(f"{address}: exists and is not a socket")
        if _answers(address):
            at = "" if address == path else f" (socket {address})"
            raise AlreadyRunning(f"keelrun is already running on {path}{at}")
        try:
            os.unlink(address)  # stale: its keelrun was killed
        except OSError as e:
            if e.errno in _UNWRITABLE:
                raise _Unwritable(f"cannot replace a stale socket: {e.strerror}") from None
            raise RuntimeFailure(f"{address}: cannot replace a stale socket: {e}") from None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # created 0600: no window where others may connect
    try:
        sock.bind(str(address))
        os.chmod(address, 0o600)
    except OSError as e:
        sock.close()
        if e.errno in _UNWRITABLE:
            raise _Unwritable(e.strerror or str(e)) from None
        raise InputError(str(address), f"cannot listen: {e.strerror or e}") from None
    finally:
        os.umask(old_umask)
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _answers(address: Path) -> bool:
    """Whether a live server accepts connections on address."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(address))
    except OSError:
        return False
    finally:
        probe.close()
    return True
