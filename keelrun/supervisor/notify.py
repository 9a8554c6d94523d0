"""sd_notify(3) for the instances: keelrun's datagram socket, who may speak on it, what is said.

The socket lives in Linux's abstract namespace (``@keelrun/<pid>/<random>``):
no file is created, so a read-only root filesystem or an unwritable app root
changes nothing, and nothing is left behind by a killed keelrun. Anyone in the
network namespace could send to it, so the address is no secret and the
check is the sender: SO_PASSCRED makes the kernel attach the sending
process's pid to every datagram (a process cannot claim another's pid
without CAP_SYS_ADMIN), and a datagram counts only when that pid is the
instance's process or one of its descendants, i.e. in the instance's session
or below it in the process tree. Everything else is counted in ``ignored``
and dropped: wrong sender, no credentials, longer than 4096 bytes, not
UTF-8, a line without ``=``. File descriptors passed along (FDSTORE=1,
systemd-notify's BARRIER=1) are closed at once.
"""

from __future__ import annotations

import array
import collections
import contextlib
import os
import socket
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from keelrun.errors import one_line
from keelrun.loop import Loop
from keelrun.supervisor.procscan import stat_fields

MAX_DATAGRAM = 4096  # what systemd accepts too
BATCH = 64  # datagrams per wakeup: a flood waits for the next turn, it never holds the loop
MAX_DEPTH = 64  # how far up the tree a sender is followed
_SCM_MAX_FD = 253
_UCRED = struct.Struct("iII")  # pid, uid, gid
_ANCILLARY = socket.CMSG_SPACE(_UCRED.size) + socket.CMSG_SPACE(4 * _SCM_MAX_FD)

NOTIFY_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


@dataclass(frozen=True, slots=True)
class NotifyMessage:
    """What one datagram says; assignments keelrun does not act on are ignored."""

    ready: bool = False
    reloading: bool = False
    stopping: bool = False
    watchdog: bool = False  # WATCHDOG=1: alive
    watchdog_trigger: bool = False  # WATCHDOG=trigger: the app declares itself failed
    status: str | None = None  # STATUS=..., made safe for a terminal


def parse_message(data: bytes) -> NotifyMessage | None:
    """The assignments of one datagram, or None when it is malformed."""
    if not data or len(data) > MAX_DATAGRAM or b"\0" in data:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    fields: dict[str, str] = {}
    for line in text.split("\n"):
        if not line:
            continue
        key, eq, value = line.partition("=")
        if not eq or not key:
            return None
        fields[key] = value
    if not fields:
        return None
    watchdog = fields.get("WATCHDOG")
    status = fields.get("STATUS")
    return NotifyMessage(
        ready=fields.get("READY") == "1",
        reloading=fields.get("RELOADING") == "1",
        stopping=fields.get("STOPPING") == "1",
        watchdog=watchdog == "1",
        watchdog_trigger=watchdog == "trigger",
        status=one_line(status) if status is not None else None,
    )


def sender_pid(ancdata: list[tuple[int, int, bytes]]) -> int | None:
    """The pid from SCM_CREDENTIALS; every passed file descriptor is closed on the way."""
    pid = None
    for level, kind, data in ancdata:
        if level != socket.SOL_SOCKET:
            continue
        if kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
        elif kind == socket.SCM_CREDENTIALS and len(data) >= _UCRED.size:
            pid = _UCRED.unpack_from(data)[0]
    return pid if pid else None


def _parent_and_session(pid: int) -> tuple[int, int] | None:
    """ppid and session of pid, zombies included (a sender may have just exited)."""
    fields = stat_fields(pid, 5)
    return (int(fields[1]), int(fields[3])) if fields is not None else None


def owning_root(pid: int, roots: Mapping[int, object], me: int | None = None) -> int | None:
    """The watched root pid that ``pid`` is, or descends from; None for an outsider.

    Instances run in sessions of their own, so a sender in a root's session is
    one of its descendants even after its parent died; one that left with
    setsid is followed up the tree.
    """
    me = os.getpid() if me is None else me
    for _ in range(MAX_DEPTH):
        if pid in roots:
            return pid
        ids = _parent_and_session(pid)
        if ids is None:
            return None
        ppid, sid = ids
        if sid in roots:
            return sid
        if ppid <= 1 or ppid == me:
            return None
        pid = ppid
    return None


Handler = Callable[[NotifyMessage], None]


class NotifyReceiver:
    """keelrun's one notify socket; ``watch(pid, handler)`` for each instance that uses it."""

    def __init__(self, loop: Loop) -> None:
        self.loop = loop
        self.address = f"@keelrun/{os.getpid()}/{os.urandom(8).hex()}"
        sock = socket.socket(
            socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
        )
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            sock.bind("\0" + self.address[1:])
        except OSError:
            sock.close()
            raise
        self.sock = sock
        self._handlers: dict[int, Handler] = {}
        self.ignored: collections.Counter[str] = collections.Counter()
        loop.add_reader(sock.fileno(), self._on_readable)

    def watch(self, pid: int, handler: Handler) -> None:
        """Datagrams from pid's tree go to handler (from spawn until the reaper collects pid)."""
        self._handlers[pid] = handler

    def unwatch(self, pid: int) -> None:
        self._handlers.pop(pid, None)

    def _on_readable(self, mask: int) -> None:
        for _ in range(BATCH):
            try:
                data, ancdata, flags, _ = self.sock.recvmsg(MAX_DATAGRAM, _ANCILLARY)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.ignored["receive error"] += 1
                return
            self._datagram(data, ancdata, flags)

    def _datagram(self, data: bytes, ancdata: list[tuple[int, int, bytes]], flags: int) -> None:
        pid = sender_pid(ancdata)  # closes passed fds whatever happens next
        if flags & socket.MSG_TRUNC:
            self.ignored["too long"] += 1
            return
        if pid is None:
            self.ignored["no credentials"] += 1
            return
        message = parse_message(data)
        if message is None:
            self.ignored["malformed"] += 1
            return
        root = owning_root(pid, self._handlers)
        if root is None:
            self.ignored["not from an instance"] += 1
            return
        self._handlers[root](message)

    def close(self) -> None:
        self.loop.remove(self.sock.fileno())
        self.sock.close()


def instance_env(
    env: Mapping[str, str], address: str | None, watchdog: float | None = None
) -> dict[str, str]:
    """An instance's environment: keelrun's own NOTIFY_SOCKET (from systemd) never passes on;
    a type that uses notify or a watchdog gets keelrun's socket (``address``) instead.

    WATCHDOG_PID is not set here: the instance's pid is not known before the
    fork, so the shell sets it (``with_watchdog_pid``).
    """
    out = {k: v for k, v in env.items() if k not in NOTIFY_VARS}
    if address is not None:
        out["NOTIFY_SOCKET"] = address
        if watchdog is not None:
            out["WATCHDOG_USEC"] = str(max(1, round(watchdog * 1_000_000)))
    return out


def with_watchdog_pid(script: str) -> str:
    """The instance's shell script, exporting WATCHDOG_PID as the instance's own pid.

    ``$$`` is the pid of the ``/bin/sh -c`` that keelrun starts, which is the
    instance's pid; a simple command (or the last one of a list) is exec'd
    in that very process, so the app finds WATCHDOG_PID equal to getpid(),
    as sd_watchdog_enabled(3) requires.
    """
    return "WATCHDOG_PID=$$; export WATCHDOG_PID\n" + script
