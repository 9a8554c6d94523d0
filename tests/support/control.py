"""A background `keelrun start` for the control-socket tests, and clients to talk to it.

Every process a runner starts (keelrun, its children, the clients) carries
KEELRUN_TEST_MARKER=<uuid> in its environment, so teardown can find and
SIGKILL whatever was left behind by scanning /proc/*/environ, and fail the
test if anything was.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from conftest import clean_environ, make_app

from support.lines import LineLog
from support.procs import reap_marked
from support.wire import raw_request, request_line

MARKER_VAR = "KEELRUN_TEST_MARKER"
KEELRUN = [sys.executable, "-m", "keelrun"]

# A long-running child that reports its start and a trapped SIGTERM/SIGUSR1.
# `sleep & wait` lets the shell run its traps at once instead of after the sleep.
TRAPPING = (
    "trap 'echo \"$PS got TERM\"; exit 0' TERM; "
    "trap 'echo \"$PS got USR1\"' USR1; "
    'echo "$PS up port=$PORT"; '
    "while :; do sleep 30 & wait $!; done"
)


class Keelrun(LineLog):
    """`python -m keelrun start ARGS` in an app folder, stdout read by a thread."""

    def __init__(
        self,
        app: Path,
        args: tuple[str, ...],
        env: dict[str, str],
        program: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.app = app
        self.env = env
        self.marker = env[MARKER_VAR]
        self.socket_flag = args[args.index("--socket") + 1] if "--socket" in args else None
        self.proc = subprocess.Popen(
            [*(program or KEELRUN), "start", *args],
            cwd=app,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert self.proc.stdout is not None
        self._reader = self._collect(self.proc.stdout)

    # -- output ------------------------------------------------------------
    def wait_for_lines(self, patterns: list[str], timeout: float = 10.0, start: int = 0) -> None:
        for p in patterns:
            self.wait_for_line(p, timeout, start)

    # -- clients -----------------------------------------------------------
    def client(
        self, *args: str, timeout: float = 20.0, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """A client command (`python -m keelrun ARGS`) run to completion in the app folder."""
        return subprocess.run(
            [*KEELRUN, *args],
            cwd=self.app,
            env=self.env if env is None else env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def socket_path(self) -> str:
        """Where this keelrun's socket file is: the first of the client's addresses that
        exists (the first when none does yet)."""
        from keelrun.control.locate import locate

        target = locate(None, self.socket_flag, cwd=self.app, environ=self.env)
        addresses = list(target.addresses())
        for address in addresses:
            if os.path.exists(address):
                return str(address)
        return str(addresses[0]) if addresses else str(target.path)

    def request(self, cmd: str, args: dict[str, Any] | None = None, timeout: float = 10.0) -> dict:
        replies = raw_request(self.socket_path(), request_line(cmd, args), timeout)
        assert replies, f"no reply to {cmd}"
        return replies[0]

    def ps(self) -> dict[str, dict[str, Any]]:
        """`ps` over the raw socket, keyed by instance name."""
        reply = self.request("ps")
        assert reply["ok"], reply
        return {row["name"]: row for row in reply["result"]}

    def wait_ready(self, *names: str, timeout: float = 10.0) -> None:
        """Every named instance has printed its `up` line (TRAPPING children do)."""
        for name in names:
            self.wait_for_line(rf"^\S+ {re.escape(name)}\s+\| {re.escape(name)} up ", timeout)

    # -- stopping ----------------------------------------------------------
    def terminate(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def wait_exit(self, timeout: float = 15.0) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        return code


def test_env(marker: str, **extra: str) -> dict[str, str]:
    env = clean_environ(**extra)
    env[MARKER_VAR] = marker
    return env


class Runner:
    """Starts keelruns for one test; teardown stops them and checks nothing is left."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.marker = uuid.uuid4().hex
        self.started: list[Keelrun] = []
        self.extra: list[subprocess.Popen[bytes]] = []

    def env(self, **extra: str) -> dict[str, str]:
        return test_env(self.marker, **extra)

    def app(self, procfile: str, name: str = "app", env_file: str | None = None) -> Path:
        return make_app(self.root / name, procfile=procfile, env=env_file)

    def start(
        self,
        app: Path,
        *args: str,
        env: dict[str, str] | None = None,
        wait: str | None = r"keelrun\s+\| started ",
        program: list[str] | None = None,
    ) -> Keelrun:
        """`keelrun start ARGS` in ``app``; ``program`` replaces `python -m keelrun`."""
        k = Keelrun(app, args, env or self.env(), program)
        self.started.append(k)
        if wait:
            k.wait_for_line(wait, 10)
        return k

    def popen(self, k: Keelrun, *args: str) -> subprocess.Popen[bytes]:
        """A long-running client (logs -f) whose stdout the test reads."""
        p = subprocess.Popen(
            [*KEELRUN, *args],
            cwd=k.app,
            env=k.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.extra.append(p)
        return p

    def close(self) -> list[int]:
        for p in self.extra:
            if p.poll() is None:
                p.kill()
            p.wait(5)
        for k in self.started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                k.terminate(15)
            if k.proc.poll() is None:
                k.proc.kill()
                k.proc.wait(5)
        return reap_marked(f"{MARKER_VAR}={self.marker}", grace=5.0)


def lines_of(stream: Any, into: list[str], cond: threading.Condition) -> threading.Thread:
    """Read a pipe into a shared list on a daemon thread (for followers)."""

    def pump() -> None:
        for raw in stream:
            with cond:
                into.append(raw.decode("utf-8", "replace").rstrip("\n"))
                cond.notify_all()

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    return t


def wait_in(lines: list[str], cond: threading.Condition, pattern: str, timeout: float) -> str:
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    with cond:
        while True:
            for line in lines:
                if rx.search(line):
                    return line
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line matching {pattern!r}; got {lines[-20:]}")
            cond.wait(left)
