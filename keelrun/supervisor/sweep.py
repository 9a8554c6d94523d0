"""Sweeping: process groups and daemons that outlive an instance's main process.

A *leftover* is a process group whose leader has exited while other members
live on. It is stopped shortly after the leader exits, not at once: a
daemonising program forks, exits, and its child calls setsid a moment later,
and a signal sent in between would kill the daemon it meant to start. A
leftover group gets the stop signal after SETTLE seconds (at once when its
instance starts again or keelrun stops), then SIGKILL after the type's grace.

A *stray* is a descendant outside every group keelrun signals: a daemon that
called setsid. keelrun, as subreaper, is still its ancestor, so a stop finds it
through /proc and ends it too (README "`keelrun start`: what it does, exactly").
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterable

from keelrun.supervisor.kernel import Kernel

SETTLE = 1.0


class Leftover:
    """A group whose leader has exited (a plain class: no dataclass on the start path)."""

    __slots__ = ("deadline", "grace", "owner", "stop_at", "stop_signal")

    def __init__(
        self,
        owner: str,  # the instance it belonged to
        stop_signal: int,
        grace: float,
        stop_at: float,  # when it gets the stop signal
        deadline: float | None = None,  # SIGKILL time, once it is being stopped
    ) -> None:
        self.owner = owner
        self.stop_signal = stop_signal
        self.grace = grace
        self.stop_at = stop_at
        self.deadline = deadline

    def __repr__(self) -> str:
        return f"Leftover(owner={self.owner!r}, stop_at={self.stop_at}, deadline={self.deadline})"


class Sweeper:
    def __init__(self, kernel: Kernel, clock: Callable[[], float]) -> None:
        self.kernel = kernel
        self.clock = clock
        self.groups: dict[int, Leftover] = {}

    def __bool__(self) -> bool:
        return bool(self.groups)

    # -- leftover groups ------------------------------------------------------
    def add(self, pgid: int, owner: str, stop_signal: int, grace: float, stopping: bool) -> None:
        """Track a group; ``stopping``: it already got the stop signal with its leader."""
        now = self.clock()
        deadline = now + grace if stopping else None
        self.groups[pgid] = Leftover(owner, stop_signal, grace, now + SETTLE, deadline)

    def stop(self, owner: str | None = None) -> None:
        """Send the stop signal to the leftovers of owner (None: all) not yet stopping."""
        now = self.clock()
        for pgid, group in self.groups.items():
            if group.deadline is None and (owner is None or group.owner == owner):
                self.kernel.signal_group(pgid, group.stop_signal)
                group.deadline = now + group.grace

    def kill(self) -> None:
        for pgid in self.groups:
            self.kernel.signal_group(pgid, signal.SIGKILL)

    def check(self) -> bool:
        """Forget empty groups, signal those whose time has come; True while any is pending."""
        now = self.clock()
        for pgid, group in list(self.groups.items()):
            if not self.kernel.group_alive(pgid):
                del self.groups[pgid]
            elif group.deadline is None:
                if now >= group.stop_at:
                    self.kernel.signal_group(pgid, group.stop_signal)
                    group.deadline = now + group.grace
            elif now >= group.deadline:
                self.kernel.signal_group(pgid, signal.SIGKILL)
        return bool(self.groups)

    def max_grace(self) -> float:
        return max((g.grace for g in self.groups.values()), default=0.0)

    # -- strays -----------------------------------------------------------------
    def strays(self, instance_groups: Iterable[int]) -> list[int]:
        """Descendants outside every group keelrun signals: daemons that called setsid."""
        groups = set(instance_groups) | set(self.groups)
        return [pid for pid, pgid in self.kernel.descendants() if pgid not in groups]

    def signal_strays(self, instance_groups: Iterable[int], sig: int) -> list[int]:
        strays = self.strays(instance_groups)
        for pid in strays:
            self.kernel.signal_process(pid, sig)
        return strays
