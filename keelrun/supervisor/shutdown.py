"""Stopping everything: the stop signal to every group, SIGKILL after the grace, then exit.

A stop is requested once (a signal, `keelrun stop`, a failed type, the end of
every process); a second SIGINT/SIGTERM, or the end of the grace, forces it
with SIGKILL, announced once. keelrun's loop ends when every instance,
leftover group and stray daemon is gone (README "`keelrun start`: what it does,
exactly").
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

from keelrun.loop import Timer, cancel
from keelrun.supervisor.instance import Intent
from keelrun.supervisor.lifecycle import State

if TYPE_CHECKING:
    from keelrun.supervisor.supervisor import Supervisor

STOP_CHECK = 0.05  # re-check of groups being stopped, only while any are
FINAL_REAP = 1.0  # after SIGKILL, how long to wait for the kernel to deliver the deaths


class Shutdown:
    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.active = False  # a stop was requested: nothing new starts
        self.forced = False  # SIGKILL was sent to everything
        self.status: int | None = None  # keelrun's exit status (None: ending.final_status)
        self._tick_timer: Timer | None = None
        self._stop_timer: Timer | None = None

    def schedule_tick(self) -> None:
        if self._tick_timer is None:
            self._tick_timer = self.sup.loop.call_later(STOP_CHECK, self._tick)

    def _tick(self) -> None:
        """Runs only while leftover groups or strays are being stopped, never when idle."""
        self._tick_timer = None
        if self.sup.sweeper.check():
            self.schedule_tick()
        if self.active:
            self.check_done()

    def request(
        self, status: int | None = 0, reason: str = "stop requested", hint: str = ""
    ) -> None:
        """Stop everything: the stop signal to every group, SIGKILL after the grace."""
        if self.active:
            return
        self.active = True
        self.status = status
        sup = self.sup
        if sup.checks.service is not None:
            sup.checks.service.stopping()  # keelrun under systemd: STOPPING=1 first
        running = any(inst.pid is not None for inst in sup.instances.values())
        text = f"stopping all processes ({reason})" + (f"; {hint}" if hint and running else "")
        sup.events.info("stopping", text, reason=reason)
        grace = 0.0
        for inst in sup.instances.values():
            if inst.pid is not None:
                # Each instance gets its own type's grace before its SIGKILL.
                sup.stop_process(inst, Intent.STOP)
                grace = max(grace, inst.ptype.grace)
            else:
                inst.timer = cancel(inst.timer)
                if inst.state in (State.BACKOFF, State.HELD):
                    inst.state = State.STOPPED
        sup.sweeper.stop()
        strays = sup.sweeper.signal_strays(sup.by_pid, signal.SIGTERM)
        grace = max(grace, sup.sweeper.max_grace(), sup.settings.timeout if strays else 0.0)
        self._stop_timer = sup.loop.call_later(grace, self._grace_over)
        self.check_done()

    def force(self, reason: str) -> None:
        """A second interrupt, or the grace ran out: SIGKILL everything now (announced once)."""
        if self.forced:
            return
        self.forced = True
        sup = self.sup
        # Instances their own grace already killed are not announced twice.
        alive = [i for i in sup.instances.values() if i.pid is not None and not i.killed]
        if alive:
            names = [i.name for i in alive]
            sup.events.warning(
                "killed", f"{reason}: SIGKILL {', '.join(names)}", reason=reason, targets=names
            )
        for inst in alive:
            assert inst.pid is not None
            sup.kernel.signal_group(inst.pid, signal.SIGKILL)
            inst.killed = True
        sup.sweeper.kill()
        sup.sweeper.signal_strays(sup.by_pid, signal.SIGKILL)
        cancel(self._stop_timer)
        self._stop_timer = sup.loop.call_later(FINAL_REAP, sup.loop.stop)
        self.check_done()

    def _grace_over(self) -> None:
        self._stop_timer = None
        self.force("still running after the grace")

    def check_done(self) -> None:
        """End the loop once nothing keelrun started is left."""
        sup = self.sup
        if any(inst.pid is not None for inst in sup.instances.values()):
            return
        if sup.sweeper:
            self.schedule_tick()
            return
        if sup.sweeper.strays(sup.by_pid):
            if self.forced:
                sup.sweeper.signal_strays(sup.by_pid, signal.SIGKILL)
            self.schedule_tick()
            return
        sup.loop.stop()
