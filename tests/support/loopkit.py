"""A keelrun Loop with the supervisor's reaper in miniature, for tests of loop-driven parts.

keelrun reaps in one place: SIGCHLD (through the loop's signals()) ->
``waitpid(-1, WNOHANG)`` -> dispatch by pid. ``Kit`` does the same, so exec
probes and the processes a test starts are reaped the way keelrun reaps
them, and nothing ever calls Popen.wait/poll. Every process gets a marker in
its environment; teardown SIGKILLs whatever is left and reports it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from keelrun.loop import Loop
from keelrun.supervisor.probeapi import ChildRoutes
from support.procs import reap_marked

CHILDREN = Path(__file__).resolve().parent / "children"
MARK_VAR = "KRTEST_MARK"


class Child:
    """A process started by the kit: its pid, its stdout lines, its wait status once reaped."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.lines: list[str] = []
        self.status: int | None = None
        self._partial = b""

    def saw(self, text: str) -> bool:
        return any(text in line for line in self.lines)


class Kit:
    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self.loop = Loop(clock) if clock is not None else Loop()
        self.routes = ChildRoutes()
        self.marker = f"{MARK_VAR}={uuid.uuid4().hex}"
        self.children: list[Child] = []
        self.unknown: list[int] = []  # reaped pids nobody claimed
        self._until: Callable[[], bool] | None = None
        self._signals = self.loop.signals({signal.SIGCHLD: self.reap})
        self._signals.__enter__()
        self.loop.after_iteration(self._check_until)

    # -- the reaper -----------------------------------------------------
    def reap(self, signum: int = 0) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if not self.routes.dispatch(pid, status):
                self.unknown.append(pid)

    # -- processes ------------------------------------------------------
    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KEELRUN_", "NOTIFY_"))}
        key, _, value = self.marker.partition("=")
        env[key] = value
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(CHILDREN.parents[2]), env.get("PYTHONPATH")])
        )
        env.update(extra)
        return env

    def spawn(self, argv: list[str], env: Mapping[str, str] | None = None, **kw: Any) -> Child:
        """Start argv in a session of its own, as keelrun starts instances; stdout is read."""
        r, w = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(r, False)
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=w,
            env=dict(env) if env is not None else self.env(),
            start_new_session=True,
            close_fds=True,
            **kw,
        )
        os.close(w)
        child = Child(proc)
        self.children.append(child)

        def on_exit(status: int) -> None:
            child.status = status
            proc.returncode = os.waitstatus_to_exitcode(status)

        def on_read(mask: int) -> None:
            try:
                data = os.read(r, 65536)
            except BlockingIOError:
                return
            if not data:
                self.loop.remove(r)
                os.close(r)
                return
            data = child._partial + data
            *lines, child._partial = data.split(b"\n")
            child.lines += [line.decode(errors="replace") for line in lines]

        self.routes.add(proc.pid, on_exit)
        self.loop.add_reader(r, on_read)
        return child

    def python(self, script: str, *args: str, env: Mapping[str, str] | None = None) -> Child:
        return self.spawn([sys.executable, str(CHILDREN / script), *args], env=env)

    def stop(self, child: Child, sig: int = signal.SIGKILL, timeout: float = 10) -> int:
        """Signal the child's group and wait (in the loop) until the reaper has it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, sig)
        self.run_until(lambda: child.status is not None, timeout, f"pid {child.pid} reaped")
        assert child.status is not None
        return child.status

    # -- running --------------------------------------------------------
    def _check_until(self) -> None:
        if self._until is not None and self._until():
            self.loop.stop()

    def run_until(self, predicate: Callable[[], object], timeout: float, what: str) -> None:
        """Run the loop until predicate() holds; fail the test after ``timeout`` seconds."""
        if predicate():
            return
        expired: list[bool] = []

        def give_up() -> None:
            expired.append(True)
            self.loop.stop()

        timer = self.loop.call_later(timeout, give_up)
        self._until = lambda: bool(predicate())
        try:
            self.loop.run()
        finally:
            self._until = None
            timer.cancel()
        if expired and not predicate():
            raise AssertionError(f"timed out after {timeout:g}s waiting for: {what}")

    def run_for(self, seconds: float) -> None:
        """Run the loop for a while (to show that something does NOT happen)."""
        self.loop.call_later(seconds, self.loop.stop)
        self.loop.run()

    def close(self) -> list[str]:
        """Kill and reap everything; returns descriptions of processes that had to be killed."""
        for child in self.children:
            if child.status is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.pid, signal.SIGKILL)
        with contextlib.suppress(AssertionError):
            self.run_until(
                lambda: all(c.status is not None for c in self.children) and not self.routes,
                5,
                "every child reaped",
            )
        self.reap()
        self._signals.__exit__(None, None, None)
        left = reap_marked(self.marker, 0.5)
        self.loop.close()
        return left
