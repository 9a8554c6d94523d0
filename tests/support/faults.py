"""A background `python -m keelrun start` for the fault, limit and chaos tests.

Each run puts a unique marker variable in keelrun's environment; every
process keelrun starts inherits it (daemons that call setsid too), so
teardown finds leftovers by scanning /proc/*/environ, SIGKILLs them and
reports them as a failure.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from support.lines import LineLog
from support.procs import marked_pids, poll_until, reap_marked
from support.runner import MARK_VAR, RunSet, base_env
from support.wire import recv_replies, request_line


class Run(LineLog):
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
        super().__init__()
        self.marker = uuid.uuid4().hex
        self.cwd = cwd
        run_env = dict(base_env() if env is None else env)
        run_env[MARK_VAR] = self.marker
        self.env = run_env
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
        self._threads[0].start()
        if self.proc.stdout is not None:
            self._threads.append(self._collect(self.proc.stdout))

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()

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

        assert poll_until(up, timeout, 0.05), "control socket never answered"

    def request(self, cmd: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        """One raw control request; its first reply line."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(str(self.socket_path))
            s.sendall(request_line(cmd, args))
            buf = recv_replies(s, first_only=True)
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
        return marked_pids(f"{MARK_VAR}={self.marker}")

    def finish(self) -> list[str]:
        """Kill whatever is still running; the problems found (leftovers) as text."""
        problems: list[str] = []
        if self.proc.poll() is None:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        # The guardian needs a moment to clean up after a killed keelrun; only
        # what is still there after that counts as left behind.
        left = reap_marked(f"{MARK_VAR}={self.marker}", grace=3.0)
        if left:
            problems.append(f"processes left behind by keelrun: {', '.join(left)}")
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        return problems


Runs = RunSet[Run]  # the `fault_runs` fixture: `fault_runs(*args, cwd=...)` starts a Run


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
