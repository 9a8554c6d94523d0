"""The supervisor: owns every instance, reaps every child, runs every stop.

Everything here runs on the loop's one thread. Exit statuses enter in exactly
one place (`reap`, the kernel's `waitpid(-1)` loop); unknown pids (orphans
reparented to us as subreaper or PID 1) are reaped and ignored. What the
operating system does goes through `Kernel`, so that tests can drive this
state machine with a fake one.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

from keelrun.environment import instance_env
from keelrun.loop import Loop, cancel
from keelrun.settings import InstanceSpec, ProcessTypeSettings, Settings
from keelrun.supervisor.checks import Checks, deps_ready
from keelrun.supervisor.events import Events
from keelrun.supervisor.instance import Instance, Intent
from keelrun.supervisor.kernel import Kernel
from keelrun.supervisor.lifecycle import State, describe_exit, exit_code
from keelrun.supervisor.logpipes import LogPipes
from keelrun.supervisor.shutdown import Shutdown
from keelrun.supervisor.sweep import Sweeper


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        loop: Loop,
        events: Events,
        pipes: LogPipes,
        kernel: Kernel,
        *,
        extra_env: dict[str, str],
    ) -> None:
        self.settings = settings
        self.loop = loop
        self.events = events
        self.pipes = pipes
        self.kernel = kernel
        self.extra_env = extra_env
        self.instances: dict[str, Instance] = {}
        self.by_pid: dict[int, Instance] = {}
        self.sweeper = Sweeper(kernel, loop.time)
        self.checks = Checks(self)
        pipes.on_lines = self.checks.check_lines
        self.shutdown = Shutdown(self)
        self._ended = 0
        self.release: Instance | None = None
        self._after_release: Callable[[], None] | None = None
        self._release_alone = False
        self._names_changed()

    # ------------------------------------------------------------------ start
    def start(self, counts: dict[str, int]) -> None:
        """Create and spawn the formation: counts maps type name -> instances.

        Every process is spawned before the first event: structlog is imported
        on the first one and must not delay the first child. The started events
        are still written before any line of the children, which the loop only
        reads afterwards.
        """
        for ptype in self.settings.types:
            for n in range(1, counts.get(ptype.name, 0) + 1):
                self._add(ptype, n)
        self._names_changed()
        self._spawn_batch(list(self.instances.values()))
        self.release_held()  # those whose dependencies the batch has made ready
        for inst in self.instances.values():
            if inst.state is State.HELD:
                deps = ", ".join(inst.ptype.depends_on)
                self.events.info("process_held", f"{inst.name} waits for {deps}", target=inst.name)
        self.checks.settled()

    def start_release(self, then: Callable[[], None], alone: bool = False) -> None:
        """Run the release type once, to completion; call ``then`` only if it succeeded.

        ``alone``: `keelrun release`, with no formation to hold back."""
        ptype = self.settings.release
        assert ptype is not None
        inst = Instance(ptype, 1)
        self.release = inst
        self._after_release = then
        self._release_alone = alone
        self.instances[inst.name] = inst
        self._names_changed()
        self._spawn(inst)

    def _release_ended(self, inst: Instance, status: int) -> None:
        self.release = None
        self.instances.pop(inst.name, None)
        code = exit_code(status)
        if self.shutdown.active:
            return
        if code != 0:
            after = "" if self._release_alone else ": not starting the formation"
            self.events.error(
                "release_failed", f"release phase {describe_exit(status)}{after}", status=code
            )
            self.shutdown.request(code, reason="release failed")
            return
        self.events.info("release_done", "release phase done", status=0)
        then, self._after_release = self._after_release, None
        if then is not None:
            then()

    def _add(self, ptype: ProcessTypeSettings, number: int) -> Instance:
        inst = Instance(ptype, number)
        self.instances[inst.name] = inst
        return inst

    def _names_changed(self) -> None:
        formatter = self.pipes.formatter
        formatter.set_types(t.name for t in self.settings.all_types())
        formatter.set_names(self.instances)

    def _spawn(self, inst: Instance, batch: bool = False) -> bool:
        """Start the instance's process; False if nothing was started. ``batch``: start()
        announces them and releases held ones once (not N passes over N instances)."""
        if self.shutdown.active:
            return False  # nothing new starts once keelrun is stopping
        if self.sweeper:
            # A new incarnation never runs beside the leftovers of the last one.
            self.sweeper.stop(inst.name)
            if self.sweeper.check():
                self.shutdown.schedule_tick()
        spec = InstanceSpec(inst.name, inst.ptype.name, inst.number, inst.port, inst.command)
        env = instance_env(self.settings, spec)
        env.update(self.extra_env)
        env = self.checks.env(inst, env)
        try:
            spawn = self.kernel.spawn_tty if inst.ptype.tty else self.kernel.spawn
            child = spawn(inst.command, env, watchdog_pid=inst.ptype.watchdog is not None)
        except OSError as e:
            # keelrun could not start it (out of fds, processes, memory): the
            # app did not fail, so this is retried with back-off and does not
            # count towards --max-restarts; the running instances are unaffected.
            delay = inst.tracker.next_delay()
            inst.pid = None
            inst.state = State.BACKOFF
            inst.timer = self.loop.call_later(delay, lambda: self.restart_after_backoff(inst))
            self.events.warning(
                "spawn_failed",
                f"cannot start {inst.name}: {e.strerror or e}; retrying in {delay:g}s",
                target=inst.name,
                error=e.strerror or str(e),
                delay_s=delay,
            )
            return False
        inst.child = child
        inst.pid = inst.last_pid = child.pid
        inst.started_at = self.loop.time()
        inst.intent = Intent.NONE
        inst.killed = False
        self.by_pid[child.pid] = inst
        self.pipes.add_child(inst, child)
        self.checks.begin(inst, env)
        if batch:
            return True
        self._announce_start(inst)
        if inst.state is State.RUNNING:
            self.release_held()
            self.checks.settled()
        return True

    def _spawn_batch(self, insts: list[Instance]) -> list[Instance]:
        """Spawn those whose dependencies are ready (the others are held), then
        announce them: every spawn comes before the first event. Returns the spawned."""
        spawned, held = [], []
        self.checks.prefetch(insts)
        try:
            for inst in insts:
                if deps_ready(inst.ptype, self.instances.values()):
                    if self._spawn(inst, batch=True):
                        spawned.append(inst)
                else:
                    inst.state = State.HELD
                    held.append(inst)
        finally:
            self.checks.batch_listeners = None
        for inst in spawned:
            self._announce_start(inst)
        if held and self._ended:  # a dependency may have ended for good already
            from keelrun.supervisor.ending import strand

            strand(self, held)
        return spawned

    def _announce_start(self, inst: Instance) -> None:
        self.events.info(
            "process_started",
            f"started {inst.name} (pid {inst.last_pid}, port {inst.port}): {inst.command}",
            target=inst.name,
            pid=inst.last_pid,
            port=inst.port,
        )

    def release_held(self) -> None:
        """Start the instances whose dependencies have become ready."""
        if self.shutdown.active:
            return
        for inst in list(self.instances.values()):
            if inst.state is State.HELD and deps_ready(inst.ptype, self.instances.values()):
                self._spawn(inst)

    # --------------------------------------------------------------- reaping
    def reap(self) -> None:
        """Collect every child that has ended (on SIGCHLD, and once at start)."""
        for pid, status in self.kernel.reap():
            if self.checks.routes.dispatch(pid, status):
                continue  # an exec probe's: its probe takes the status
            inst = self.by_pid.pop(pid, None)
            if inst is not None:
                self._process_ended(inst, status)
        if self.sweeper and self.sweeper.check():
            self.shutdown.schedule_tick()
        if self.shutdown.active:
            self.shutdown.check_done()

    def _process_ended(self, inst: Instance, status: int) -> None:
        from keelrun.supervisor import ending  # at the first exit: no start needs it

        uptime = inst.uptime(self.loop.time())
        pgid = inst.pid
        assert pgid is not None
        if inst.child is not None:
            self.kernel.reaped(inst.child, status)
            inst.child = None
        self.pipes.drain(inst)
        if inst.terminal is not None:
            inst.terminal.close("exited")  # an attached client is let go; lines still flow
        intent, inst.intent = inst.intent, Intent.NONE
        # A ready timeout or an unhealthy stop is a failed start even when the process
        # exited 0 on its stop signal; one its checks never saw alive did not start
        # well, however long it ran (so --max-restarts ends a type never healthy).
        checked = intent in (Intent.READY_TIMEOUT, Intent.UNHEALTHY)
        if checked and not (intent is Intent.UNHEALTHY and inst.health and inst.health.proven):
            uptime = 0.0
        self.checks.ended(inst, pgid)
        inst.pid = None
        inst.cancel_timers()
        inst.exit_status = exit_code(status)
        self._ended += 1
        inst.ended_seq = self._ended
        if self.kernel.group_alive(pgid):
            stopping = inst.state is State.STOPPING or self.shutdown.forced
            grace, stop_signal = inst.ptype.grace, inst.ptype.stop_signal
            self.sweeper.add(pgid, inst.name, stop_signal, grace, stopping)
            if self.shutdown.forced:
                self.sweeper.kill()
            self.shutdown.schedule_tick()
        if inst is self.release:
            self._event_exit(inst, status, "process_exited")
            self._release_ended(inst, status)
        elif self.shutdown.active:
            inst.state = State.STOPPED
            self._event_exit(inst, status, "process_exited")
        elif intent is Intent.STOP:
            inst.state = State.STOPPED
            self._event_exit(inst, status, "process_stopped", requested=True)
        elif intent is Intent.REMOVE:
            self._event_exit(inst, status, "process_stopped", requested=True)
            self._remove(inst)
        elif intent is Intent.RESTART:
            self._event_exit(inst, status, "process_stopped", requested=True)
            inst.restarts += 1
            inst.tracker.reset()
            self._spawn(inst)
        else:
            self._event_exit(inst, status, "process_exited")
            ending.ended_by_itself(self, inst, uptime, checked)

    def _event_exit(self, inst: Instance, status: int, event: str, requested: bool = False) -> None:
        from keelrun.supervisor import ending  # at the first exit: no start needs it

        text = f"{inst.name} (pid {inst.last_pid}) {describe_exit(status)}"
        fields = {"target": inst.name, "pid": inst.last_pid, "status": exit_code(status)}
        if requested or self.shutdown.active or ending.succeeded(inst):
            self.events.info(event, text, **fields)
        else:
            self.events.warning(event, text, **fields)

    def restart_after_backoff(self, inst: Instance) -> None:
        inst.timer = None
        if inst.state is State.BACKOFF and not self.shutdown.active:
            inst.restarts += 1
            self._spawn(inst)

    # --------------------------------------------------------------- stopping
    def stop_process(self, inst: Instance, intent: Intent) -> None:
        """Send the type's stop signal to the instance's group; SIGKILL after its grace."""
        assert inst.pid is not None
        inst.intent = intent
        if inst.state is State.STOPPING:
            return
        inst.state = State.STOPPING
        inst.cancel_timers()
        self.checks.stop(inst)
        self.kernel.signal_group(inst.pid, inst.ptype.stop_signal)
        inst.timer = self.loop.call_later(inst.ptype.grace, lambda: self._kill(inst))

    def _kill(self, inst: Instance) -> None:
        inst.timer = None
        if inst.pid is not None and inst.state is State.STOPPING and not self.shutdown.forced:
            self.events.warning(
                "process_killed",
                f"{inst.name} still running after {inst.ptype.grace:g}s: SIGKILL",
                target=inst.name,
                pid=inst.pid,
            )
            self.kernel.signal_group(inst.pid, signal.SIGKILL)
            inst.killed = True

    # -------------------------------------------------------------- commands
    def _retire(self, inst: Instance) -> None:
        """Take the instance out of the formation: stopped gracefully if it runs."""
        if inst.pid is not None:
            self.stop_process(inst, Intent.REMOVE)
        else:
            self._remove(inst)

    def _remove(self, inst: Instance) -> None:
        inst.cancel_timers()
        if inst.terminal is not None:
            inst.terminal.close("removed")
        self.pipes.close_all(inst)
        self.instances.pop(inst.name, None)
        self._names_changed()

    def count_of(self, type_name: str) -> int:
        return sum(
            1
            for i in self.instances.values()
            if i.ptype.name == type_name and i.intent is not Intent.REMOVE
        )

    def scale_type(self, type_name: str, target: int) -> int:
        """Desired state: instances 1..target of the type; stop the highest-numbered extras.

        Returns the count before.
        """
        ptype = self.settings.type_named(type_name)
        assert ptype is not None
        before = self.count_of(type_name)
        for inst in sorted(
            (i for i in self.instances.values() if i.ptype.name == type_name),
            key=lambda i: -i.number,
        ):
            if inst.number > target and inst.intent is not Intent.REMOVE:
                self._retire(inst)
            elif inst.number <= target and inst.intent is Intent.REMOVE:
                inst.intent = Intent.RESTART  # scaled back up while stopping: keep it
        created = [
            self._add(ptype, n)
            for n in range(1, target + 1)
            if f"{type_name}.{n}" not in self.instances
        ]
        self._names_changed()
        if self._spawn_batch(created):  # one pass for held instances, not one per new one
            self.release_held()
            self.checks.settled()
        self.events.info(
            "scaled",
            f"scaled {type_name} from {before} to {target}",
            target=type_name,
            count=target,
            previous=before,
        )
        return before

    def stop_instance(self, inst: Instance) -> None:
        """Stop and keep stopped (until `keelrun restart`)."""
        if inst.pid is not None:
            self.stop_process(inst, Intent.STOP)
        else:
            inst.timer = cancel(inst.timer)
            inst.state = State.STOPPED

    def restart_instance(self, inst: Instance) -> None:
        """Stop gracefully and start again; an instance that is not running starts now."""
        if inst.pid is not None:
            self.stop_process(inst, Intent.RESTART)
            return
        inst.timer = cancel(inst.timer)
        if inst.state is State.HELD:
            return
        inst.restarts += 1
        inst.tracker.reset()
        self._spawn(inst)

    def restart_changed(self, type_name: str) -> list[Instance]:
        """Files of the type changed: restart its instances gracefully (not a failed start).

        Instances stopped by hand stay stopped; those waiting for their
        dependencies keep waiting; one that had ended or is backing off starts now.
        """
        targets = [
            i
            for i in self.instances.values()
            if i.ptype.name == type_name
            and i.state not in (State.STOPPED, State.HELD)
            and i.intent is not Intent.REMOVE
        ]
        for inst in targets:
            self.restart_instance(inst)
        return targets

    def apply_settings(self, new: Settings, only_types: tuple[str, ...]) -> dict[str, object]:
        """Reload: restart the types whose command or environment changed, apply the
        rest in place, scale the types whose configured count changed (reconcile.py)."""
        from keelrun.supervisor.reconcile import diff_settings  # reloads only

        diff = diff_settings(self.settings, new)
        self.settings = new
        new_types = {t.name: t for t in new.types}
        for inst in list(self.instances.values()):
            name = inst.ptype.name
            if name in diff.removed:
                self._retire(inst)
                continue
            inst.ptype = new_types[name]
            inst.tracker.max_restarts = inst.ptype.max_restarts
            restart = name in diff.restarted and inst.intent is not Intent.REMOVE
            if restart and inst.pid is not None:
                self.stop_process(inst, Intent.RESTART)
        chosen = [n for n in new_types if not only_types or n in only_types]
        diff = diff._replace(
            added=[n for n in diff.added if n in chosen],
            scaled={n: c for n, c in diff.scaled.items() if n in chosen},
        )
        for name in diff.added:
            self.scale_type(name, new_types[name].count)
        for name, count in diff.scaled.items():
            self.scale_type(name, count)
        self.release_held()  # a dependency dropped from depends_on holds nothing back now
        self._names_changed()
        summary = diff._asdict()
        self.events.info("reloaded", f"reloaded: {diff.summary()}", **summary)
        return summary

    def signal_instances(self, sig: int, targets: list[Instance]) -> list[Instance]:
        """Send sig to the process groups of the targets; returns those that got it."""
        return [i for i in targets if i.pid is not None and self.kernel.signal_group(i.pid, sig)]
