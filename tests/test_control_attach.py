"""The `attach` request on the wire, against a real `keelrun start` with tty types: the
reply, the screen sent first, raw bytes both ways, and a client that misbehaves
(README "Control socket protocol")."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from support.attach import KEELRUN, Wire, pid_of, said, start_app
from support.runner import Keelrun, RunSet, base_env
from support.ttys import child

from keelrun.control.protocol import MAX_CONNECTIONS
from keelrun.supervisor.terminal import MAX_PENDING_INPUT

PROMPT = (
    "import os, sys\n"
    "for i in range(30): print(f'l{i}')\n"
    "sys.stdout.write('name? '); sys.stdout.flush()\n"
    "print('hello', sys.stdin.readline().strip())\n"
    "print('bytes', repr(sys.stdin.buffer.readline()))\n"
)


def _start(keelrun: RunSet[Keelrun], root: Path, procfile: str) -> Keelrun:
    return start_app(keelrun, root, procfile + "worker: sleep 30\n", "--tty", "web")


def test_reply_screen_keys_and_the_end(keelrun: RunSet[Keelrun], tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(PROMPT)
    run = _start(keelrun, tmp_path, f"web: {sys.executable} app.py\n")
    run.wait_for_line(r"web\.1 +\| l29$")
    wire = Wire(tmp_path, "web", rows=5)
    reply = wire.reply()
    assert reply == {
        "ok": True,
        "result": {"name": "web.1", "pid": pid_of(tmp_path, "web.1"), "detach": "ctrl-]"},
    }
    # The last rows - 1 lines, then the pending line without its newline.
    wire.until(b"name\\? $")
    assert wire.raw() == b"l26\r\nl27\r\nl28\r\nl29\r\nname? "
    wire.send({"in": "pat\r"})
    wire.until(b"hello pat\r\n")
    wire.send({"in": "\udcff\udcfe\r"})  # bytes that are not UTF-8, as surrogateescape
    assert wire.to_eof().endswith(b"bytes b'\\xff\\xfe\\n'\r\n\r\n[keelrun: web.1 exited]\r\n")
    run.wait_for_line(r"web\.1 +\| hello pat$")
    run.send(signal.SIGTERM)
    assert run.wait_exit() == 0


def test_a_bad_message_ends_the_attach_not_the_instance(
    keelrun: RunSet[Keelrun], tmp_path: Path
) -> None:
    run = _start(keelrun, tmp_path, f"web: {child('winch')}\n")
    for bad, why in [
        (b"not json\n", b'a message that is neither {"in": ...} nor {"resize": [rows, cols]}'),
        (b'{"resize": [0, 80]}\n', b"a message that is neither"),
        (b"x" * (64 * 1024 + 10), b"a message longer than 65536 bytes"),
    ]:
        wire = Wire(tmp_path)
        assert wire.reply()["ok"]
        wire.send(bad)
        assert why in wire.to_eof()
        wire.close()
        run.wait_for_line(r"keelrun +\| pid \d+ on /dev/pts/test detached from web\.1$")
    wire = Wire(tmp_path)  # the instance runs on, its terminal free again
    wire.send({"in": "still\r"})
    wire.until(b"got: still\r\n")
    wire.sock.shutdown(socket.SHUT_WR)  # the client's end of file detaches it
    assert wire.to_eof().endswith(b"got: still\r\n")
    run.wait_for_line(r"keelrun +\| pid \d+ on /dev/pts/test detached from web\.1$")
    run.send(signal.SIGTERM)
    assert run.wait_exit() == 0


def test_a_client_that_does_not_read_is_dropped_and_the_log_path_goes_on(
    keelrun: RunSet[Keelrun], tmp_path: Path
) -> None:
    n = 100_000  # 5 MB of output: more than a client may fall behind
    run = _start(keelrun, tmp_path, f"web: {child('flood', str(n), '--on-input')}\n")
    wire = Wire(tmp_path, after=b'{"in": "go\\r"}\n')  # and never read
    run.wait_for_line(r"keelrun +\| pid \d+ on \S+ detached from web\.1$", timeout=60)
    run.wait_for_line(r"keelrun +\| web\.1 \(pid \d+\) exited with status 0$", timeout=60)
    got = wire.to_eof()
    assert len(got) < n * 50  # cut off
    wire.close()
    expected = [f"line {i:07d} ".encode() + b"x" * 40 for i in range(n)]
    assert said(run, "web.1") == [b"go", *expected]
    run.send(signal.SIGTERM)
    assert run.wait_exit() == 0


def test_keystrokes_the_app_does_not_read_wait_without_blocking_keelrun(
    keelrun: RunSet[Keelrun], tmp_path: Path
) -> None:
    line = "k" * 99 + "\r"
    count = 16 * MAX_PENDING_INPUT // len(line)  # far more than keelrun may hold
    run = _start(keelrun, tmp_path, f"web: {child('sink', str(count * len(line)))}\n")
    run.wait_for_line(r"web\.1 +\| ready$")
    wire = Wire(tmp_path)
    assert wire.reply()["ok"]
    messages = (json.dumps({"in": line}) + "\n").encode() * count
    sender = threading.Thread(target=wire.sock.sendall, args=(messages,), daemon=True)
    sender.start()
    # keelrun answers others meanwhile: the keystrokes wait in the loop, not in a write...
    ps = subprocess.run(
        [*KEELRUN, "ps", "--json"], cwd=tmp_path, env=base_env(), capture_output=True, timeout=10
    )
    assert ps.returncode == 0 and b'"web.1"' in ps.stdout
    # ...and it stopped reading the client, which is left waiting to send the rest.
    sender.join(0.5)
    assert sender.is_alive(), (run.tail_text(), wire.to_eof())
    sig = subprocess.run(
        [*KEELRUN, "signal", "USR1", "web"], cwd=tmp_path, env=base_env(), timeout=10
    )
    assert sig.returncode == 0
    run.wait_for_line(rf"web\.1 +\| read {count * len(line)}$", timeout=30)
    sender.join(10)
    assert not sender.is_alive()
    wire.close()
    run.send(signal.SIGTERM)
    assert run.wait_exit() == 0


def test_an_attach_is_never_closed_to_make_room(keelrun: RunSet[Keelrun], tmp_path: Path) -> None:
    run = _start(keelrun, tmp_path, f"web: {child('winch')}\n")
    wire = Wire(tmp_path)
    assert wire.reply()["ok"]
    idle = []
    for _ in range(MAX_CONNECTIONS + 8):  # each new one evicts the oldest idle one
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(tmp_path / ".keelrun.sock"))
        idle.append(s)
    r = subprocess.run(
        [*KEELRUN, "ps"], cwd=tmp_path, env=base_env(), capture_output=True, timeout=20
    )
    assert r.returncode == 0, r.stderr
    wire.send({"in": "alive\r"})
    wire.until(b"got: alive\r\n")
    for s in idle:
        s.close()
    wire.close()
    run.send(signal.SIGTERM)
    assert run.wait_exit() == 0
