"""tty instances under a real `keelrun start`, and real `keelrun attach` clients in ptys.

`start_app` writes a Procfile and starts `python -m keelrun start ARGS` under the
`keelrun` fixture (which fails a test that leaves a process behind). `Attach` is
one `python -m keelrun attach ...` in a pty of its own driven by pexpect, inside
a shell that prints `stty -a` before and after, so that a test can check the
terminal was restored; it carries the run's marker, so the leak check covers it.
"""

from __future__ import annotations

import json
import re
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pexpect
import psutil

from support.runner import MARK_VAR, Keelrun, RunSet, base_env

KEELRUN = [sys.executable, "-m", "keelrun"]
# The client's own terminal, printed before and after by the shell that runs it.
WRAP = 'stty -a; echo "<<before"; {run}; stty -a; echo "<<after"'
PLAIN = '"$@"; echo "rc=$?"'


def start_app(
    keelrun: RunSet[Keelrun], root: Path, procfile: str, *args: str, **kw: Any
) -> Keelrun:
    """`keelrun start ARGS` in ``root`` with that Procfile, once it has started everything."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "Procfile").write_text(procfile)
    run = keelrun.start("start", *args, cwd=root, **kw)
    run.wait_for_line(r"keelrun +\| started ")
    return run


def said(run: Keelrun, name: str) -> list[bytes]:
    """The lines of instance ``name`` in keelrun's text output, without prefix."""
    rx = re.compile(rb"^(?:\S+ )?" + re.escape(name.encode()) + rb" +\| (.*)$", re.DOTALL)
    return [m.group(1) for line in list(run.lines) if (m := rx.match(line))]


class Attach:
    """`keelrun attach ARGS` in a pty of its own (``size`` rows x cols)."""

    def __init__(
        self,
        run: Keelrun,
        cwd: Path,
        *args: str,
        size: tuple[int, int] = (24, 80),
        wrap: str = PLAIN,
    ) -> None:
        self.p = pexpect.spawn(
            "/bin/sh",
            ["-c", WRAP.format(run=wrap), "sh", *KEELRUN, "attach", *args],
            cwd=str(cwd),
            env=base_env(**{MARK_VAR: run.marker_value}),
            dimensions=size,
            timeout=15,
        )
        self.p.expect("<<before")
        self.stty_before = _stty(self.p.before)
        self.pid = _child_of(self.p.pid)

    def expect(self, pattern: str | type[pexpect.EOF]) -> re.Match[bytes]:
        self.p.expect(pattern)
        return self.p.match

    def raw_mode(self) -> bool:
        import termios

        lflag = termios.tcgetattr(self.p.child_fd)[3]  # the slave's modes, read on the master
        return not lflag & (termios.ICANON | termios.ECHO | termios.ISIG)

    def end(self) -> int:
        """The client's exit status, once the shell has shown the terminal restored."""
        rc = int(self.expect(r"rc=(\d+)").group(1))
        self.p.expect("<<after")
        assert _stty(self.p.before) == self.stty_before
        self.p.expect(pexpect.EOF)
        self.p.close()
        return rc

    def close(self) -> None:
        if self.p.isalive():
            self.p.close(force=True)


def _child_of(shell: int, timeout: float = 10.0) -> int:
    """The pid of the shell's child: the client itself."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = psutil.Process(shell).children()
        if kids:
            return kids[0].pid
        time.sleep(0.01)
    raise AssertionError("the attach client did not start")


def _stty(text: bytes) -> str:
    """`stty -a` without the window size (attach may change it) and its wrapping."""
    out = text.decode(errors="replace")
    out = " ".join(out[out.find("speed") :].split())
    assert "icanon" in out, out
    return re.sub(r"rows \d+; columns \d+;", "", out)


class Wire:
    """An attach over the raw socket: the request, the reply, then raw bytes."""

    def __init__(self, root: Path, name: str = "web.1", *, rows: int = 24, after: bytes = b""):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(str(root / ".keelrun.sock"))
        args = {"name": name, "rows": rows, "cols": 80, "tty": "/dev/pts/test"}
        request = {"v": 1, "cmd": "attach", "args": args}
        self.sock.sendall((json.dumps(request) + "\n").encode() + after)  # one write
        self.received = bytearray()
        self.eof = False

    def send(self, msg: dict[str, Any] | bytes) -> None:
        self.sock.sendall(msg if isinstance(msg, bytes) else (json.dumps(msg) + "\n").encode())

    def until(self, pattern: bytes, timeout: float = 15.0) -> None:
        """Read until the bytes received so far match ``pattern`` (re.search)."""
        import select

        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.received, re.DOTALL):
            left = deadline - time.monotonic()
            assert left > 0 and not self.eof, f"no {pattern!r} in {bytes(self.received[-300:])!r}"
            if select.select([self.sock], [], [], left)[0]:
                data = self.sock.recv(1 << 20)
                self.eof = not data
                self.received += data

    def reply(self) -> dict[str, Any]:
        self.until(b"\n")
        return json.loads(bytes(self.received).split(b"\n", 1)[0])

    def raw(self) -> bytes:
        """What came after the reply line."""
        return bytes(self.received).split(b"\n", 1)[1]

    def to_eof(self, timeout: float = 15.0) -> bytes:
        import select

        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            assert left > 0, f"no EOF; got {bytes(self.received[-300:])!r}"
            if select.select([self.sock], [], [], left)[0]:
                try:
                    data = self.sock.recv(1 << 20)
                except ConnectionResetError:
                    data = b""
                self.eof = not data
                self.received += data
        return self.raw()

    def close(self) -> None:
        self.sock.close()


def pid_of(root: Path, name: str) -> int:
    """The pid of instance ``name``, from `keelrun ps --json`."""
    import subprocess

    r = subprocess.run(
        [*KEELRUN, "ps", "--json"], cwd=root, env=base_env(), capture_output=True, timeout=20
    )
    assert r.returncode == 0, r.stderr
    return next(row["pid"] for row in json.loads(r.stdout) if row["name"] == name)
