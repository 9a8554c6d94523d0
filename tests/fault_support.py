"""A background `python -m keelrun start` for the fault, limit and chaos tests.

Each run puts a unique marker variable in keelrun's environment; every
process keelrun starts inherits it (daemons that call setsid too), so
teardown finds leftovers by scanning /proc/*/environ, SIGKILLs them and
reports them as a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MARK_VAR = "KRFAULT_MARK"  # not KEELRUN_*: keelrun must not read it as configuration


def base_env(**extra: str) -> dict[str, str]:
    """The test environment minus anything that steers keelrun, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("KEELRUN_")
        and k not in ("PORT", "PS", "DYNO", "NO_COLOR", "PYTHONUNBUFFERED", MARK_VAR)
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def marked_pids(value: str) -> list[int]:
    """Pids of every process whose environment holds ``MARK_VAR=value``."""
    needle = f"{MARK_VAR}={value}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                entries = f.read().split(b"\0")
        except OSError:
            continue
        if needle in entries and not _is_zombie(int(name)):
            found.append(int(name))
    return found


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return True
    return data[data.rfind(b")") + 2 : data.rfind(b")") + 3] == b"Z"


def pid_alive(pid: int) -> bool:
    """True while pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def wait_until(predicate: Callable[[], bool], timeout: float, every: float = 0.02) -> bool:
    """Poll ``predicate`` until true or ``timeout``; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(every)


class Run:
    """One keelrun in the background; a thread collects its stdout lines."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        cwd: Path,
        env: dict[str, str] | None = None,
        preexec_fn: Callable[[], None] | None = None,
        stdout: int | None = subprocess.PIPE,
    ) -> None:
        self.marker = uuid.uuid4().hex
        self.cwd = cwd
        run_env = dict(base_env() if env is None else env)
        run_env[MARK_VAR] = self.marker
        self.env = run_env
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.eof = False
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "keelrun", *args],
            cwd=cwd,
            env=run_env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.PIPE,
            preexec_fn=preexec_fn,
        )
        self.pid = self.proc.pid
        self.stderr = b""
        self._threads = [threading.Thread(target=self._read_stderr, daemon=True)]
        if self.proc.stdout is not None:
            self._threads.append(threading.Thread(target=self._read_stdout, daemon=True))
        for t in self._threads:
            t.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with self._cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self.eof = True
            self._cond.notify_all()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()

    def wait_for_line(self, pattern: str, timeout: float = 10.0, start: int = 0) -> re.Match[str]:
        """The first line at or after index ``start`` that matches ``pattern``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        i = start
        with self._cond:
            while True:
                while i < len(self.lines):
                    m = regex.search(self.lines[i])
                    if m:
                        return m
                    i += 1
                left = deadline - time.monotonic()
                if self.eof or left <= 0:
                    tail = "\n".join(self.lines[-30:])
                    why = "EOF" if self.eof else f"{timeout}s"
                    raise AssertionError(
                        f"no line matching {pattern!r} ({why}); last lines:\n{tail}"
                    )
                self._cond.wait(left)

    def mark(self) -> int:
        """Index of the next line: pass as ``start`` to wait only for new lines."""
        with self._cond:
            return len(self.lines)

    def wait(self, timeout: float) -> int:
        rc = self.proc.wait(timeout)
        for t in self._threads:
            t.join(timeout)
        return rc

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    @property
    def socket_path(self) -> Path:
        return self.cwd / ".keelrun.sock"

    def wait_for_socket(self, timeout: float = 10.0) -> None:
        def up() -> bool:
            try:
                return bool(self.request("ping").get("ok"))
            except OSError:
                return False

        assert wait_until(up, timeout, 0.05), "control socket never answered"

    def request(self, cmd: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        """One raw control request; its first reply line."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(str(self.socket_path))
            s.sendall(json.dumps({"v": 1, "cmd": cmd, "args": args or {}}).encode() + b"\n")
            buf = b""
            while b"\n" not in buf:
                data = s.recv(65536)
                if not data:
                    break
                buf += data
        return json.loads(buf.split(b"\n", 1)[0])

    def client(self, *args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        """A `python -m keelrun ARGS` client against this run's app root."""
        return subprocess.run(
            [sys.executable, "-m", "keelrun", *args],
            cwd=self.cwd,
            env=base_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def ps(self) -> list[dict[str, Any]]:
        reply = self.request("ps")
        assert reply.get("ok"), reply
        return list(reply["result"])

    def leftovers(self) -> list[int]:
        return marked_pids(self.marker)

    def finish(self) -> list[str]:
        """Kill whatever is still running; the problems found (leftovers) as text."""
        problems: list[str] = []
        if self.proc.poll() is None:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        # The guardian needs a moment to clean up after a killed keelrun; only
        # what is still there after that counts as left behind.
        wait_until(lambda: not self.leftovers(), 3.0, 0.05)
        left = self.leftovers()
        if left:
            problems.append(f"processes left behind by keelrun: {_describe(left)}")
            for pid in left:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        return problems


def _describe(pids: list[int]) -> str:
    out = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            cmd = "?"
        out.append(f"{pid} ({cmd[:60]})")
    return ", ".join(out)


class Runs:
    """Factory of runs for one test; teardown asserts that none left anything behind."""

    def __init__(self) -> None:
        self.runs: list[Run] = []

    def __call__(self, *args: str, cwd: Path, **kw: Any) -> Run:
        run = Run(args, cwd=cwd, **kw)
        self.runs.append(run)
        return run

    def finish(self) -> list[str]:
        problems: list[str] = []
        for run in self.runs:
            problems += run.finish()
        return problems


def write_app(root: Path, procfile: str, **files: str) -> Path:
    """An app folder with this Procfile and other files (name -> text)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "Procfile").write_text(procfile)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


PY = sys.executable


def py_command(code: str) -> str:
    """A Procfile command running Python ``code`` (single-quoted for sh)."""
    assert "'" not in code
    return f"exec {PY} -c '{code}'"
