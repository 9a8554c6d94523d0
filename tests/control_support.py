"""A background `keelrun start` for the control-socket tests, and clients to talk to it.

Every process a runner starts (keelrun, its children, the clients) carries
KEELRUN_TEST_MARKER=<uuid> in its environment, so teardown can find and
SIGKILL whatever was left behind by scanning /proc/*/environ, and fail the
test if anything was.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import clean_environ, make_app

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


def marked_pids(marker: str) -> list[int]:
    """Live processes whose environment holds KEELRUN_TEST_MARKER=marker."""
    needle = f"{MARKER_VAR}={marker}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue  # gone, or a kernel thread
        if needle in environ.split(b"\0"):
            found.append(int(entry))
    return found


def proc_environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(): v.decode(errors="replace") for k, v in pairs}


def alive(pid: int) -> bool:
    """A live process, not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll a condition of the outside world (no event to wait on) up to timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.02)


class Keelrun:
    """`python -m keelrun start ARGS` in an app folder, stdout read by a thread."""

    def __init__(self, app: Path, args: tuple[str, ...], env: dict[str, str]) -> None:
        self.app = app
        self.env = env
        self.marker = env[MARKER_VAR]
        self.socket_flag = args[args.index("--socket") + 1] if "--socket" in args else None
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.proc = subprocess.Popen(
            [*KEELRUN, "start", *args],
            cwd=app,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self._queue.put(line)
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._queue.put(None)
            self._cond.notify_all()

    # -- output ------------------------------------------------------------
    def mark(self) -> int:
        """An index into the output: wait_for_line(since=mark) sees only later lines."""
        with self._cond:
            return len(self.lines)

    def wait_for_line(self, pattern: str, timeout: float = 10.0, since: int = 0) -> re.Match[str]:
        """The first line from ``since`` on that matches ``pattern`` (re.search)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        i = since
        with self._cond:
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i])
                    if m:
                        return m
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    tail = "\n".join(self.lines[-30:])
                    raise AssertionError(f"no line matching {pattern!r} in {timeout:g}s:\n{tail}")
                self._cond.wait(left)

    def wait_for_lines(self, patterns: list[str], timeout: float = 10.0, since: int = 0) -> None:
        for p in patterns:
            self.wait_for_line(p, timeout, since)

    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

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
        from keelrun.config import resolve_socket_path
        from keelrun.control.protocol import socket_address

        return socket_address(resolve_socket_path(str(self.app), self.socket_flag, self.env))

    def request(self, cmd: str, args: dict[str, Any] | None = None, timeout: float = 10.0) -> dict:
        replies = raw_request(
            self.socket_path(),
            (json.dumps({"v": 1, "cmd": cmd, "args": args or {}}) + "\n").encode(),
            timeout,
        )
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


def raw_request(path: str, data: bytes, timeout: float = 10.0) -> list[dict]:
    """Send bytes on a fresh connection; every reply line until the server closes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(data)
        return read_replies(s)


def read_replies(s: socket.socket) -> list[dict]:
    buf = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        buf += chunk
    return [json.loads(line) for line in buf.split(b"\n") if line.strip()]


def test_env(marker: str, **extra: str) -> dict[str, str]:
    env = clean_environ(**extra)
    env[MARKER_VAR] = marker
    return env


def reap_marked(marker: str, grace: float = 5.0) -> list[int]:
    """Wait up to grace for marked processes to end, SIGKILL the rest; returns those killed."""
    deadline = time.monotonic() + grace
    left = [p for p in marked_pids(marker) if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in marked_pids(marker) if alive(p)]
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return left


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
    ) -> Keelrun:
        k = Keelrun(app, args, env or self.env())
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
        return reap_marked(self.marker)


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
