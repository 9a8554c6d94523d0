"""Process groups whose leader has exited while other members live on.

They are stopped shortly after the leader exits, not at once: a daemonising
program forks, exits, and its child calls setsid a moment later, and a
signal sent in between would kill the daemon it meant to start. A leftover
group gets the stop signal after SETTLE seconds (at once when its instance
starts again or keelrun stops), then SIGKILL after the type's grace.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass

from keelrun.supervisor import spawn

SETTLE = 1.0


@dataclass(slots=True)
class Leftover:
    owner: str  # the instance it belonged to
    stop_signal: int
    grace: float
    stop_at: float  # when it gets the stop signal
    deadline: float | None = None  # SIGKILL time, once it is being stopped


class Leftovers:
    def __init__(self) -> None:
        self.groups: dict[int, Leftover] = {}

    def __bool__(self) -> bool:
        return bool(self.groups)

    def add(self, pgid: int, owner: str, stop_signal: int, grace: float, stopping: bool) -> None:
        """Track a group; ``stopping``: it already got the stop signal with its leader."""
        now = time.monotonic()
        deadline = now + grace if stopping else None
        self.groups[pgid] = Leftover(owner, stop_signal, grace, now + SETTLE, deadline)

    def stop(self, owner: str | None = None) -> None:
        """Send the stop signal to the leftovers of owner (None: all) not yet stopping."""
        now = time.monotonic()
        for pgid, group in self.groups.items():
            if group.deadline is None and (owner is None or group.owner == owner):
                spawn.signal_group(pgid, group.stop_signal)
                group.deadline = now + group.grace

    def kill(self) -> None:
        for pgid in self.groups:
            spawn.signal_group(pgid, signal.SIGKILL)

    def check(self) -> bool:
        """Forget empty groups, signal those whose time has come; True while any is pending."""
        now = time.monotonic()
        for pgid, group in list(self.groups.items()):
            if not spawn.group_alive(pgid):
                del self.groups[pgid]
            elif group.deadline is None:
                if now >= group.stop_at:
                    spawn.signal_group(pgid, group.stop_signal)
                    group.deadline = now + group.grace
            elif now >= group.deadline:
                spawn.signal_group(pgid, signal.SIGKILL)
        return bool(self.groups)

    def max_grace(self) -> float:
        return max((g.grace for g in self.groups.values()), default=0.0)
