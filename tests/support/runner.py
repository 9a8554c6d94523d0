"""`Keelrun`: one `python -m keelrun ...` running in the background, read line by line."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, TypeVar

from support.procs import describe, kill_all, marked_pids, wait_gone

REPO = Path(__file__).resolve().parents[2]
CHILDREN = Path(__file__).resolve().parent / "children"
MARK_VAR = "KRTEST_MARK"  # not KEELRUN_*: keelrun must not read it as configuration

Mode = Literal["lines", "raw", "pty"]


def py(script: str, *args: str) -> str:
    """A Procfile command running one of the helper children with this interpreter."""
    return " ".join([sys.executable, str(CHILDREN / script), *args])


def base_env(**extra: str) -> dict[str, str]:
    """The environment of the test run without anything that steers keelrun."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("KEELRUN_")
        and k not in ("PORT", "PS", "DYNO", "NO_COLOR", "PYTHONUNBUFFERED", MARK_VAR)
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


class Keelrun:
    """A keelrun process. ``mode``: "lines" (a thread collects stdout lines), "pty"
    (stdout is a terminal, lines collected likewise) or "raw" (the test reads
    ``stdout_fd`` itself)."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        cwd: Path,
        env: dict[str, str] | None = None,
        wrapper: Sequence[str] = (),
        mode: Mode = "lines",
        program: Sequence[str] | None = None,
    ) -> None:
        self.marker_value = uuid.uuid4().hex
        self.marker = f"{MARK_VAR}={self.marker_value}"
        run_env = dict(base_env() if env is None else env)
        run_env[MARK_VAR] = self.marker_value
        self.mode = mode
        self.lines: list[bytes] = []
        self.eof = False
        self._cond = threading.Condition()
        self._stderr = bytearray()
        self._threads: list[threading.Thread] = []
        self.started = time.monotonic()
        # ``program`` replaces keelrun (control experiments run under the same harness).
        cmd = [*wrapper, *(program or (sys.executable, "-m", "keelrun")), *args]
        if mode == "pty":
            master, slave = os.openpty()
            self.proc = subprocess.Popen(
                cmd,
                cwd=cwd,
                env=run_env,
                stdin=subprocess.DEVNULL,
                stdout=slave,
                stderr=subprocess.PIPE,
            )
            os.close(slave)
            self.stdout_fd = master
        else:
            self.proc = subprocess.Popen(
                cmd,
                cwd=cwd,
                env=run_env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            assert self.proc.stdout is not None
            self.stdout_fd = self.proc.stdout.fileno()
        self.pid = self.proc.pid
        self._spawn_thread(self._read_stderr)
        if mode != "raw":
            self._spawn_thread(self._read_lines)

    # ------------------------------------------------------------ readers
    def _spawn_thread(self, target: Any) -> None:
        t = threading.Thread(target=target, daemon=True)
        t.start()
        self._threads.append(t)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        fd = self.proc.stderr.fileno()
        while data := os.read(fd, 65536):
            self._stderr += data

    def _read_lines(self) -> None:
        partial = b""
        while True:
            try:
                data = os.read(self.stdout_fd, 1 << 20)
            except OSError:  # EIO: the terminal's last writer is gone
                data = b""
            if not data:
                break
            data = partial + data
            cut = data.rfind(b"\n") + 1
            partial = data[cut:]
            if cut:
                new = data[: cut - 1].split(b"\n")
                if self.mode == "pty":
                    new = [line.removesuffix(b"\r") for line in new]
                with self._cond:
                    self.lines.extend(new)
                    self._cond.notify_all()
        with self._cond:
            if partial:
                self.lines.append(partial)  # keelrun's output must end in a newline; kept to show
            self.eof = True
            self._cond.notify_all()

    # ------------------------------------------------------------- waiting
    def wait_for_line(self, pattern: str | bytes, timeout: float = 10.0, start: int = 0) -> int:
        """Index of the first line from ``start`` on that matches (re.search)."""
        rx = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        deadline = time.monotonic() + timeout
        i = start
        with self._cond:
            while True:
                while i < len(self.lines):
                    if rx.search(self.lines[i]):
                        return i
                    i += 1
                left = deadline - time.monotonic()
                if self.eof or left <= 0:
                    raise AssertionError(
                        f"no line matching {pattern!r} within {timeout}s "
                        f"(eof={self.eof}); output:\n{self.tail_text()}\nstderr:\n{self.stderr}"
                    )
                self._cond.wait(left)

    def wait_for_match(self, pattern: str, timeout: float = 10.0, start: int = 0) -> re.Match[str]:
        """Like wait_for_line, but returns the match on the decoded line (for its groups)."""
        i = self.wait_for_line(pattern, timeout, start)
        m = re.search(pattern, self.lines[i].decode("utf-8", "replace"))
        assert m is not None
        return m

    def wait_exit(self, timeout: float = 15.0) -> int:
        """Wait for keelrun to exit and its stdout to reach EOF; return the exit status."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"keelrun still running after {timeout}s; output:\n{self.tail_text()}"
            ) from None
        for t in self._threads:
            t.join(5.0)
        return rc

    def send(self, sig: int) -> None:
        os.kill(self.pid, sig)

    # ------------------------------------------------------------- results
    @property
    def stderr(self) -> str:
        return bytes(self._stderr).decode("utf-8", "replace")

    def text_lines(self) -> list[str]:
        with self._cond:
            return [line.decode("utf-8", "replace") for line in self.lines]

    def tail_text(self, n: int = 60) -> str:
        return "\n".join(line[:300].decode("utf-8", "replace") for line in self.lines[-n:])

    def records(self) -> list[dict[str, Any]]:
        """Every stdout line parsed as JSON (for --log-format json)."""
        return [json.loads(line) for line in list(self.lines)]

    def events(self, event: str | None = None) -> list[dict[str, Any]]:
        """keelrun's own events from JSON output, optionally of one kind."""
        return [
            r
            for r in self.records()
            if r.get("proc") == "keelrun" and (event is None or r.get("event") == event)
        ]

    # ------------------------------------------------------------ teardown
    def finish(self) -> list[str]:
        """Kill whatever is left; return problems (still running, survivors) as text."""
        problems = []
        if self.proc.poll() is None:
            problems.append(f"keelrun (pid {self.pid}) was still running at teardown")
            kill_all([self.pid, *marked_pids(self.marker)], signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        # After a clean exit only keelrun's guardian may still be on its way out.
        survivors = wait_gone(marked_pids(self.marker), timeout=3.0)
        if survivors:
            problems.append(f"processes left behind: {describe(survivors)}")
            kill_all(survivors, signal.SIGKILL)
            wait_gone(survivors, timeout=3.0)
        for t in self._threads:
            t.join(2.0)
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()
        if self.mode == "pty":
            with contextlib.suppress(OSError):
                os.close(self.stdout_fd)
        return problems


class Finishing(Protocol):
    def finish(self) -> list[str]: ...


R = TypeVar("R", bound=Finishing)


class RunSet(Generic[R]):
    """The runs one test started (``make(args, cwd=..., **kw)`` makes each); ``finish``
    kills what is left of them and returns the problems found, for the fixture to fail on."""

    def __init__(self, make: Callable[..., R]) -> None:
        self.make = make
        self.runs: list[R] = []

    def start(self, *args: str, cwd: Path, **kw: Any) -> R:
        run = self.make(args, cwd=cwd, **kw)
        self.runs.append(run)
        return run

    __call__ = start

    def finish(self) -> list[str]:
        problems: list[str] = []
        for run in self.runs:
            problems += run.finish()
        return problems


def read_until_eof(fd: int, timeout: float, sink: bytearray | None = None) -> bytearray:
    """Read a pipe to its end within ``timeout`` seconds (raw mode runs)."""
    import select

    out = bytearray() if sink is None else sink
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no EOF within {timeout}s ({len(out)} bytes read)")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            data = os.read(fd, 1 << 20)
            if not data:
                return out
            out += data
