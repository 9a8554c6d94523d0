"""`keelrun attach` end to end: a real `keelrun start` with tty types, the real client
in a pty driven by pexpect (README "Terminals")."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.attach import KEELRUN, Attach, pid_of, said, start_app
from support.procs import alive, wait_gone
from support.runner import Keelrun, RunSet, base_env
from support.ttys import child


@pytest.fixture
def clients() -> Iterator[list[Attach]]:
    made: list[Attach] = []
    yield made
    for c in made:
        c.close()


def attach(run: Keelrun, root: Path, clients: list[Attach], *args: str, **kw: object) -> Attach:
    c = Attach(run, root, *(args or ("web.1",)), **kw)  # type: ignore[arg-type]
    clients.append(c)
    return c


def test_keys_in_output_out_resize_detach_and_attach_again(
    keelrun: RunSet[Keelrun], tmp_path: Path, clients: list[Attach]
) -> None:
    procfile = f"web: {child('winch')}\nidle: exec sleep 1000\n"
    run = start_app(keelrun, tmp_path, procfile, "--tty", "web")
    run.wait_for_line(r"web\.1 +\| size 24x80$")  # 80x24 until someone attaches
    c = attach(run, tmp_path, clients, size=(30, 100))
    c.expect(r"size 30x100\r\n")  # the app got the client's size and its SIGWINCH
    assert c.raw_mode()
    c.p.send("hello\r")
    c.expect(r"got: hello\r\n")
    c.p.setwinsize(40, 120)  # the client gets SIGWINCH from its terminal
    c.expect(r"size 40x120\r\n")
    # While attached, the lines still reach keelrun's output and `keelrun logs`.
    at = run.wait_for_line(rf"keelrun +\| pid {c.pid} on /dev/pts/\d+ attached to web\.1$")
    run.wait_for_line(r"web\.1 +\| got: hello$", start=at)
    run.wait_for_line(r"web\.1 +\| size 40x120$", start=at)
    logs = subprocess.run(
        [*KEELRUN, "logs", "web.1"], cwd=tmp_path, env=base_env(), capture_output=True, timeout=20
    )
    assert re.search(rb"web\.1 +\| got: hello\n", logs.stdout), logs.stdout
    c.p.sendcontrol("]")
    c.expect(r"\[detached from web\.1\]")
    assert c.end() == 0
    run.wait_for_line(rf"keelrun +\| pid {c.pid} on /dev/pts/\d+ detached from web\.1$", start=at)
    # The instance runs on; a new attach shows its last lines and works.
    again = attach(run, tmp_path, clients, size=(30, 100))
    again.expect(r"got: hello\r\n")
    again.p.send("quit\r")
    again.expect(r"\[keelrun: web\.1 exited\]")
    again.expect(r"keelrun: web\.1: the session has ended; keelrun runs on")
    assert again.end() == 1
    run.send(signal.SIGTERM)
    assert run.wait_exit() == 0


def test_pdb_breakpoint(keelrun: RunSet[Keelrun], tmp_path: Path, clients: list[Attach]) -> None:
    """A breakpoint() in the app: attach gets the (Pdb) prompt, `c` continues."""
    app = tmp_path / "view.py"
    app.write_text(
        "import sys\nx = 41\nbreakpoint()\nprint('continued', x + 1)\nsys.stdin.readline()\n"
    )
    (tmp_path / "pyproject.toml").write_text("[tool.keelrun.processes.web]\ntty = true\n")
    run = start_app(keelrun, tmp_path, f"web: {sys.executable} {app}\n")
    run.wait_for_line(r"web\.1 +\| -> print\('continued', x \+ 1\)$")
    c = attach(run, tmp_path, clients, "web")  # a type with one instance
    c.expect(r"\(Pdb\) ")  # the pending line, shown on attach
    c.p.send("p 1+1\r")
    c.expect(r"\r\n2\r\n")
    c.p.send("c\r")
    c.expect(r"continued 42\r\n")
    c.p.sendcontrol("]")
    assert c.end() == 0
    run.wait_for_line(r"web\.1 +\| \(Pdb\) p 1\+1$")
    run.wait_for_line(r"web\.1 +\| 2$")
    run.wait_for_line(r"web\.1 +\| continued 42$")
    run.send(signal.SIGTERM)
    assert run.wait_exit() == 0


def test_ctrl_c_goes_to_the_apps_foreground_group(
    keelrun: RunSet[Keelrun], tmp_path: Path, clients: list[Attach]
) -> None:
    run = start_app(keelrun, tmp_path, f"web: {child('sigint')}\n", "--tty", "web")
    run.wait_for_line(r"web\.1 +\| ready \d+$")
    run.wait_for_line(r"web\.1 +\| ready \d+$", start=run.wait_for_line(r"ready") + 1)
    c = attach(run, tmp_path, clients)
    c.expect(r"ready \d+\r\n")
    c.p.sendcontrol("c")  # raw mode: the byte reaches the pty, whose line discipline signals
    c.expect(r"\[keelrun: web\.1 exited\]")
    assert c.end() == 1
    lines = b"\n".join(said(run, "web.1"))
    ready = set(re.findall(rb"ready (\d+)", lines))
    assert set(re.findall(rb"SIGINT (\d+)", lines)) == ready, lines  # the app and its child
    assert len(ready) == 2
    assert run.wait_exit() == 0  # keelrun got no SIGINT: it ended with its formation
    run.wait_for_line(r"keelrun +\| every process has ended$")


def test_a_second_attach_is_refused_naming_the_first(
    keelrun: RunSet[Keelrun], tmp_path: Path, clients: list[Attach]
) -> None:
    run = start_app(keelrun, tmp_path, f"web: {child('winch')}\n", "--tty", "web")
    first = attach(run, tmp_path, clients)
    first.expect(r"size 24x80\r\n")
    second = attach(run, tmp_path, clients)
    m = second.expect(r"keelrun: web\.1 is already attached by pid (\d+) on (\S+) since")
    assert int(m.group(1)) == first.pid
    assert m.group(2).decode() == os.readlink(f"/proc/{first.pid}/fd/0")
    assert second.end() == 1
    first.p.send("still\r")
    first.expect(r"got: still\r\n")
    first.p.sendcontrol("]")
    assert first.end() == 0
    run.send(signal.SIGTERM)
    assert run.wait_exit() == 0


def test_a_killed_client_leaves_the_instance_running(
    keelrun: RunSet[Keelrun], tmp_path: Path, clients: list[Attach]
) -> None:
    run = start_app(keelrun, tmp_path, f"web: {child('winch')}\n", "--tty", "web")
    first = attach(run, tmp_path, clients)
    first.expect(r"size 24x80\r\n")
    os.kill(first.pid, signal.SIGKILL)  # nothing can restore that terminal: not checked
    assert not wait_gone([first.pid], 10)
    run.wait_for_line(rf"keelrun +\| pid {first.pid} on \S+ detached from web\.1$")
    second = attach(run, tmp_path, clients)
    second.p.send("still there\r")
    second.expect(r"got: still there\r\n")
    second.p.sendcontrol("]")
    assert second.end() == 0
    run.send(signal.SIGTERM)
    assert run.wait_exit() == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT])
def test_a_signal_to_the_client_restores_the_terminal(
    keelrun: RunSet[Keelrun], tmp_path: Path, clients: list[Attach], sig: signal.Signals
) -> None:
    run = start_app(keelrun, tmp_path, f"web: {child('winch')}\n", "--tty", "web")
    c = attach(run, tmp_path, clients)
    c.expect(r"size 24x80\r\n")
    assert c.raw_mode()
    os.kill(c.pid, sig)
    c.expect(rf"\[detached from web\.1: {sig.name}\]")
    assert c.end() == 128 + sig
    run.wait_for_line(r"keelrun +\| pid \d+ on \S+ detached from web\.1$")
    assert alive(run.pid)
    run.send(signal.SIGTERM)
    assert run.wait_exit() == 0


def test_keelrun_gone_and_a_failing_stdout_restore_the_terminal(
    keelrun: RunSet[Keelrun], tmp_path: Path, clients: list[Attach]
) -> None:
    # slow keeps keelrun stopping (and answering) for a while after web.1 is gone.
    procfile = f"web: {child('winch')}\nslow: trap '' TERM; exec sleep 1000\n"
    run = start_app(keelrun, tmp_path, procfile, "--tty", "web", "-t", "3")
    run.wait_for_line(r"web\.1 +\| size 24x80$")  # history to write on attach
    # Writing the instance's output fails (stdout is /dev/full) once in raw mode.
    full = attach(run, tmp_path, clients, wrap='"$@" >/dev/full; echo "rc=$?"')
    full.expect(r"keelrun: stdout: No space left on device")
    assert full.end() == 1
    run.wait_for_line(r"keelrun +\| pid \d+ on \S+ detached from web\.1$")
    c = attach(run, tmp_path, clients)
    c.expect(r"size 24x80\r\n")
    run.send(signal.SIGTERM)
    c.expect(r"keelrun: web\.1: keelrun closed the connection")
    assert c.end() == 1
    assert run.wait_exit() == 0


def test_what_cannot_be_attached(
    keelrun: RunSet[Keelrun], tmp_path: Path, clients: list[Attach]
) -> None:
    procfile = f"web: {child('winch')}\nworker: {child('winch')}\nclock: {child('winch')}\n"
    run = start_app(keelrun, tmp_path, procfile, "--tty", "web,clock", "-m", "web=2")
    cases = [
        ("nope.1", 2, r'keelrun: unknown process or type "nope\.1"'),
        ("worker", 2, r"keelrun: worker\.1 does not run on a terminal: set tty = true for"),
        ("web", 2, r'keelrun: "web" has 2 instances: attach to one of web\.1, web\.2'),
    ]
    for name, status, message in cases:
        c = attach(run, tmp_path, clients, name)
        c.expect(message)
        assert c.end() == status, name
    stop = subprocess.run(
        [*KEELRUN, "stop", "clock"], cwd=tmp_path, env=base_env(), capture_output=True, timeout=20
    )
    assert stop.returncode == 0, stop.stderr
    run.wait_for_line(r"keelrun +\| clock\.1 \(pid \d+\) .*")
    c = attach(run, tmp_path, clients, "clock.1")
    c.expect(r"keelrun: clock\.1 is not running \(stopped\)")
    assert c.end() == 1
    assert pid_of(tmp_path, "web.2") is not None
    run.send(signal.SIGTERM)
    assert run.wait_exit() == 0


def test_stdin_not_a_terminal_is_an_input_error(tmp_path: Path) -> None:
    r = subprocess.run(
        [*KEELRUN, "attach", "web.1"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=base_env(),
        timeout=30,
    )
    assert (r.returncode, r.stderr) == (2, "keelrun: keelrun attach: stdin is not a terminal\n")


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


class _NoRun:
    marker_value = ""


@pytest.mark.skipif(os.getuid() != 0, reason="setpriv to another uid needs root")
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is missing")
def test_a_server_of_another_uid_gets_nothing(tmp_path: Path, clients: list[Attach]) -> None:
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
            c = attach(_NoRun(), tmp_path, clients, "--socket", str(path), "web.1")  # type: ignore[arg-type]
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
    tmp_path: Path, clients: list[Attach]
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
        c = attach(_NoRun(), tmp_path, clients, "--socket", str(path), "web.1")  # type: ignore[arg-type]
        c.expect(rf"keelrun: keelrun on {re.escape(str(path))} sent a malformed reply")
        assert c.end() == 1
        server.join(10)
        assert b'"cmd": "attach"' in got[0]
    finally:
        listener.close()
