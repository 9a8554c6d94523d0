"""The supervisor: owns every instance, reaps every child, runs every stop.

Everything here runs on the loop's one thread. Exit statuses enter in exactly
one place (`_reap`, a `waitpid(-1)` loop); unknown pids (orphans reparented to
us as subreaper or PID 1) are reaped and ignored.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

from keelrun.environment import instance_env
from keelrun.loop import Loop
from keelrun.settings import InstanceSpec, ProcessTypeSettings, Settings
from keelrun.supervisor import procscan, spawn
from keelrun.supervisor.events import Events
from keelrun.supervisor.instance import Instance, Intent
from keelrun.supervisor.leftovers import Leftovers
from keelrun.supervisor.lifecycle import (
    State,
    describe_exit,
    exit_code,
    is_failure,
    should_restart,
)
from keelrun.supervisor.logpipes import LogPipes
from keelrun.supervisor.output import Formatter, Output

PROBE_INTERVAL = 0.1  # port readiness probe, only while an instance is starting
STOP_CHECK = 0.05  # re-check of groups being stopped, only while any are
ANNOUNCE_WITHIN = 0.2  # the started events of the initial formation, at the latest
FINAL_REAP = 1.0  # after SIGKILL, how long to wait for the kernel to deliver the deaths


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        loop: Loop,
        events: Events,
        formatter: Formatter,
        output: Output,
        *,
        extra_env: dict[str, str],
    ) -> None:
        self.settings = settings
        self.loop = loop
        self.events = events
        self.formatter = formatter
        self.extra_env = extra_env
        self.instances: dict[str, Instance] = {}
        self.by_pid: dict[int, Instance] = {}
        self.leftovers = Leftovers()
        self._tick_timer: Any = None
        self.shutting_down = False
        self.forced = False
        self.exit_status: int | None = None
        self._ended = 0
        self._stop_timer: Any = None
        self.pipes = LogPipes(loop, formatter, output, self._check_log_ready)
        self.active_types: list[str] = []
        self.release: Instance | None = None
        self._unannounced: list[tuple[Instance, int]] = []
        self._after_release: Callable[[], None] | None = None

    # ------------------------------------------------------------------ start
    def start(self, counts: dict[str, int]) -> None:
        """Create and spawn the formation: counts maps type name -> instances."""
        for ptype in self.settings.types:
            if ptype.name in counts:
                self.active_types.append(ptype.name)
                for n in range(1, counts[ptype.name] + 1):
                    self._add(ptype, n)
        self._names_changed()
        started: list[tuple[Instance, int]] = []
        for inst in list(self.instances.values()):
            if self._deps_ready(inst.ptype):
                self._spawn(inst, announce=False)
                if inst.last_pid is not None:
                    started.append((inst, inst.last_pid))
            else:
                inst.state = State.HELD
        # Announced once the children's first lines are out (or after 0.2 s):
        # the first event imports structlog, which must not delay them.
        self._unannounced = started
        self.loop.when_idle(self._announce_formation, at_most=ANNOUNCE_WITHIN)

    def _announce_formation(self) -> None:
        self._flush_announcements()
        for inst in self.instances.values():
            if inst.state is State.HELD:
                deps = ", ".join(inst.ptype.depends_on)
                self.events.emit("process_held", f"{inst.name} waits for {deps}", target=inst.name)

    def start_release(self, then: Callable[[], None]) -> None:
        """Run the release type once, to completion; call ``then`` only if it succeeded."""
        ptype = self.settings.release
        assert ptype is not None
        inst = Instance(ptype, 1)
        self.release = inst
        self._after_release = then
        self.instances[inst.name] = inst
        self.formatter.set_type_order([ptype.name])
        self._names_changed()
        self._spawn(inst)

    def _release_ended(self, inst: Instance, status: int) -> None:
        self.release = None
        self.instances.pop(inst.name, None)
        code = exit_code(status)
        if self.shutting_down:
            return
        if code != 0:
            self.events.emit(
                "release_failed",
                f"release phase {describe_exit(status)}: not starting the formation",
                status=code,
            )
            self.request_stop(code, reason="release failed")
            return
        self.events.emit("release_done", "release phase done", status=0)
        then, self._after_release = self._after_release, None
        if then is not None:
            then()

    def _add(self, ptype: ProcessTypeSettings, number: int) -> Instance:
        inst = Instance(ptype, number)
        self.instances[inst.name] = inst
        return inst

    def _names_changed(self) -> None:
        self.formatter.set_names(list(self.instances))
        self.formatter.set_type_order(self.active_types)

    def _env_for(self, inst: Instance) -> dict[str, str]:
        spec = InstanceSpec(inst.name, inst.ptype.name, inst.number, inst.port, inst.command)
        env = instance_env(self.settings, spec)
        env.update(self.extra_env)
        return env

    def _spawn(self, inst: Instance, announce: bool = True) -> None:
        if self.shutting_down:
            return  # nothing new starts once keelrun is stopping
        if self.leftovers:
            # A new incarnation never runs beside the leftovers of the last one.
            self.leftovers.stop(inst.name)
            if self.leftovers.check():
                self._schedule_tick()
        fds: list[int] = []
        try:
            out_r, out_w = spawn.make_pipe()
            fds += (out_r, out_w)
            err_r, err_w = spawn.make_pipe()
            fds += (err_r, err_w)
            proc = spawn.spawn_shell(inst.command, self._env_for(inst), out_w, err_w)
        except OSError as e:
            # keelrun could not start it (out of fds, processes, memory): the
            # app did not fail, so this is retried with back-off and does not
            # count towards --max-restarts; the running instances are unaffected.
            spawn.close_quietly(*fds)
            delay = inst.tracker.next_delay()
            inst.pid = None
            inst.state = State.BACKOFF
            inst.timer = self.loop.call_later(delay, lambda: self._restart_after_backoff(inst))
            self.events.emit(
                "spawn_failed",
                f"cannot start {inst.name}: {e.strerror or e}; retrying in {delay:g}s",
                target=inst.name,
                error=e.strerror or str(e),
                delay_s=delay,
            )
            return
        spawn.close_quietly(out_w, err_w)
        pid = proc.pid
        inst.proc = proc
        inst.pid = inst.last_pid = pid
        inst.started_mono = time.monotonic()
        inst.started_wall = time.time()
        inst.intent = Intent.NONE
        self.by_pid[pid] = inst
        for fd, name in ((out_r, "stdout"), (err_r, "stderr")):
            self.pipes.add(inst, fd, name)
        ready = inst.ptype.ready
        if ready is None:
            inst.state = State.RUNNING
        else:
            inst.state = State.STARTING
            if ready.kind == "log":
                inst.log_ready = re.compile(ready.pattern or "")
            else:
                inst.probe = self.loop.call_later(PROBE_INTERVAL, lambda: self._probe(inst))
            inst.timer = self.loop.call_later(
                inst.ptype.ready_timeout, lambda: self._ready_timeout(inst)
            )
        if announce:
            self._announce_start(inst, pid)
        if ready is None:
            self._release_held()

    def _announce_start(self, inst: Instance, pid: int) -> None:
        self.events.emit(
            "process_started",
            f"started {inst.name} (pid {pid}, port {inst.port}): {inst.command}",
            target=inst.name,
            pid=pid,
            port=inst.port,
        )

    def _flush_announcements(self) -> None:
        """Started events not yet emitted go out before any later event about them."""
        pending, self._unannounced = self._unannounced, []
        for inst, pid in pending:
            self._announce_start(inst, pid)

    # ------------------------------------------------------------ readiness
    def _probe(self, inst: Instance) -> None:
        inst.probe = None
        if inst.state is not State.STARTING:
            return
        try:
            with socket.create_connection(("127.0.0.1", inst.port), timeout=0.05):
                pass
        except OSError:
            inst.probe = self.loop.call_later(PROBE_INTERVAL, lambda: self._probe(inst))
            return
        self._became_ready(inst, f"port {inst.port} accepts connections")

    def _check_log_ready(self, inst: Instance, block: bytes) -> None:
        pattern = inst.log_ready
        assert pattern is not None
        for line in block[:-1].split(b"\n"):
            if pattern.search(line.decode("utf-8", "replace")):
                self._became_ready(inst, "its log matched")
                return

    def _became_ready(self, inst: Instance, why: str) -> None:
        inst.log_ready = None
        if inst.state is not State.STARTING:
            return
        self._flush_announcements()
        inst.cancel_timers()
        inst.state = State.READY
        self.events.emit("process_ready", f"{inst.name} is ready: {why}", target=inst.name)
        self._release_held()

    def _ready_timeout(self, inst: Instance) -> None:
        inst.timer = None
        if inst.state is not State.STARTING:
            return
        self.events.emit(
            "ready_timeout",
            f"{inst.name} not ready after {inst.ptype.ready_timeout:g}s: stopping it",
            target=inst.name,
        )
        self._stop_process(inst, Intent.READY_TIMEOUT)

    def _deps_ready(self, ptype: ProcessTypeSettings) -> bool:
        for dep in ptype.depends_on:
            for inst in self.instances.values():
                if inst.ptype.name == dep and not inst.is_ready_for_dependents():
                    return False
        return True

    def _release_held(self) -> None:
        if self.shutting_down:
            return
        for inst in list(self.instances.values()):
            if inst.state is State.HELD and self._deps_ready(inst.ptype):
                self._spawn(inst)

    # --------------------------------------------------------------- reaping
    def on_sigchld(self, signum: int) -> None:
        self._reap()

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            inst = self.by_pid.pop(pid, None)
            if inst is not None:
                self._process_ended(inst, status)
        if self.leftovers and self.leftovers.check():
            self._schedule_tick()
        if self.shutting_down:
            self._check_done()

    def _process_ended(self, inst: Instance, status: int) -> None:
        uptime = inst.uptime()
        pgid = inst.pid
        if inst.proc is not None:
            spawn.reaped(inst.proc, status)
            inst.proc = None
        self.pipes.drain(inst)
        inst.pid = None
        inst.probe = _cancel(inst.probe)
        inst.timer = _cancel(inst.timer)
        inst.log_ready = None
        inst.exit_status = exit_code(status)
        self._ended += 1
        inst.ended_seq = self._ended
        assert pgid is not None
        if spawn.group_alive(pgid):
            stopping = inst.state is State.STOPPING or self.forced
            self.leftovers.add(pgid, inst.name, inst.ptype.stop_signal, inst.ptype.grace, stopping)
            if self.forced:
                self.leftovers.kill()
            self._schedule_tick()
        intent, inst.intent = inst.intent, Intent.NONE
        if inst is self.release:
            self._event_exit(inst, status, "process_exited")
            self._release_ended(inst, status)
            return
        if self.shutting_down:
            inst.state = State.STOPPED
            self._event_exit(inst, status, "process_exited")
            return
        if intent is Intent.STOP:
            inst.state = State.STOPPED
            self._event_exit(inst, status, "process_stopped")
        elif intent is Intent.REMOVE:
            self._event_exit(inst, status, "process_stopped")
            self._remove(inst)
        elif intent is Intent.RESTART:
            self._event_exit(inst, status, "process_stopped")
            inst.restarts += 1
            inst.tracker.reset()
            self._spawn(inst)
        elif intent is Intent.READY_TIMEOUT:
            self._event_exit(inst, status, "process_exited")
            self._ended_by_itself(inst, status, uptime, failed=True)
        else:
            self._event_exit(inst, status, "process_exited")
            self._ended_by_itself(inst, status, uptime)

    def _event_exit(self, inst: Instance, status: int, event: str) -> None:
        self._flush_announcements()
        self.events.emit(
            event,
            f"{inst.name} (pid {inst.last_pid}) {describe_exit(status)}",
            target=inst.name,
            pid=inst.last_pid,
            status=exit_code(status),
        )

    def _ended_by_itself(
        self, inst: Instance, status: int, uptime: float, failed: bool | None = None
    ) -> None:
        if failed is None:
            failed = is_failure(status)
        inst.exit_status = exit_code(status)
        tracker = inst.tracker
        tracker.on_exit(uptime, failed)
        policy = inst.ptype.restart
        # A ready timeout is a failed start even when the process exited 0 on SIGTERM.
        if should_restart(policy, status) or (failed and policy != "never"):
            if tracker.gave_up():
                inst.state = State.FAILED
                self.events.emit(
                    "process_failed",
                    f"{inst.name} failed {tracker.failures} starts in a row: giving up",
                    target=inst.name,
                    status=inst.exit_status,
                )
                self.request_stop(inst.exit_status or 1, reason=f"{inst.name} failed")
                return
            delay = tracker.next_delay()
            inst.state = State.BACKOFF
            self.events.emit(
                "process_restarting",
                f"restarting {inst.name} in {delay:g}s",
                target=inst.name,
                delay_s=delay,
            )
            inst.timer = self.loop.call_later(delay, lambda: self._restart_after_backoff(inst))
            return
        inst.state = State.EXITED
        self._check_natural_end()

    def _restart_after_backoff(self, inst: Instance) -> None:
        inst.timer = None
        if inst.state is State.BACKOFF and not self.shutting_down:
            inst.restarts += 1
            self._spawn(inst)

    def _check_natural_end(self) -> None:
        """When no instance is left to run, keelrun exits with the formation's status."""
        if not self.instances:
            return
        for inst in self.instances.values():
            if inst.state not in (State.EXITED, State.FAILED):
                return
        failed = sorted(
            (i for i in self.instances.values() if i.exit_status), key=lambda i: i.ended_seq
        )
        status = failed[0].exit_status if failed else 0
        self.events.emit("all_exited", "every process has ended", status=status)
        self.request_stop(status or 0, reason="every process has ended")

    # --------------------------------------------------------------- stopping
    def _stop_process(self, inst: Instance, intent: Intent) -> None:
        """Send the type's stop signal to the instance's group; SIGKILL after its grace."""
        assert inst.pid is not None
        inst.intent = intent
        if inst.state is State.STOPPING:
            return
        inst.state = State.STOPPING
        inst.probe = _cancel(inst.probe)
        inst.timer = _cancel(inst.timer)
        spawn.signal_group(inst.pid, inst.ptype.stop_signal)
        inst.timer = self.loop.call_later(inst.ptype.grace, lambda: self._kill(inst))

    def _kill(self, inst: Instance) -> None:
        inst.timer = None
        if inst.pid is not None and inst.state is State.STOPPING:
            self.events.emit(
                "process_killed",
                f"{inst.name} still running after {inst.ptype.grace:g}s: SIGKILL",
                target=inst.name,
                pid=inst.pid,
            )
            spawn.signal_group(inst.pid, signal.SIGKILL)

    def _schedule_tick(self) -> None:
        if self._tick_timer is None:
            self._tick_timer = self.loop.call_later(STOP_CHECK, self._tick)

    def _tick(self) -> None:
        """Runs only while leftover groups or strays are being stopped, never when idle."""
        self._tick_timer = None
        if self.leftovers.check():
            self._schedule_tick()
        if self.shutting_down:
            self._check_done()

    def request_stop(self, status: int = 0, reason: str = "stop requested") -> None:
        """Stop everything: the stop signal to every group, SIGKILL after the grace."""
        if self.shutting_down:
            return
        self.shutting_down = True
        self.exit_status = status
        self._flush_announcements()
        self.events.emit("stopping", f"stopping all processes ({reason})", reason=reason)
        grace = 0.0
        for inst in self.instances.values():
            if inst.pid is not None:
                # Each instance gets its own type's grace before its SIGKILL.
                self._stop_process(inst, Intent.STOP)
                grace = max(grace, inst.ptype.grace)
            else:
                inst.timer = _cancel(inst.timer)
                if inst.state in (State.BACKOFF, State.HELD):
                    inst.state = State.STOPPED
        self.leftovers.stop()
        # Descendants that left their groups (daemons that called setsid).
        strays = self._strays()
        for pid in strays:
            _kill_pid(pid, signal.SIGTERM)
        grace = max(grace, self.leftovers.max_grace(), self.settings.timeout if strays else 0.0)
        self._stop_timer = self.loop.call_later(grace, self._grace_over)
        self._check_done()

    def force_stop(self) -> None:
        """A second interrupt, or the grace ran out: SIGKILL everything now."""
        self.forced = True
        for inst in self.instances.values():
            if inst.pid is not None:
                spawn.signal_group(inst.pid, signal.SIGKILL)
        self.leftovers.kill()
        for pid in self._strays():
            _kill_pid(pid, signal.SIGKILL)
        _cancel(self._stop_timer)
        self._stop_timer = self.loop.call_later(FINAL_REAP, self.loop.stop)
        self._check_done()

    def _grace_over(self) -> None:
        self._stop_timer = None
        alive = [i.name for i in self.instances.values() if i.pid is not None]
        if alive:
            self.events.emit(
                "killed_after_grace",
                f"still running after the grace: SIGKILL {', '.join(alive)}",
                targets=alive,
            )
        self.force_stop()

    def _strays(self) -> list[int]:
        """Descendants outside every group we signal: daemons that called setsid."""
        groups = set(self.by_pid) | set(self.leftovers.groups)
        return [pid for pid, pgid in procscan.descendants(os.getpid()) if pgid not in groups]

    def _check_done(self) -> None:
        if any(inst.pid is not None for inst in self.instances.values()):
            return
        if self.leftovers:
            self._schedule_tick()
            return
        strays = self._strays()
        if strays:
            if self.forced:
                for pid in strays:
                    _kill_pid(pid, signal.SIGKILL)
            self._schedule_tick()
            return
        self.loop.stop()

    # -------------------------------------------------------------- commands
    def _remove(self, inst: Instance) -> None:
        inst.cancel_timers()
        self.pipes.close_all(inst)
        self.instances.pop(inst.name, None)
        self._names_changed()

    def count_of(self, type_name: str) -> int:
        return sum(
            1
            for i in self.instances.values()
            if i.ptype.name == type_name and i.intent is not Intent.REMOVE
        )

    def scale_type(self, type_name: str, target: int) -> None:
        """Desired state: instances 1..target of the type; stop the highest-numbered extras."""
        ptype = self.settings.type_named(type_name)
        assert ptype is not None
        if type_name not in self.active_types:
            self.active_types.append(type_name)
        before = self.count_of(type_name)
        for inst in sorted(
            (i for i in self.instances.values() if i.ptype.name == type_name),
            key=lambda i: -i.number,
        ):
            if inst.number > target and inst.intent is not Intent.REMOVE:
                if inst.pid is not None:
                    self._stop_process(inst, Intent.REMOVE)
                else:
                    self._remove(inst)
            elif inst.number <= target and inst.intent is Intent.REMOVE:
                inst.intent = Intent.RESTART  # scaled back up while stopping: keep it
        created = []
        for number in range(1, target + 1):
            if f"{type_name}.{number}" not in self.instances:
                created.append(self._add(ptype, number))
        self._names_changed()
        for inst in created:
            if self._deps_ready(ptype):
                self._spawn(inst)
            else:
                inst.state = State.HELD
        self.events.emit(
            "scaled",
            f"scaled {type_name} from {before} to {target}",
            target=type_name,
            count=target,
            previous=before,
        )

    def stop_instance(self, inst: Instance) -> None:
        """Stop and keep stopped (until `keelrun restart`)."""
        if inst.pid is not None:
            self._stop_process(inst, Intent.STOP)
        else:
            inst.timer = _cancel(inst.timer)
            inst.state = State.STOPPED

    def restart_instance(self, inst: Instance) -> None:
        """Stop gracefully and start again; an instance that is not running starts now."""
        if inst.pid is not None:
            self._stop_process(inst, Intent.RESTART)
            return
        inst.timer = _cancel(inst.timer)
        if inst.state is State.HELD:
            return
        inst.restarts += 1
        inst.tracker.reset()
        self._spawn(inst)

    def apply_settings(self, new: Settings, only_types: tuple[str, ...]) -> dict[str, list[str]]:
        """Reload: restart only the types whose command, environment or settings changed."""
        old = self.settings
        env_changed = old.env != new.env
        old_types = {t.name: t for t in old.types}
        new_types = {t.name: t for t in new.types}
        changed, added, removed = [], [], []
        self.settings = new
        for name, old_t in old_types.items():
            new_t = new_types.get(name)
            if new_t is None:
                removed.append(name)
                for inst in [i for i in self.instances.values() if i.ptype.name == name]:
                    if inst.pid is not None:
                        self._stop_process(inst, Intent.REMOVE)
                    else:
                        self._remove(inst)
                if name in self.active_types:
                    self.active_types.remove(name)
                continue
            same = _without_count(old_t) == _without_count(new_t) and not env_changed
            for inst in [i for i in self.instances.values() if i.ptype.name == name]:
                inst.ptype = new_t
                inst.tracker.max_restarts = new_t.max_restarts
                if not same and inst.pid is not None and inst.intent is not Intent.REMOVE:
                    self._stop_process(inst, Intent.RESTART)
            if not same:
                changed.append(name)
        for name, new_t in new_types.items():
            if name not in old_types and (not only_types or name in only_types):
                added.append(name)
                self.scale_type(name, new_t.count)
        self._names_changed()
        self.events.emit(
            "reloaded",
            "reloaded: "
            + (
                ", ".join(
                    f"{k} {', '.join(v)}"
                    for k, v in (("restarted", changed), ("added", added), ("removed", removed))
                    if v
                )
                or "nothing changed"
            ),
            restarted=changed,
            added=added,
            removed=removed,
        )
        return {"restarted": changed, "added": added, "removed": removed}

    def forward_signal(self, sig: int, targets: list[Instance] | None = None) -> int:
        """Send sig to the process groups of the targets (default: all). Returns the count."""
        sent = 0
        for inst in targets if targets is not None else list(self.instances.values()):
            if inst.pid is not None and spawn.signal_group(inst.pid, sig):
                sent += 1
        return sent


def _without_count(ptype: ProcessTypeSettings) -> ProcessTypeSettings:
    import dataclasses

    return dataclasses.replace(ptype, count=0)


def _cancel(timer: Any) -> None:
    if timer is not None:
        timer.cancel()
    return None


def _kill_pid(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError as e:
        if e.errno not in (errno.ESRCH, errno.EPERM):
            raise
