"""sd_notify from the instances: a real gunicorn, stand-ins notifying from deep in their tree,
outsiders, forgers and malformed datagrams against keelrun's receiver."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support.loopkit import Kit
from support.ports import free_port
from support.procs import poll_until, tree

from keelrun.supervisor.httpprobe import HttpProbe
from keelrun.supervisor.notify import (
    NotifyMessage,
    NotifyReceiver,
    instance_env,
    owning_root,
    parse_message,
    sender_pid,
    with_watchdog_pid,
)
from keelrun.supervisor.probeapi import ProbeResult
from keelrun.supervisor.shellcmd import exec_form

pytestmark = pytest.mark.timeout(40)
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture
def receiver(kit: Kit):
    r = NotifyReceiver(kit.loop)
    yield r
    r.close()


def watch(receiver: NotifyReceiver, pid: int) -> list[NotifyMessage]:
    got: list[NotifyMessage] = []
    receiver.watch(pid, got.append)
    return got


def notifier(kit: Kit, receiver: NotifyReceiver, *args: str):
    return kit.python("notifier.py", *args, env=kit.env(NOTIFY_SOCKET=receiver.address))


# -- a real gunicorn, no app code ------------------------------------------

WSGI_APP = """
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""


def test_gunicorn_becomes_ready_with_no_app_code(
    kit: Kit, receiver: NotifyReceiver, tmp_path: Path
) -> None:
    pytest.importorskip("gunicorn", reason="gunicorn is in the test extra")
    (tmp_path / "app.py").write_text(WSGI_APP)
    port = free_port()
    argv = ["-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2", "app:app"]
    gunicorn = kit.spawn(
        [sys.executable, *argv], env=kit.env(NOTIFY_SOCKET=receiver.address), cwd=tmp_path
    )
    got = watch(receiver, gunicorn.pid)
    kit.run_until(lambda: any(m.ready for m in got), 20, "READY=1 from gunicorn")
    ready = next(m for m in got if m.ready)
    assert ready.status == "Gunicorn arbiter booted"
    assert not receiver.ignored
    # Ready means serving: the http probe agrees.
    results: list[ProbeResult] = []
    HttpProbe(kit.loop, port, "/", 5).start(results.append)
    kit.run_until(lambda: results, 10, "the http probe")
    assert results == [ProbeResult(True, "HTTP 200")]
    assert os.waitstatus_to_exitcode(kit.stop(gunicorn, 15)) == 0


# -- who may speak ----------------------------------------------------------


def test_the_instance_itself(kit: Kit, receiver: NotifyReceiver) -> None:
    inst = notifier(kit, receiver, "STATUS=booting", "READY=1\nSTATUS=serving")
    got = watch(receiver, inst.pid)
    kit.run_until(lambda: len(got) == 2, 10, "two messages")
    assert got == [NotifyMessage(status="booting"), NotifyMessage(ready=True, status="serving")]


def test_a_grandchild_is_accepted(kit: Kit, receiver: NotifyReceiver) -> None:
    inst = notifier(kit, receiver, "--depth", "2", "READY=1")
    got = watch(receiver, inst.pid)
    kit.run_until(lambda: got and inst.lines, 10, "READY=1 from the grandchild")
    assert got == [NotifyMessage(ready=True)]
    sender = int(inst.lines[0].split()[1])
    assert sender != inst.pid


def test_a_descendant_that_left_the_session_is_followed_up_the_tree(
    kit: Kit, receiver: NotifyReceiver
) -> None:
    inst = notifier(kit, receiver, "--depth", "2", "--setsid", "READY=1")
    got = watch(receiver, inst.pid)
    kit.run_until(lambda: got and inst.lines, 10, "READY=1 from the setsid grandchild")
    assert got == [NotifyMessage(ready=True)]
    os.kill(int(inst.lines[0].split()[1]), 9)  # not in the group the kit kills


def test_an_outsider_is_ignored(kit: Kit, receiver: NotifyReceiver) -> None:
    inst = kit.python("netserver.py", str(free_port()), "listen")  # watched, silent
    kit.run_until(lambda: inst.lines, 10, "the instance up")
    got = watch(receiver, inst.pid)
    outsider = notifier(kit, receiver, "READY=1")
    kit.run_until(lambda: outsider.lines, 10, "the outsider sent")
    kit.run_until(lambda: receiver.ignored, 10, "the outsider's datagram handled")
    assert got == []
    assert receiver.ignored == {"not from an instance": 1}


def test_an_instance_only_speaks_for_itself(kit: Kit, receiver: NotifyReceiver) -> None:
    a = notifier(kit, receiver, "--depth", "1", "STATUS=a")
    b = notifier(kit, receiver, "STATUS=b")
    got_a, got_b = watch(receiver, a.pid), watch(receiver, b.pid)
    kit.run_until(lambda: got_a and got_b, 10, "both messages")
    assert got_a == [NotifyMessage(status="a")] and got_b == [NotifyMessage(status="b")]


@pytest.mark.skipif(
    os.getuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv"
)
def test_forged_credentials_are_refused_by_the_kernel(kit: Kit, receiver: NotifyReceiver) -> None:
    python = next((p for p in ("/usr/bin/python3", "/bin/python3") if os.access(p, os.X_OK)), None)
    if python is None:
        pytest.skip("no python3 that uid 65534 may run")
    inst = kit.python("netserver.py", str(free_port()), "listen")
    kit.run_until(lambda: inst.lines, 10, "the instance up")
    got = watch(receiver, inst.pid)
    address = "\0" + receiver.address[1:]
    forge = textwrap.dedent(f"""
        import os, socket, struct
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        creds = struct.pack("iII", {inst.pid}, os.getuid(), os.getgid())
        try:
            s.sendmsg([b"READY=1"], [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, creds)],
                       0, {address!r})
            print("forged", flush=True)
        except PermissionError:
            print("refused", flush=True)
        s.sendto(b"READY=1", {address!r})
        print("plain", flush=True)
        import signal; signal.pause()
    """)
    forger = kit.spawn([*NOBODY, python, "-c", forge])
    kit.run_until(lambda: forger.saw("plain"), 10, "the forger done")
    kit.run_until(lambda: receiver.ignored, 10, "its plain datagram handled")
    assert forger.lines[0] == "refused"
    assert got == [] and receiver.ignored == {"not from an instance": 1}


# -- malformed datagrams ------------------------------------------------------


def test_malformed_datagrams_are_ignored_and_harmless(kit: Kit, receiver: NotifyReceiver) -> None:
    fds_before = len(os.listdir("/proc/self/fd"))
    inst = notifier(
        kit,
        receiver,
        "--fds",
        "STATUS=with fds",  # valid, but carries two descriptors: they must be closed
        r"\xff\xfeREADY=1",  # not UTF-8
        "READY",  # no "="
        "=1",  # no name
        r"READY=1\x00",  # NUL
        "x" * 5000,  # longer than 4096
        "READY=1\nSTATUS=" + "y" * 4080,  # 4096 exactly: accepted
        "STATUS=last\x1b[2J",
    )
    got = watch(receiver, inst.pid)
    kit.run_until(lambda: len(got) == 3, 10, "the valid datagrams")
    kit.run_for(0.2)
    assert got[0] == NotifyMessage(status="with fds")
    assert got[1].ready and got[1].status == "y" * 4080
    assert got[2] == NotifyMessage(status="last\\x1b[2J")  # escaped for the terminal
    assert receiver.ignored == {"malformed": 4, "too long": 1}
    assert len(os.listdir("/proc/self/fd")) <= fds_before + 2  # the child's stdout pipe, loop


def test_a_sender_that_exited_is_still_known_until_reaped(
    kit: Kit, receiver: NotifyReceiver
) -> None:
    # systemd-notify style: send and exit at once. Its parent has not reaped it,
    # so /proc still shows it (a zombie) under the instance.
    inst = notifier(kit, receiver, "--depth", "1", "--exit", "READY=1")
    got = watch(receiver, inst.pid)
    # The loop is not running: the datagram waits in the socket while the sender ends.
    zombies = poll_until(lambda: [p for p, st in tree(inst.pid).items() if st == "Z"], 10)
    assert zombies, "the sender exited"
    kit.run_until(lambda: got, 10, "READY=1 from the exited sender")
    assert got == [NotifyMessage(ready=True)]


# -- the pure parts -------------------------------------------------------------


def test_parse_message() -> None:
    assert parse_message(b"READY=1") == NotifyMessage(ready=True)
    assert parse_message(b"READY=1\nSTATUS=a=b\n") == NotifyMessage(ready=True, status="a=b")
    assert parse_message(b"RELOADING=1\nMONOTONIC_USEC=5") == NotifyMessage(reloading=True)
    assert parse_message(b"STOPPING=1") == NotifyMessage(stopping=True)
    assert parse_message(b"WATCHDOG=1") == NotifyMessage(watchdog=True)
    assert parse_message(b"WATCHDOG=trigger") == NotifyMessage(watchdog_trigger=True)
    assert parse_message(b"READY=0\nFDSTORE=1\nX_CUSTOM=ok") == NotifyMessage()
    assert parse_message("STATUS=café".encode()) == NotifyMessage(status="café")
    for bad in (
        b"",
        b"\n",
        b"READY",
        b"=1",
        b"READY=1\nbogus",
        b"\xc3",
        b"A=\0",
        b"S=" + b"x" * 4095,
    ):
        assert parse_message(bad) is None, bad


def test_sender_pid_closes_passed_descriptors() -> None:
    r, w = os.pipe()
    creds = (
        socket.SOL_SOCKET,
        socket.SCM_CREDENTIALS,
        (1234).to_bytes(4, sys.byteorder) + bytes(8),
    )
    rights = (
        socket.SOL_SOCKET,
        socket.SCM_RIGHTS,
        r.to_bytes(4, sys.byteorder) + w.to_bytes(4, sys.byteorder),
    )
    assert sender_pid([rights, creds]) == 1234
    for fd in (r, w):
        with pytest.raises(OSError):
            os.fstat(fd)
    assert sender_pid([]) is None
    assert sender_pid([(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, bytes(12))]) is None


def test_owning_root_outsider_and_self() -> None:
    me = os.getpid()
    assert owning_root(me, {me: None}, me=1) == me
    assert owning_root(me, {999_999_999: None}) is None
    assert owning_root(999_999_999, {me: None}) is None  # no such process


def test_instance_env_never_passes_keelruns_own_socket() -> None:
    env = {
        "PATH": "/bin",
        "NOTIFY_SOCKET": "/run/systemd/notify",
        "WATCHDOG_USEC": "1",
        "WATCHDOG_PID": "7",
    }
    assert instance_env(env, None) == {"PATH": "/bin"}
    assert instance_env(env, "@keelrun/1/ab") == {"PATH": "/bin", "NOTIFY_SOCKET": "@keelrun/1/ab"}
    assert instance_env(env, "@k", watchdog=2.5) == {
        "PATH": "/bin",
        "NOTIFY_SOCKET": "@k",
        "WATCHDOG_USEC": "2500000",
    }


PRINT_PIDS = "import os; print(os.environ['WATCHDOG_PID'], os.getpid())"


@pytest.mark.parametrize("command", ["python3 {script}", "cd / && A=1 python3 {script}"])
def test_watchdog_pid_is_the_instance_pid(command: str, tmp_path: Path) -> None:
    script = tmp_path / "pids.py"
    script.write_text(PRINT_PIDS)
    command = command.format(script=script)
    proc = subprocess.Popen(
        ["/bin/sh", "-c", with_watchdog_pid(exec_form(command))],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    out, _ = proc.communicate(timeout=10)
    wd_pid, app_pid = map(int, out.split())
    assert wd_pid == proc.pid  # the instance's pid, whatever the command
    if exec_form(command) != command:  # exec'd: the app is the instance's process
        assert app_pid == wd_pid
