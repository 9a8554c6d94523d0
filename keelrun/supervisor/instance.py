"""One instance `type.N` of the formation and the pipes (or pty) of its current process."""

from __future__ import annotations

import contextlib
import enum
import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from keelrun.loop import Timer
from keelrun.settings import ProcessTypeSettings
from keelrun.supervisor.framing import LineFramer
from keelrun.supervisor.kernel import Child
from keelrun.supervisor.lifecycle import RestartTracker, State
from keelrun.supervisor.ring import LogRing

if TYPE_CHECKING:
    from keelrun.supervisor.health import InstanceHealth
    from keelrun.supervisor.terminal import Terminal


class Intent(enum.Enum):
    """What to do once the running process has ended."""

    NONE = "none"  # it ended by itself: the restart policy decides
    STOP = "stop"  # stay stopped
    RESTART = "restart"  # start again at once
    REMOVE = "remove"  # scaled away
    READY_TIMEOUT = "ready-timeout"  # a failed start
    UNHEALTHY = "unhealthy"  # a failed start too: its health checks failed


class Stream:
    """One pipe (stdout or stderr) of one process, or the master of its pty."""

    __slots__ = ("closed", "fd", "framer", "instance", "name", "paused", "reader")

    def __init__(self, fd: int, instance: Instance, name: str) -> None:
        self.fd = fd
        self.instance = instance
        self.name = name
        self.framer = LineFramer()
        # os.readv's contract: bytes read, BlockingIOError, OSError at the end.
        self.reader: Callable[[int, list[memoryview]], int] = os.readv
        self.closed = False
        self.paused = False


class Instance:
    def __init__(self, ptype: ProcessTypeSettings, number: int) -> None:
        self.ptype = ptype
        self.number = number
        self.name = f"{ptype.name}.{number}"
        self.state = State.STOPPED
        self.pid: int | None = None
        self.last_pid: int | None = None
        self.child: Child | None = None  # the running process, until it is reaped
        self.started_at = 0.0  # loop time of the last spawn
        self.restarts = 0
        self.exit_status: int | None = None
        self.ended_seq = 0  # order in which instances last ended
        self.tracker = RestartTracker(ptype.max_restarts)
        self.intent = Intent.NONE
        self.killed = False  # SIGKILL sent to this process already
        self.timer: Timer | None = None  # back-off or grace deadline
        self.streams: list[Stream] = []
        self.terminal: Terminal | None = None  # the pty of the current process (tty types)
        self.ring = LogRing()
        self.log_ready: re.Pattern[str] | None = None  # while waiting for a ready line
        self.health: InstanceHealth | None = None  # this incarnation's checks (checks.py)
        # This incarnation was started with a ready check: a reload that adds or drops
        # `ready` applies from the next start, so dependents judge by this one.
        self.ready_check = False

    @property
    def port(self) -> int:
        return self.ptype.port_of(self.number)

    @property
    def command(self) -> str:
        return self.ptype.command

    def uptime(self, now: float) -> float:
        return now - self.started_at if self.pid is not None else 0.0

    def cancel_timers(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def is_ready_for_dependents(self) -> bool:
        if not self.ready_check:
            return self.state in (State.RUNNING, State.READY)
        return self.state is State.READY

    @property
    def public_state(self) -> str:
        """The state `ps` shows: an app that said STOPPING=1 is stopping."""
        health = self.health
        if health is not None and health.app_stopping and self.state is not State.STOPPING:
            return "stopping"
        return self.state.public

    def describe(self, now: float) -> dict[str, object]:
        """The `keelrun ps --json` record, without psutil's figures."""
        health = self.health
        return {
            "name": self.name,
            "type": self.ptype.name,
            "pid": self.pid,
            "state": self.public_state,
            "uptime_s": round(self.uptime(now), 3) if self.pid is not None else None,
            "restarts": self.restarts,
            "exit_status": self.exit_status,
            "port": self.port,
            "command": self.command,
            "health": health.health if health is not None else None,
            "status": health.status if health is not None else None,
        }


def close_stream(stream: Stream) -> None:
    if not stream.closed:
        stream.closed = True
        with contextlib.suppress(OSError):
            os.close(stream.fd)
