"""Processes spawned on a pty by keelrun/supervisor/terminal.py, read by the test.

`TtyRun` spawns a command exactly as the supervisor does (open_pty,
spawn_on_tty) and reads the master through a `TtyFramer` the way the log path
does (one read, then feed; EIO is end of file). `TtySet` is the fixture's
bookkeeping: at teardown it kills every group left and reports any process
carrying the set's marker.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

from keelrun.supervisor import terminal
from support.procs import describe, kill_all, marked_pids, wait_gone
from support.runner import CHILDREN, MARK_VAR, base_env


def child(mode: str, *args: str) -> str:
    """The command line of a tests/support/children/ttychild.py run."""
    return " ".join([sys.executable, str(CHILDREN / "ttychild.py"), mode, *args])


class TtyRun:
    def __init__(self, command: str, marker: str, *, strip: bool = False) -> None:
        master, slave, self.path = terminal.open_pty()
        env = base_env(**{MARK_VAR: marker})
        try:
            self.proc = terminal.spawn_on_tty(command, env, slave, self.path)
        finally:
            os.close(slave)
        self.pid = self.proc.pid
        self.master = master
        self.framer = terminal.TtyFramer(strip)
        self.lines: list[bytes] = []
        self.reads: list[bytes] = []  # every raw read, as the master gave it
        self.eof = False

    def read_once(self, timeout: float) -> bool:
        """One read of the master as the log path does it; False when nothing came."""
        if self.eof or not select.select([self.master], [], [], timeout)[0]:
            return False
        try:
            data = os.read(self.master, 65536)
        except BlockingIOError:
            return False
        except OSError:  # EIO: every slave fd is closed
            data = b""
        if not data:
            tail = self.framer.finish()
            self.eof = True
        else:
            self.reads.append(data)
            tail = self.framer.feed(data)
        if tail:
            self.lines += tail[:-1].split(b"\n")
        return True

    def wait_line(self, pattern: str, timeout: float = 10.0) -> re.Match[bytes]:
        rx = re.compile(pattern.encode())
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for line in self.lines[seen:]:
                if m := rx.search(line):
                    return m
            seen = len(self.lines)
            left = deadline - time.monotonic()
            if left <= 0 or self.eof:
                raise AssertionError(
                    f"no line matching {pattern!r} (eof={self.eof}): {self.lines[-20:]!r}"
                )
            self.read_once(left)

    def wait_until(self, predicate: Callable[[], object], timeout: float = 10.0) -> None:
        """Read until predicate() holds (it looks at lines, reads, pending...)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0 or self.eof:
                raise AssertionError(f"condition not met (eof={self.eof}): {self.lines[-20:]!r}")
            self.read_once(left)

    def wait_pending(self, text: bytes, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.framer.pending.endswith(text):
            left = deadline - time.monotonic()
            if left <= 0 or self.eof:
                raise AssertionError(f"pending line is {self.framer.pending!r}, not {text!r}")
            self.read_once(left)

    def read_to_eof(self, timeout: float = 20.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no EOF within {timeout}s; last lines {self.lines[-5:]!r}")
            self.read_once(left)
        return self.lines

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def exit_status(self, timeout: float = 10.0) -> int:
        """The test is this child's parent (no supervisor here), so it may wait."""
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(OSError):
                os.killpg(self.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        with contextlib.suppress(OSError):
            os.close(self.master)


class TtySet:
    def __init__(self) -> None:
        self.marker_value = uuid.uuid4().hex
        self.runs: list[TtyRun] = []

    def spawn(self, command: str, **kw: bool) -> TtyRun:
        run = TtyRun(command, self.marker_value, **kw)
        self.runs.append(run)
        return run

    def finish(self) -> list[str]:
        marker = f"{MARK_VAR}={self.marker_value}"
        left = [r.pid for r in self.runs if r.proc.poll() is None]
        for run in self.runs:
            run.close()
        survivors = wait_gone(marked_pids(marker), timeout=3.0)
        problems = []
        if left:
            problems.append(f"still running at teardown: {left}")
        if survivors:
            problems.append(f"processes left behind: {describe(survivors)}")
            kill_all(survivors, signal.SIGKILL)
        return problems
