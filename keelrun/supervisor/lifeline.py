"""What makes sure nothing outlives keelrun: the run's marker, guardian and cgroup.

The guardian is started first thing, before the inputs are even read. The
run's cgroup is entered only once the formation is running: a process's first
cgroup migration holds the kernel's fork lock for 10-20 ms (an RCU grace
period), and every spawn would wait for it. So once the loop is first idle a
short-lived thread moves keelrun in and then the processes started before
that, whatever they forked meanwhile; later children are born inside.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from keelrun.supervisor import cgroup
from keelrun.supervisor.guardian import MARKER_VAR, Guardian
from keelrun.supervisor.procscan import descendants


class Lifeline:
    def __init__(self) -> None:
        self.marker = f"{os.getpid()}-{os.urandom(8).hex()}"
        # As PID 1 the kernel ends the whole namespace with us: no cgroup needed.
        self.cgroup = cgroup.make_run_cgroup(f"keelrun-{self.marker}") if os.getpid() != 1 else None
        # The guardian starts before we enter the cgroup: it must stay outside it.
        self.guardian = Guardian(self.marker, self.cgroup)
        self.guardian.start()
        self._settled: Callable[[], bool] | None = None

    @property
    def env(self) -> dict[str, str]:
        """What every child inherits so that the guardian can find it."""
        return {MARKER_VAR: self.marker}

    def settle(self) -> None:
        """Once the formation runs: move keelrun, and what it started, into the cgroup."""
        if self.cgroup is None or self._settled is not None:
            return
        path = self.cgroup

        def move_in() -> bool:
            if not cgroup.enter(path):
                return False
            # Read after entering: anything forked from now on is born inside.
            # (The guardian is detached: it is no descendant, and stays outside.)
            cgroup.adopt(path, [pid for pid, _ in descendants(os.getpid())])
            return True

        self._settled = cgroup.in_background(move_in)

    def close(self) -> None:
        """A clean exit (everything stopped) or one before anything started: let go."""
        if self._settled is not None:
            self._settled()
        # The guardian removes the cgroup once keelrun has exited: moving out
        # first would hold the kernel's fork lock for another RCU grace period.
        self.guardian.close()
