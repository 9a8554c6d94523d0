"""`keelrun attach` end to end: the real client in a pty driven by pexpect, against
tests/support/ttyserver.py (keelrun's loop, log path, terminal.py and attach.py
behind a real Unix socket), with real tty children."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import termios
import threading
from pathlib import Path
from typing import Any

import pexpect
import pytest
from support.procs import alive, wait_gone
from support.runner import CHILDREN, MARK_VAR, Keelrun, RunSet, base_env
from support.ttys import Server, child

ATTACH = [sys.executable, str(CHILDREN / "attach_cli.py")]
# The client's own terminal, printed before and after by the shell that runs it.
WRAP = 'stty -a; echo "<<before"; {run}; stty -a; echo "<<after"'
PLAIN = '"$@"; echo "rc=$?"'


class Client:
    """One `keelrun attach` in a pty of its own, inside a shell that shows `stty -a`."""

    def __init__(
        self,
        sock: Path,
        marker: str,
        name: str = "web.1",
        size: tuple[int, int] = (24, 80),
        run: str = PLAIN,
    ) -> None:
        self.p = pexpect.spawn(
            "/bin/sh",
            ["-c", WRAP.format(run=run), "sh", *ATTACH, str(sock), name],
            env=base_env(**{MARK_VAR: marker}),
            dimensions=size,
            timeout=15,
        )
        self.p.expect("<<before")
        self.stty_before = _stty(self.p.before)
        self.p.expect(r"client pid (\d+)")
        self.pid = int(self.p.match.group(1))

    def expect(self, pattern: str) -> re.Match[bytes]:
        self.p.expect(pattern)
        return self.p.match

    def raw_mode(self) -> bool:
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


def attach(server: Server, clients: list[Client], **kw: Any) -> Client:
    """A client in a pty of its own; it carries the run's marker (leak check)."""
    c = Client(server.sock, server.run.marker_value, **kw)
    clients.append(c)
    return c


def _stty(text: bytes) -> str:
    """`stty -a` without the window size (attach may change it) and its wrapping."""
    out = text.decode(errors="replace")
    out = " ".join(out[out.find("speed") :].split())
    assert "icanon" in out, out
    return re.sub(r"rows \d+; columns \d+;", "", out)


@pytest.fixture
def clients():  # type: ignore[no-untyped-def]
    made: list[Client] = []
    yield made
    for c in made:
        if c.p.isalive():
            c.p.close(force=True)


def test_keys_in_output_out_resize_and_detach(
    keelrun: RunSet[Keelrun], tmp_path: Path, clients: list[Client]
) -> None:
    server = Server(keelrun, tmp_path, **{"web.1": child("winch")})
    server.line(r"^web\.1 +\| size 24x80$")
    c = attach(server, clients, size=(30, 100))
    c.expect(r"size 30x100\r\n")  # the app got the client's size and its SIGWINCH
    assert c.raw_mode()
    c.p.send("hello\r")
    c.expect(r"got: hello\r\n")
    c.p.setwinsize(40, 120)  # the client gets SIGWINCH from its terminal
    c.expect(r"size 40x120\r\n")
    # While attached, the lines still reach keelrun's output.
    at = server.line(r"^keelrun +\| attached web\.1$")
    server.line(r"^web\.1 +\| got: hello$", start=at)
    server.line(r"^web\.1 +\| size 40x120$", start=at)
    c.p.sendcontrol("]")
    c.expect(r"\[detached from web\.1\]")
    assert c.end() == 0
    server.line(r"^keelrun +\| detached web\.1$", start=at)
    # The instance runs on; a new attach shows its last lines and still works.
    again = attach(server, clients, size=(30, 100))
    again.expect(r"got: hello\r\n")
    again.p.send("quit\r")
    again.expect(r"\[keelrun: web\.1 exited\]")
    again.expect(r"keelrun: web\.1: keelrun closed the connection")
    assert again.end() == 1
    server.line(r"^keelrun +\| exited web\.1 status 0$")
    assert server.run.wait_exit() == 0


def test_pdb_breakpoint(keelrun: RunSet[Keelrun], tmp_path: Path, clients: list[Client]) -> None:
    app = tmp_path / "view.py"
    app.write_text(
        "import sys\nx = 41\nbreakpoint()\nprint('continued', x + 1)\nsys.stdin.readline()\n"
    )
    server = Server(keelrun, tmp_path, **{"web.1": f"{sys.executable} {app}"})
    server.line(r"^web\.1 +\| -> print\('continued', x \+ 1\)$")
    c = attach(server, clients)
    c.expect(r"\(Pdb\) ")
    c.p.send("p 1+1\r")
    c.expect(r"\r\n2\r\n")
    c.p.send("c\r")
    c.expect(r"continued 42\r\n")
    c.p.sendcontrol("]")
    assert c.end() == 0
    server.line(r"^web\.1 +\| \(Pdb\) p 1\+1$")
    server.line(r"^web\.1 +\| 2$")
    server.line(r"^web\.1 +\| continued 42$")
    server.stop()


def test_the_pending_prompt_is_shown_on_attach(
    keelrun: RunSet[Keelrun], tmp_path: Path, clients: list[Client]
) -> None:
    server = Server(keelrun, tmp_path, **{"web.1": child("prompt")})
    server.line(r"^web\.1 +\| ask$")  # read together with the prompt (one write)
    c = attach(server, clients)
    c.expect(r"ask\r\nname\? ")
    c.p.send("pat\r")
    c.expect(r"hello pat\r\n")
    c.expect(r"\[keelrun: web\.1 exited\]")
    assert c.end() == 1
    assert server.run.wait_exit() == 0


def test_a_second_attach_is_refused_naming_the_first(
    keelrun: RunSet[Keelrun], tmp_path: Path, clients: list[Client]
) -> None:
    server = Server(keelrun, tmp_path, **{"web.1": child("winch")})
    first = attach(server, clients)
    first.expect(r"size 24x80\r\n")
    second = attach(server, clients)
    m = second.expect(r"keelrun: web\.1 is already attached by pid (\d+) on (\S+) since")
    assert int(m.group(1)) == first.pid
    assert m.group(2).decode() == os.readlink(f"/proc/{first.pid}/fd/0")
    assert second.end() == 1
    first.p.sendcontrol("]")
    assert first.end() == 0
    server.stop()


def test_a_killed_client_leaves_the_instance_running(
    keelrun: RunSet[Keelrun], tmp_path: Path, clients: list[Client]
) -> None:
    server = Server(keelrun, tmp_path, **{"web.1": child("winch")})
    first = attach(server, clients)
    first.expect(r"size 24x80\r\n")
    os.kill(first.pid, signal.SIGKILL)  # nothing can restore that terminal: not checked
    assert not wait_gone([first.pid], 10)
    server.line(r"^keelrun +\| detached web\.1$")
    second = attach(server, clients)
    second.p.send("still there\r")
    second.expect(r"got: still there\r\n")
    second.p.sendcontrol("]")
    assert second.end() == 0
    server.stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT])
def test_a_signal_to_the_client_restores_the_terminal(
    keelrun: RunSet[Keelrun], tmp_path: Path, clients: list[Client], sig: signal.Signals
) -> None:
    import os

    server = Server(keelrun, tmp_path, **{"web.1": child("winch")})
    c = attach(server, clients)
    c.expect(r"size 24x80\r\n")
    assert c.raw_mode()
    os.kill(c.pid, sig)
    c.expect(rf"\[detached from web\.1: {sig.name}\]")
    assert c.end() == 128 + sig
    assert alive(server.run.pid)
    server.line(r"^keelrun +\| detached web\.1$")
    server.stop()


def test_keelrun_gone_restores_the_terminal(
    keelrun: RunSet[Keelrun], tmp_path: Path, clients: list[Client]
) -> None:
    server = Server(keelrun, tmp_path, **{"web.1": child("winch")})
    c = attach(server, clients)
    c.expect(r"size 24x80\r\n")
    server.stop()
    c.expect(r"keelrun: web\.1: keelrun closed the connection")
    assert c.end() == 1


def test_an_exception_restores_the_terminal(
    keelrun: RunSet[Keelrun], tmp_path: Path, clients: list[Client]
) -> None:
    """Writing the instance's output fails (stdout is /dev/full) once in raw mode."""
    server = Server(keelrun, tmp_path, **{"web.1": child("winch")})
    server.line(r"^web\.1 +\| size 24x80$")  # history to write on attach
    c = attach(server, clients, run='"$@" >/dev/full; echo "rc=$?"')
    c.expect(r"keelrun: stdout: No space left on device")
    assert c.end() == 1
    server.line(r"^keelrun +\| detached web\.1$")
    server.stop()


def test_unknown_instance_is_an_input_error(
    keelrun: RunSet[Keelrun], tmp_path: Path, clients: list[Client]
) -> None:
    server = Server(keelrun, tmp_path, **{"web.1": child("winch")})
    c = attach(server, clients, name="nope.1")
    c.expect(r'keelrun: unknown process or type "nope\.1"')
    assert c.end() == 2
    server.stop()


def test_a_type_with_one_instance_may_be_named(
    keelrun: RunSet[Keelrun], tmp_path: Path, clients: list[Client]
) -> None:
    server = Server(keelrun, tmp_path, **{"web.1": child("winch"), "worker.1": child("winch")})
    c = attach(server, clients, name="worker")
    c.p.send("which\r")
    c.expect(r"got: which\r\n")
    server.line(r"^worker\.1 +\| got: which$")
    c.p.sendcontrol("]")
    assert c.end() == 0
    server.stop()


def test_stdin_not_a_terminal_is_an_input_error(tmp_path: Path) -> None:
    r = subprocess.run(
        [*ATTACH, str(tmp_path / "none.sock"), "web.1"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=base_env(),
        timeout=30,
    )
    assert r.returncode == 2
    assert r.stderr.splitlines()[-1] == "keelrun: keelrun attach: stdin is not a terminal"


NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
# A server of another user: counts the bytes a client sends before hanging up.
FOREIGN = (
    "import socket, sys\n"
    "s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1)\n"
    "print('listening', flush=True)\n"
    "c, _ = s.accept(); c.settimeout(20); n = 0\n"
    "while data := c.recv(65536): n += len(data)\n"
    "print('received', n, flush=True)\n"
)


@pytest.mark.skipif(os.getuid() != 0, reason="setpriv to another uid needs root")
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is missing")
def test_a_server_of_another_uid_gets_nothing(tmp_path: Path, clients: list[Client]) -> None:
    """No request, let alone a keystroke, goes to a socket another user serves."""
    python = next(p for p in ("/usr/bin/python3", "/usr/local/bin/python3") if os.path.exists(p))
    where = Path(tempfile.mkdtemp(prefix="keelrun-attach-uid-"))
    try:
        where.chmod(0o777)
        path = where / "planted.sock"
        foreign = subprocess.Popen(
            [*NOBODY, python, "-c", FOREIGN, str(path)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert foreign.stdout is not None
            assert foreign.stdout.readline() == "listening\n"
            c = Client(path, "")
            clients.append(c)
            c.expect(rf"keelrun: refusing {re.escape(str(path))}: it is served by uid 65534")
            assert c.end() == 1
            assert foreign.stdout.readline() == "received 0\n"
            assert foreign.wait(10) == 0
        finally:
            foreign.kill()
            foreign.wait()
    finally:
        shutil.rmtree(where, ignore_errors=True)


def test_a_malformed_reply_is_one_line_and_the_terminal_untouched(
    tmp_path: Path, clients: list[Client]
) -> None:
    path = tmp_path / "odd.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(1)
    got: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            got.append(conn.recv(65536))
            conn.sendall(b"<html>not json</html>\n")

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        c = Client(path, "")
        clients.append(c)
        c.expect(rf"keelrun: keelrun on {re.escape(str(path))} sent a malformed reply")
        assert c.end() == 1
        server.join(10)
        assert json.loads(got[0])["cmd"] == "attach"
    finally:
        listener.close()
