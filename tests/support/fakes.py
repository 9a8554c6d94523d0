"""A supervisor in the test's own process: a fake kernel and a fake clock.

The state machine (back-off, scaling, stop, reload) is driven the way gunicorn's
tests script waitpid: the test says which pid exits with which status and when,
and reads what the supervisor signalled and printed. Nothing here proves how
real processes behave: the real-process suites do that.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from conftest import make_app

from keelrun.config import Overrides, load_settings
from keelrun.logformat import LogFormatter
from keelrun.loop import Loop, Timer
from keelrun.settings import Settings
from keelrun.supervisor.commands import Commands
from keelrun.supervisor.events import Events
from keelrun.supervisor.kernel import Child, Kernel
from keelrun.supervisor.logpipes import LogPipes
from keelrun.supervisor.probeapi import ProbeResult, ResultCallback
from keelrun.supervisor.probes import ProbeTarget
from keelrun.supervisor.supervisor import Supervisor


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Spawned:
    pid: int
    command: str
    env: dict[str, str]
    out_w: int  # the slave of a tty one's pty
    err_w: int
    tty: bool = False
    watchdog_pid: bool = False


@dataclass
class FakeKernel(Kernel):
    """Processes that exist only as pids: they end when the test says so."""

    next_pid: int = 100
    spawned: list[Spawned] = field(default_factory=list)
    alive: set[int] = field(default_factory=set)
    signals: list[tuple[int, int]] = field(default_factory=list)  # (pgid, signal)
    ended: list[tuple[int, int]] = field(default_factory=list)  # waiting to be reaped
    spawn_errors: int = 0  # the next N spawns fail as if out of processes

    def spawn(self, command: str, env: dict[str, str], watchdog_pid: bool = False) -> Child:
        if self.spawn_errors:
            self.spawn_errors -= 1
            raise OSError(11, "Resource temporarily unavailable")
        self.next_pid += 1
        pid = self.next_pid
        out_r, out_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.spawned.append(Spawned(pid, command, env, out_w, err_w, watchdog_pid=watchdog_pid))
        self.alive.add(pid)
        return Child(pid, out_r, err_r)

    def spawn_tty(self, command: str, env: dict[str, str], watchdog_pid: bool = False) -> Child:
        """A pty with no process on it: the test writes the app's output to its slave
        (``out_w``) and reads its keystrokes there."""
        if self.spawn_errors:
            self.spawn_errors -= 1
            raise OSError(24, "Too many open files")
        self.next_pid += 1
        pid = self.next_pid
        master, slave = os.openpty()
        os.set_blocking(master, False)
        os.set_inheritable(master, False)
        self.spawned.append(
            Spawned(pid, command, env, slave, -1, tty=True, watchdog_pid=watchdog_pid)
        )
        self.alive.add(pid)
        return Child(pid, master, -1)

    def reaped(self, child: Child, status: int) -> None:
        pass

    def reap(self) -> Iterator[tuple[int, int]]:
        ended, self.ended = self.ended, []
        yield from ended

    def signal_group(self, pgid: int, sig: int) -> bool:
        if pgid not in self.alive:
            return False
        self.signals.append((pgid, sig))
        return True

    def group_alive(self, pgid: int) -> bool:
        return pgid in self.alive

    def signal_process(self, pid: int, sig: int) -> None:
        self.signals.append((pid, sig))

    def descendants(self) -> list[tuple[int, int]]:
        return [(pid, pid) for pid in sorted(self.alive)]

    # -- what the test does -------------------------------------------------
    def end(self, pid: int, status: int) -> None:
        """Process ``pid`` exits: ``status`` is a wait status (``exited(n)``, ``killed(sig)``)."""
        self.alive.discard(pid)
        for s in self.spawned:
            if s.pid == pid:
                for fd in (s.out_w, s.err_w):
                    with contextlib.suppress(OSError):
                        os.close(fd)
        self.ended.append((pid, status))

    def signalled(self, sig: int) -> list[int]:
        return [pgid for pgid, s in self.signals if s == sig]

    def close(self) -> None:
        for s in self.spawned:
            for fd in (s.out_w, s.err_w):
                with contextlib.suppress(OSError):
                    os.close(fd)


def exited(code: int) -> int:
    return code << 8


def killed(sig: int) -> int:
    return int(sig)


class ScriptedProbes:
    """Probes that answer on the next loop turn what the test says: ``verdict[name]`` for an
    instance ``name`` (default: ok). ``tries`` counts the tries per instance."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.verdict: dict[str, tuple[bool, str]] = {}
        self.tries: dict[str, int] = {}

    def __call__(self, check: object, target: ProbeTarget) -> _Scripted:
        return _Scripted(self, target)

    def answer(self, pid: int) -> tuple[str, tuple[bool, str]]:
        name = next(n for n, i in self.sup.instances.items() if i.pid == pid)
        self.tries[name] = self.tries.get(name, 0) + 1
        return name, self.verdict.get(name, (True, "fine"))


class _Scripted:
    def __init__(self, probes: ScriptedProbes, target: ProbeTarget) -> None:
        self.probes = probes
        self.target = target
        self.timer: Timer | None = None

    @property
    def running(self) -> bool:
        return self.timer is not None

    def start(self, on_result: ResultCallback) -> None:
        def answer() -> None:
            self.timer = None
            _, (ok, detail) = self.probes.answer(self.target.pid)
            on_result(ProbeResult(ok, detail))

        self.timer = self.target.loop.call_later(0, answer)

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class FakeService:
    """keelrun's own sd_notify sender (sdnotify.ServiceNotifier), recording."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    @property
    def ready_sent(self) -> bool:
        return "READY=1" in self.sent

    def ready(self, status: str | None = None) -> None:
        if not self.ready_sent:
            self.sent.append("READY=1")

    def stopping(self) -> None:
        if "STOPPING=1" not in self.sent:
            self.sent.append("STOPPING=1")


class Memory:
    """keelrun's stdout, kept in memory."""

    def __init__(self) -> None:
        self.data = bytearray()

    def queue(self, data: bytes | memoryview) -> None:
        self.data += data

    def queue_all(self, parts: list[bytes | memoryview]) -> None:
        for p in parts:
            self.data += p

    def lines(self) -> list[str]:
        return self.data.decode("utf-8", "replace").splitlines()


class Harness:
    """One supervisor on a fake kernel and clock, with its commands and its output."""

    def __init__(self, root: Path, procfile: str, *, pyproject: str | None = None, **opts: str):
        make_app(root, procfile, pyproject=pyproject)
        self.overrides = Overrides(app_root=str(root), **opts)
        self.settings: Settings = load_settings(self.overrides)
        self.clock = FakeClock()
        self.loop = Loop(clock=self.clock)
        self.kernel = FakeKernel()
        self.out = Memory()
        fmt = LogFormatter(json_mode=False, color=False, timestamp=False)
        pipes = LogPipes(self.loop, fmt, self.out)  # type: ignore[arg-type]
        events = Events(fmt, self.out.queue)
        self.sup = Supervisor(
            self.settings, self.loop, events, pipes, self.kernel, extra_env={"RUN": "x"}
        )
        self.commands = Commands(self.sup, self.overrides)
        self.probes = ScriptedProbes(self.sup)
        self.sup.checks.probe_factory = self.probes

    def start(self) -> None:
        counts = {t.name: t.count for t in self.settings.types}
        self.sup.start(counts)

    def advance(self, seconds: float) -> None:
        """Let time pass: every timer due by then runs, in deadline order."""
        target = self.clock.now + seconds
        while True:
            due = [t for t in self.loop._timers if not t[2].cancelled and t[0] <= target]
            if not due:
                break
            self.clock.now = max(self.clock.now, min(t[0] for t in due))
            self.loop.run_due()
        self.clock.now = target

    def end(self, name: str, status: int) -> None:
        """The named instance's current process exits; the reaper runs."""
        pid = self.sup.instances[name].pid
        assert pid is not None, f"{name} is not running"
        self.kernel.end(pid, status)
        self.sup.reap()

    def obey(self, sig: int = signal.SIGTERM) -> None:
        """Every process that got ``sig`` exits by it (as an app without a handler would)."""
        for name, inst in list(self.sup.instances.items()):
            if inst.pid is not None and (inst.pid, sig) in self.kernel.signals:
                self.end(name, killed(sig))

    def state(self, name: str) -> str:
        return self.sup.instances[name].state.public

    def events(self) -> list[str]:
        return [line.split("| ", 1)[1] for line in self.out.lines() if line.startswith("keelrun")]

    def ps(self, name: str) -> dict:
        """The `ps` record of one instance, with the health counts of the table."""
        rows = self.commands.ps({"health_counts": True})["result"]
        return next(r for r in rows if r["name"] == name)

    def close(self) -> None:
        self.kernel.close()
        for inst in list(self.sup.instances.values()):
            self.sup.pipes.close_all(inst)
        self.loop.close()
