"""The supervisor's side of health: readiness, liveness, the watchdog and sd_notify.

Each incarnation of an instance with a check gets an ``InstanceHealth``
(health.py) when it is spawned and loses it when it stops or ends; what the
checks conclude comes back here and becomes states, events and stops. The
notify socket exists only once a type that uses notify or a watchdog is
started, and exec probes' exits reach their probes through ``routes``, which
the supervisor's one reaper consults first. ``depends_on`` holds a type back
until every instance of the types it names is ready. README "Health:
readiness, liveness, notify".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from keelrun.settings import ProcessTypeSettings
from keelrun.supervisor.instance import Instance, Intent
from keelrun.supervisor.lifecycle import State
from keelrun.supervisor.probeapi import ChildRoutes

# notify.NOTIFY_VARS, spelled here so that spawning a type without notify imports nothing.
_NOTIFY_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")

if TYPE_CHECKING:
    from keelrun.supervisor.notify import NotifyReceiver
    from keelrun.supervisor.sdnotify import ServiceNotifier
    from keelrun.supervisor.supervisor import Supervisor


class Checks:
    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.routes = ChildRoutes()  # exec probes, whose exits the reaper hands over
        self.receiver: NotifyReceiver | None = None
        self._no_receiver = False
        self.service: ServiceNotifier | None = None  # keelrun's own sd_notify (systemd)
        self.probe_factory: Any = None  # None: the real probes (tests put fakes here)
        # The ports' listeners before a batch of spawns, read in one dump (prefetch).
        self.batch_listeners: dict[int, frozenset[int]] | None = None

    def prefetch(self, insts: list[Instance]) -> None:
        """A batch is about to spawn: one listener dump for all its port checks."""
        checked = [i for i in insts if _port_checked(i)]
        self.batch_listeners = _listeners(checked) if len(checked) > 1 else None

    # -- spawning ---------------------------------------------------------
    def env(self, inst: Instance, env: dict[str, str]) -> dict[str, str]:
        """The instance's environment with keelrun's NOTIFY_SOCKET (and WATCHDOG_USEC) if
        its type uses notify or a watchdog; systemd's own never passes on."""
        plan = inst.ptype.plan
        if not plan.uses_notify and not any(k in env for k in _NOTIFY_VARS):
            return env  # the common case, without importing the notify machinery
        from keelrun.supervisor.notify import instance_env

        receiver = self._receiver() if plan.uses_notify else None
        address = receiver.address if receiver is not None else None
        return instance_env(env, address, plan.watchdog)

    def _receiver(self) -> NotifyReceiver | None:
        if self.receiver is None and not self._no_receiver:
            from keelrun.supervisor.notify import NotifyReceiver

            try:
                self.receiver = NotifyReceiver(self.sup.loop)
            except OSError as e:  # no unix sockets here: say so once, never crash the loop
                self._no_receiver = True
                self.sup.events.error(
                    "notify_unavailable",
                    f"cannot create the notify socket ({e.strerror or e}): "
                    "notify checks cannot pass",
                    error=e.strerror or str(e),
                )
        return self.receiver

    def begin(self, inst: Instance, env: dict[str, str]) -> None:
        """Right after a spawn: RUNNING without a ready check, else STARTING until it passes."""
        ptype = inst.ptype
        ready = ptype.ready
        inst.state = State.STARTING if ready is not None else State.RUNNING
        inst.ready_check = ready is not None
        inst.log_ready = re.compile(ready.pattern or "") if ready and ready.kind == "log" else None
        if ready is None and ptype.health is None and ptype.watchdog is None:
            return  # no check: nothing to drive
        from keelrun.supervisor.health import InstanceHealth
        from keelrun.supervisor.probes import ProbeTarget, make_probe

        assert inst.pid is not None
        plan = ptype.plan
        before = None
        if _port_checked(inst):
            snapshot = self.batch_listeners
            if snapshot is None:
                snapshot = _listeners([inst])
            before = (snapshot or {}).get(inst.port)
        target = ProbeTarget(
            self.sup.loop,
            inst.pid,
            inst.port,
            self.sup.settings.app_root,
            env,
            plan.probe_timeout,
            self.routes,
            before,
        )
        health = InstanceHealth(
            plan, target, _Listener(self, inst), self.probe_factory or make_probe
        )
        inst.health = health
        if plan.uses_notify and self.receiver is not None:
            self.receiver.watch(inst.pid, health.on_notify)
        health.start()

    def check_lines(self, inst: Instance, block: bytes) -> None:
        """Lines of an instance waiting for a ``log:REGEX`` match (the log path calls this)."""
        pattern = inst.log_ready
        if pattern is None:
            return
        for line in block[:-1].split(b"\n"):
            if pattern.search(line.decode("utf-8", "replace")):
                inst.log_ready = None
                if inst.health is not None:
                    inst.health.log_matched()
                return

    def stop(self, inst: Instance) -> None:
        """keelrun stops the instance: no more probes, timers or check events."""
        inst.log_ready = None
        if inst.health is not None:
            inst.health.stop()

    def ended(self, inst: Instance, pid: int) -> None:
        """The instance's process was reaped."""
        self.stop(inst)
        inst.health = None
        if self.receiver is not None:
            self.receiver.unwatch(pid)

    # -- keelrun under systemd ------------------------------------------------
    def settled(self) -> None:
        """READY=1 to systemd once every instance is ready (or running without a check)."""
        service = self.service
        sup = self.sup
        if service is None or service.ready_sent or sup.release is not None or sup.shutdown.active:
            return
        from keelrun.supervisor.sdnotify import formation_settled

        states = [(i.state.public, i.ptype.ready is not None) for i in sup.instances.values()]
        if formation_settled(states):
            n = len(states)
            service.ready(f"{n} instance{'s' if n != 1 else ''} up")

    # -- what the checks concluded --------------------------------------------
    def ready(self, inst: Instance, why: str) -> None:
        sup = self.sup
        inst.state = State.READY
        sup.events.info("process_ready", f"{inst.name} is ready: {why}", target=inst.name)
        sup.release_held()
        self.settled()

    def ready_timeout(self, inst: Instance, why: str) -> None:
        timeout = inst.ptype.ready_timeout
        self.sup.events.error(
            "ready_timeout",
            f"{inst.name} not ready after {timeout:g}s ({why}): stopping it",
            target=inst.name,
            reason=why,
        )
        self.sup.stop_process(inst, Intent.READY_TIMEOUT)

    def check_failed(self, inst: Instance, detail: str, failures: int, retries: int) -> None:
        self.sup.events.warning(
            "health_check_failed",
            f"{inst.name} health check failed ({failures}/{retries}): {detail}",
            target=inst.name,
            failures=failures,
            retries=retries,
            reason=detail,
        )

    def unhealthy(self, inst: Instance, why: str) -> None:
        self.sup.events.error(
            "process_unhealthy",
            f"{inst.name} is unhealthy ({why}): stopping it",
            target=inst.name,
            reason=why,
        )
        self.sup.stop_process(inst, Intent.UNHEALTHY)

    def reloading(self, inst: Instance) -> None:
        inst.state = State.STARTING
        self.sup.events.info(
            "process_reloading", f"{inst.name} is reloading (RELOADING=1)", target=inst.name
        )

    def app_stopping(self, inst: Instance) -> None:
        self.sup.events.info(
            "process_stopping", f"{inst.name} is stopping (STOPPING=1)", target=inst.name
        )


class _Listener:
    """One instance's InstanceHealth reports to Checks (health.HealthListener)."""

    __slots__ = ("checks", "inst")

    def __init__(self, checks: Checks, inst: Instance) -> None:
        self.checks = checks
        self.inst = inst

    def on_ready(self, why: str) -> None:
        self.checks.ready(self.inst, why)

    def on_ready_timeout(self, why: str) -> None:
        self.checks.ready_timeout(self.inst, why)

    def on_check_failed(self, detail: str, failures: int, retries: int) -> None:
        self.checks.check_failed(self.inst, detail, failures, retries)

    def on_unhealthy(self, why: str) -> None:
        self.checks.unhealthy(self.inst, why)

    def on_reloading(self) -> None:
        self.checks.reloading(self.inst)

    def on_app_stopping(self) -> None:
        self.checks.app_stopping(self.inst)


def _port_checked(inst: Instance) -> bool:
    return any(c is not None and c.kind == "port" for c in (inst.ptype.ready, inst.ptype.health))


def _listeners(insts: Iterable[Instance]) -> dict[int, frozenset[int]] | None:
    from keelrun.listeners import loopback_listeners

    return loopback_listeners([i.port for i in insts])


def deps_ready(ptype: ProcessTypeSettings, instances: Iterable[Instance]) -> bool:
    """Whether every instance of every type ``ptype`` depends on is ready for dependents."""
    if not ptype.depends_on:
        return True
    deps = set(ptype.depends_on)
    return all(inst.is_ready_for_dependents() for inst in instances if inst.ptype.name in deps)
