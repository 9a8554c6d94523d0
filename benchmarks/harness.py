"""Shared machinery: the supervisors under test, launching them, /proc accounting, cleanup.

Every process a run starts carries ``BENCH_TOKEN=<uuid>`` in its environment
(supervisors pass their environment on), so whatever a supervisor leaves
behind can be found by scanning ``/proc/*/environ`` and killed. The
benchmark makes itself a child subreaper, so orphans are reparented to it
and reaped here instead of lingering as zombies under a PID 1 that may not
reap.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

TOKEN_VAR = "BENCH_TOKEN"
PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


# --- /proc -------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (field 3, the state, first)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2 :].decode().split()


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def parents() -> dict[int, int]:
    result = {}
    for pid in all_pids():
        fields = _stat_fields(pid)
        if fields is not None:
            result[pid] = int(fields[1])
    return result


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, ppid in parents().items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def marked_pids(token: str) -> list[int]:
    """Live processes whose environment carries the run's token."""
    needle = f"{TOKEN_VAR}={token}".encode()
    found = []
    for pid in all_pids():
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if needle in env and alive(pid):
            found.append(pid)
    return found


def cpu_ns(pids: set[int]) -> int:
    """CPU time (user+sys) of the processes, all threads, in ns.

    /proc/PID/task/TID/schedstat counts nanoseconds; /proc/PID/stat counts
    10 ms ticks, too coarse for a supervisor that should use ~nothing.
    """
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
    return total


def pss_kb(pids: set[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
    return total


def wait_gone(pids: list[int], deadline: float, drain_fd: int | None = None) -> float | None:
    """Wait on pidfds (no polling) until every pid has exited; when it happened, or None.

    `drain_fd`, the supervisor's stdout, is read and discarded meanwhile, so
    that its shutdown messages cannot fill the pipe and stall it.
    """
    fds: dict[int, int] = {}
    for pid in pids:
        try:
            fds[os.pidfd_open(pid)] = pid
        except ProcessLookupError:
            continue
    try:
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        if drain_fd is not None:
            poller.register(drain_fd, select.POLLIN)
        pending = {fd for fd in fds if alive(fds[fd])}
        while pending:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return None
            for fd, _ in poller.poll(remaining * 1000):
                if fd == drain_fd:
                    if not os.read(fd, 65536):
                        poller.unregister(fd)
                    continue
                poller.unregister(fd)
                pending.discard(fd)
        return time.perf_counter()
    finally:
        for fd in fds:
            os.close(fd)


def discard_output(fd: int, seconds: float) -> None:
    """Let `seconds` pass while reading and dropping whatever arrives on fd."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    deadline = time.perf_counter() + seconds
    while (remaining := deadline - time.perf_counter()) > 0:
        if poller.poll(remaining * 1000) and not os.read(fd, 65536):
            poller.unregister(fd)


def reap_orphans() -> None:
    """Collect zombies reparented to us (we are a subreaper). Only after Popen.wait()s."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def kill_marked(token: str, timeout: float = 5.0) -> int:
    """SIGKILL every process carrying the token until none is left; how many were killed."""
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = marked_pids(token)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            killed.add(pid)
        wait_gone(pids, time.perf_counter() + 1.0)
        reap_orphans()
    return len(killed)


# --- reading lines with a bound ----------------------------------------------------------


class LineReader:
    """Lines from a pipe, each read bounded by a deadline (the supervisor may hang)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._poller = select.poll()
        self._poller.register(fd, select.POLLIN)
        self._lines: list[bytes] = []
        self._carry = b""
        self.eof = False

    def readline(self, deadline: float) -> bytes | None:
        """The next line without its newline; None at EOF or when the deadline passes."""
        while not self._lines:
            if self.eof:
                return None
            remaining = deadline - time.perf_counter()
            if remaining <= 0 or not self._poller.poll(remaining * 1000):
                return None
            chunk = os.read(self.fd, 65536)
            if not chunk:
                self.eof = True
                if self._carry:
                    self._lines.append(self._carry)
                continue
            parts = (self._carry + chunk).split(b"\n")
            self._carry = parts.pop()
            self._lines.extend(parts)
        return self._lines.pop(0)


def line_content(line: bytes) -> bytes:
    """The process's own text in a supervisor's `time name | text` line."""
    bar = line.find(b"| ")
    return line[bar + 2 :] if bar >= 0 else line


def read_pids(reader: LineReader, count: int, deadline: float) -> list[int]:
    """Read lines until `count` of them are bare pids (processes echo `$$`)."""
    pids: list[int] = []
    while len(pids) < count:
        line = reader.readline(deadline)
        if line is None:
            break
        text = line_content(line).strip()
        if text.isdigit():
            pids.append(int(text))
    return pids


# --- the supervisors under test ----------------------------------------------------------


class SupervisorFailed(Exception):
    """The supervisor did not do what the workload needs; the message says why."""


def find_program(name: str) -> str | None:
    """The real script next to our interpreter first: pyenv shims add ~50 ms of bash."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


REPO = Path(__file__).resolve().parent.parent


@dataclass
class Supervisor:
    name: str
    program: list[str] | None  # the argv prefix that runs it; None: not installed
    build: Callable[[list[str], Path, Path, float | None, bool], list[str]]
    missing_reason: str = ""
    fixed_grace: float | None = None  # honcho cannot change its 5 s
    json_capable: bool = False
    env: dict[str, str] = field(default_factory=dict)

    def argv(
        self, procfile: Path, app_root: Path, grace: float | None = None, json: bool = False
    ) -> list[str]:
        assert self.program is not None
        return self.build(self.program, procfile, app_root, grace, json)


def _honcho(
    prog: list[str], procfile: Path, root: Path, grace: float | None, json: bool
) -> list[str]:
    return [*prog, "--no-colour", "-f", str(procfile), "-d", str(root), "start"]


def _foreman(
    prog: list[str], procfile: Path, root: Path, grace: float | None, json: bool
) -> list[str]:
    argv = [*prog, "start", "-f", str(procfile), "-d", str(root), "--no-color"]
    return [*argv, "-t", str(int(grace))] if grace is not None else argv


def _keelrun(
    prog: list[str], procfile: Path, root: Path, grace: float | None, json: bool
) -> list[str]:
    argv = [*prog, "start", "-f", str(procfile), "-d", str(root), "--no-color"]
    if grace is not None:
        argv += ["-t", f"{grace:g}"]
    if json:
        argv += ["--log-format", "json"]
    return argv


def _compile_keelrun() -> None:
    """Byte-compile this checkout, as `pip install .` does for a user.

    An editable install run with PYTHONDONTWRITEBYTECODE set (as some
    sandboxes do) would otherwise compile every module on every start, and
    the start-up figures would measure the compiler, not keelrun.
    """
    import compileall

    compileall.compile_dir(str(REPO / "keelrun"), quiet=1)


def _keelrun_supervisor() -> Supervisor:
    _compile_keelrun()
    found = find_program("keelrun")
    if found is not None:
        return Supervisor("keelrun", [found], _keelrun, json_capable=True)
    # Not installed: this checkout, run as a module.
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return Supervisor("keelrun", [sys.executable, "-m", "keelrun"], _keelrun, True, env=env)


def supervisors(names: list[str]) -> list[Supervisor]:
    def program(name: str) -> list[str] | None:
        found = find_program(name)
        return [found] if found else None

    table = {
        "honcho": Supervisor("honcho", program("honcho"), _honcho, fixed_grace=5.0),
        "foreman": Supervisor("foreman", program("foreman"), _foreman),
        "keelrun": _keelrun_supervisor(),
    }
    reasons = {
        "foreman": "not installed (apt-get install -y ruby-foreman)",
        "honcho": "not installed (pip install honcho)",
    }
    chosen = []
    for name in names:
        sup = table[name]
        if sup.program is None:
            sup.missing_reason = reasons[name]
        chosen.append(sup)
    return chosen


# --- one run of one supervisor -----------------------------------------------------------


@dataclass
class App:
    """A throwaway app root with a Procfile."""

    root: Path
    procfile: Path

    @classmethod
    @contextlib.contextmanager
    def create(cls, entries: dict[str, str]) -> Iterator[App]:
        with tempfile.TemporaryDirectory(prefix="keelrun-bench-") as tmp:
            root = Path(tmp)
            procfile = root / "Procfile"
            procfile.write_text("".join(f"{name}: {cmd}\n" for name, cmd in entries.items()))
            yield cls(root, procfile)


@dataclass
class Launched:
    """A running supervisor (or baseline) whose whole tree is cleaned up on exit."""

    token: str
    proc: subprocess.Popen[bytes] | None = None
    stderr_path: Path | None = None
    extra: list[subprocess.Popen[bytes]] = field(default_factory=list)
    started: float = 0.0

    @property
    def stdout_fd(self) -> int:
        assert self.proc is not None and self.proc.stdout is not None
        return self.proc.stdout.fileno()

    def spawn_raw(self, argv: list[str], stdout: int, env: dict[str, str]) -> None:
        """A child of the baseline itself (no supervisor), writing to ``stdout``;
        cleaned up with the run."""
        self.extra.append(
            subprocess.Popen(
                argv, stdout=stdout, stdin=subprocess.DEVNULL, env=env, start_new_session=True
            )
        )

    def failure(self, what: str) -> SupervisorFailed:
        """An exception naming what went wrong, with the supervisor's last stderr line."""
        detail = ""
        if self.proc is not None and self.proc.poll() is not None:
            detail = f"; exited with status {self.proc.returncode}"
        if self.stderr_path is not None and self.stderr_path.exists():
            lines = self.stderr_path.read_text(errors="replace").strip().splitlines()
            if lines:
                detail += f"; stderr: {lines[-1][:160]}"
        return SupervisorFailed(what + detail)


def set_pipe_size(fd: int, size: int) -> None:
    fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)


def bench_env(token: str) -> dict[str, str]:
    env = dict(os.environ)
    env[TOKEN_VAR] = token
    env["NO_COLOR"] = "1"
    env.pop("PYTHONDEVMODE", None)
    return env


@contextlib.contextmanager
def launch(
    argv: list[str], cwd: Path, pipe_size: int | None = None, env: dict[str, str] | None = None
) -> Iterator[Launched]:
    """Start a supervisor in a session of its own, stdout to a pipe we read."""
    run = Launched(token=uuid.uuid4().hex)
    with tempfile.NamedTemporaryFile(prefix="keelrun-bench-err-", delete=False) as err:
        run.stderr_path = Path(err.name)
    try:
        with open(run.stderr_path, "wb") as err_file:
            run.started = time.perf_counter()
            run.proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env={**bench_env(run.token), **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err_file,
                start_new_session=True,
            )
        if pipe_size:
            set_pipe_size(run.stdout_fd, pipe_size)
        yield run
    finally:
        cleanup(run)
        run.stderr_path.unlink(missing_ok=True)


@contextlib.contextmanager
def supervise(
    sup: Supervisor,
    entries: dict[str, str],
    grace: float | None = None,
    json: bool = False,
    pipe_size: int | None = None,
) -> Iterator[Launched]:
    """Run `sup` on a throwaway app with these Procfile entries."""
    with App.create(entries) as app:
        argv = sup.argv(app.procfile, app.root, grace=grace, json=json)
        with launch(argv, app.root, pipe_size, sup.env) as run:
            yield run


@contextlib.contextmanager
def tracked() -> Iterator[Launched]:
    """A token for processes the benchmark spawns itself (the baselines), cleaned up alike."""
    run = Launched(token=uuid.uuid4().hex)
    try:
        yield run
    finally:
        cleanup(run)


def cleanup(run: Launched) -> None:
    procs = [p for p in [run.proc, *run.extra] if p is not None]
    for proc in procs:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    kill_marked(run.token)
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()
    reap_orphans()
