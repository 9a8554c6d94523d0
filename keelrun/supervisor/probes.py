"""The probes readiness and liveness share: port, http and exec (one interface, probeapi.py).

- port: a socket listening on 127.0.0.1:PORT (or the wildcard address) that
  belongs to the instance's process tree, or that appeared after the instance
  started (keelrun/listeners.py); a port someone else held before fails. Where
  /proc cannot tell (not Linux), a connect decides.
- http: GET http://127.0.0.1:PORT/PATH, 2xx or 3xx within the timeout (httpprobe.py).
- exec: ``/bin/sh -c COMMAND`` in the app root with the instance's environment,
  in a session and process group of its own; exit 0 within the timeout. A probe
  still running then is SIGKILLed, its whole group, and fails.

An exec probe is keelrun's child, but it never waits for itself: whoever
reaps (the supervisor's one ``waitpid(-1)`` loop) hands its wait status to
``ChildRoutes.dispatch``, which reaches the probe.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from keelrun.errors import one_line
from keelrun.healthspec import Check
from keelrun.listeners import Owner, check_port
from keelrun.loop import Loop, Timer
from keelrun.supervisor.httpprobe import HttpProbe
from keelrun.supervisor.probeapi import ChildRoutes, Probe, ProbeResult, ResultCallback

SHELL = "/bin/sh"
OUTPUT_TAIL = 512  # bytes of an exec probe's output kept for the failure message
READ_SIZE = 64 * 1024


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """What a probe needs to know about one running instance (one incarnation)."""

    loop: Loop
    pid: int  # the instance's process: the root of its tree and its process group
    port: int
    app_root: str | Path
    env: Mapping[str, str]
    timeout: float  # probe_timeout: the bound of one try
    children: ChildRoutes  # where the reaper routes exec probes' exits
    # The port's listeners when the instance started (a port check's; None: unknown).
    listeners_before: frozenset[int] | None = None


class PortProbe:
    def __init__(self, target: ProbeTarget) -> None:
        self.target = target
        self._timer: Timer | None = None
        self._cb: ResultCallback | None = None
        self._fallback: HttpProbe | None = None

    @property
    def running(self) -> bool:
        return self._cb is not None

    def start(self, on_result: ResultCallback) -> None:
        assert self._cb is None, "one try at a time"
        self._cb = on_result
        self._timer = self.target.loop.call_later(0, self._check)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._fallback is not None and self._fallback.running:
            self._fallback.cancel()
        self._cb = None

    def _check(self) -> None:
        self._timer = None
        port = self.target.port
        found = check_port(port, self.target.pid, self.target.listeners_before)
        if found.owner is Owner.UNKNOWN:
            if self._fallback is None:
                self._fallback = HttpProbe(self.target.loop, port, None, self.target.timeout)
            self._fallback.start(self._done)
            return
        self._done(ProbeResult(found.owner in (Owner.TREE, Owner.LATER), found.describe(port)))

    def _done(self, result: ProbeResult) -> None:
        cb, self._cb = self._cb, None
        if cb is not None:
            cb(result)


class _ExecTry:
    """One run of an exec probe: its process, its output pipe and its deadline.

    It outlives its result when the probe was killed at the timeout: the pid
    stays routed until the reaper hands over its status.
    """

    def __init__(self, probe: ExecProbe, on_result: ResultCallback) -> None:
        self.probe = probe
        self.loop = probe.target.loop
        self.cb: ResultCallback | None = on_result
        self.proc: subprocess.Popen[bytes] | None = None
        self.fd = -1
        self.tail = b""
        self.timer: Timer | None = None

    def spawn(self) -> None:
        t = self.probe.target
        r, w = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(r, False)
        try:
            # Never waited on: the reaper collects it and on_exit sets its returncode.
            self.proc = subprocess.Popen(
                [SHELL, "-c", self.probe.command],
                cwd=t.app_root,
                env=dict(t.env),
                stdin=subprocess.DEVNULL,
                stdout=w,
                stderr=w,
                close_fds=True,
                restore_signals=True,
                start_new_session=True,
            )
        except OSError as e:
            os.close(r)
            os.close(w)
            detail = f"cannot start the probe: {e.strerror or e}"
            self.timer = self.loop.call_later(0, lambda: self._result(False, detail))
            return
        os.close(w)
        self.fd = r
        t.children.add(self.proc.pid, self.on_exit)
        self.loop.add_reader(r, self._on_output)
        self.timer = self.loop.call_later(t.timeout, self._timed_out)

    def _on_output(self, mask: int) -> None:
        self._drain()

    def _drain(self) -> None:
        """Keep reading (the probe must never block on a full pipe); keep only the tail."""
        while self.fd >= 0:
            try:
                data = os.read(self.fd, READ_SIZE)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._close_pipe()
                return
            self.tail = (self.tail + data)[-OUTPUT_TAIL:]

    def _close_pipe(self) -> None:
        if self.fd >= 0:
            self.loop.remove(self.fd)
            os.close(self.fd)
            self.fd = -1

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def _timed_out(self) -> None:
        self.timer = None
        self.kill()
        self._result(False, f"still running after {self.probe.target.timeout:g}s: killed")

    def on_exit(self, wait_status: int) -> None:
        """Called by the reaper with this probe's wait status."""
        assert self.proc is not None
        self.proc.returncode = os.waitstatus_to_exitcode(wait_status)
        self._drain()
        self._close_pipe()
        # Whatever the probe left running in its group goes with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        code = self.proc.returncode
        if code == 0:
            self._result(True, "exit status 0")
            return
        what = f"exit status {code}" if code > 0 else f"killed by signal {-code}"
        last = self.tail.rstrip().rsplit(b"\n", 1)[-1].decode("utf-8", "replace")
        self._result(False, f"{what}: {one_line(last)[:200]}" if last else what)

    def cancel(self) -> None:
        self.cb = None
        self.kill()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _result(self, ok: bool, detail: str) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        cb, self.cb = self.cb, None
        if cb is not None:
            self.probe._ended(self)
            cb(ProbeResult(ok, detail))


class ExecProbe:
    def __init__(self, target: ProbeTarget, command: str) -> None:
        self.target = target
        self.command = command
        self._try: _ExecTry | None = None

    @property
    def running(self) -> bool:
        return self._try is not None

    @property
    def pid(self) -> int | None:
        """The pid of the running try's shell (tests and `ps` may show it)."""
        t = self._try
        return t.proc.pid if t is not None and t.proc is not None else None

    def start(self, on_result: ResultCallback) -> None:
        assert self._try is None, "one try at a time"
        self._try = _ExecTry(self, on_result)
        self._try.spawn()

    def cancel(self) -> None:
        t, self._try = self._try, None
        if t is not None:
            t.cancel()

    def _ended(self, t: _ExecTry) -> None:
        if self._try is t:
            self._try = None


def make_probe(check: Check, target: ProbeTarget) -> Probe:
    """The probe for a port, http or exec check (log and notify are not probed)."""
    if check.kind == "port":
        return PortProbe(target)
    if check.kind == "http":
        assert check.path is not None
        return HttpProbe(target.loop, target.port, check.path, target.timeout)
    if check.kind == "exec":
        assert check.command is not None
        return ExecProbe(target, check.command)
    raise ValueError(f"{check.kind} checks are not probed")
