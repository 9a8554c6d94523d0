"""sd_notify under a real `keelrun start`: a real gunicorn, a grandchild's READY=1, a
stranger's datagram, RELOADING/STOPPING/STATUS in `ps`, the watchdog, and keelrun
itself under a fake systemd (its NOTIFY_SOCKET, READY=1, STOPPING=1, WATCHDOG=1)."""

from __future__ import annotations

import shutil
import socket
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from conftest import make_app
from support import py
from support.ports import free_port
from support.procs import proc_environ, wait_until

pytestmark = pytest.mark.timeout(60)

NOTIFY = '[tool.keelrun.processes.web]\nready = "notify"\n'


def send_to(address: str, data: bytes) -> None:
    target = "\0" + address[1:] if address.startswith("@") else address
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(data, target)


def test_a_real_gunicorn_becomes_ready_through_notify_with_no_app_code(
    tmp_path: Path, runner
) -> None:
    pytest.importorskip("gunicorn", reason="gunicorn is in the test extra")
    config = NOTIFY + '[tool.keelrun.processes.worker]\ndepends_on = ["web"]\n'
    app = make_app(
        tmp_path / "app",
        f"web: {sys.executable} -m gunicorn --bind 127.0.0.1:$PORT --workers 2 wsgi:app\n"
        "worker: echo worker started; exec sleep 1000\n",
        pyproject=config,
    )
    (app / "wsgi.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'ok']\n"
    )
    k = runner.start(app, "--no-timestamp", "-p", str(free_port()))
    ready = k.wait_for_line(r"^keelrun\s+\| web\.1 is ready: it sent READY=1", 30)
    started = k.wait_for_line(r"^keelrun\s+\| started worker\.1", 10)
    assert k.lines.index(ready.string) < k.lines.index(started.string), "worker waited"
    web = k.ps()["web.1"]
    assert (web["state"], web["health"], web["status"]) == (
        "ready",
        None,
        "Gunicorn arbiter booted",
    )
    # The arbiter notified: the app is gunicorn itself, with keelrun's socket.
    env = proc_environ(web["pid"])
    assert env["NOTIFY_SOCKET"].startswith("@keelrun/") and "WATCHDOG_USEC" not in env
    assert "NOTIFY_SOCKET" not in proc_environ(k.ps()["worker.1"]["pid"])
    assert k.terminate() == 0


def test_a_grandchild_is_heard_a_stranger_is_not_and_ps_shows_what_the_app_says(
    tmp_path: Path, runner
) -> None:
    then = [
        "STATUS=poked",
        "READY=1\\nSTATUS=serving",
        "RELOADING=1\\nSTATUS=reloading config",
        "READY=1",
        "STOPPING=1\\nSTATUS=draining",
    ]
    args = " ".join(f"--then '{m}'" for m in then)
    app = make_app(
        tmp_path / "app",
        f"web: exec {py('notifier.py', '--depth', '2', args, 'STATUS=booting')}\n",
        pyproject=NOTIFY,
    )
    k = runner.start(app, "--no-timestamp")

    def web() -> dict:
        return k.ps()["web.1"]

    def poke(n: int) -> dict:
        assert k.client("signal", "USR1", "web").returncode == 0
        k.wait_for_line(rf"web\.1\s+\| then {n}$", 10)
        expected = then[n - 1].split("STATUS=")[-1] if "STATUS=" in then[n - 1] else None
        if expected is not None:
            return wait_until(lambda: (r := web())["status"] == expected and r, 10, expected)
        return web()

    wait_until(lambda: web()["status"] == "booting", 10, "STATUS=booting from the grandchild")
    sender = int(k.wait_for_line(r"web\.1\s+\| sent (\d+)", 10).group(1))
    assert sender != web()["pid"], "the sender is a grandchild of the instance"
    # A process outside the instance's tree (this test) claims READY=1 on its socket.
    address = proc_environ(web()["pid"])["NOTIFY_SOCKET"]
    send_to(address, b"READY=1\nSTATUS=stranger")
    # Datagrams are read in order: once the grandchild's next one is seen, so was it.
    row = poke(1)
    assert (row["state"], row["status"]) == ("starting", "poked"), "the stranger was ignored"
    row = poke(2)
    assert row["state"] == "ready"
    k.wait_for_line(r"^keelrun\s+\| web\.1 is ready: it sent READY=1$", 5)
    row = poke(3)
    assert (row["state"], row["status"]) == ("starting", "reloading config")
    poke(4)
    row = wait_until(lambda: (r := web())["state"] == "ready" and r, 10, "ready again")
    assert row["status"] == "reloading config"  # kept until the app says another
    row = poke(5)
    assert (row["state"], row["status"]) == ("stopping", "draining")
    assert k.client("ps").stdout.count("stopping") == 1
    assert k.terminate() == 0


def test_watchdog_silence_makes_the_instance_unhealthy_and_it_is_restarted(
    tmp_path: Path, keelrun
) -> None:
    config = NOTIFY + "watchdog = 1\n"
    app = make_app(
        tmp_path,
        f"web: exec {py('notifier.py', '--ping', '0.2', '3', 'READY=1')}\n",
        pyproject=config,
    )
    run = keelrun.start("start", "--log-format", "json", cwd=app)
    line = run.wait_for_match(r'"proc": "web.1".*"msg": "sent (\d+)"', 10)
    pid = int(line.group(1))
    env = proc_environ(pid)
    assert env["WATCHDOG_USEC"] == "1000000"
    assert env["WATCHDOG_PID"] == str(pid), "the app itself, as sd_watchdog_enabled wants"
    run.wait_for_line(r'"msg": "pinged"', 10)
    run.wait_for_line(r'"event": "process_unhealthy"', 10)
    restarting = run.wait_for_line(r'"event": "process_restarting"', 10)
    run.wait_for_line(r'"event": "process_started"', 10, start=restarting)
    unhealthy = run.events("process_unhealthy")[0]
    assert unhealthy["level"] == "error" and unhealthy["target"] == "web.1"
    assert "no WATCHDOG=1 for 1s" in unhealthy["msg"]
    pings = [r for r in run.records() if r.get("msg") == "pinged"]
    assert run.records().index(pings[0]) < run.records().index(unhealthy)
    run.send(15)
    assert run.wait_exit() == 0


# -- keelrun under systemd ----------------------------------------------------


class FakeSystemd:
    """A notify socket as systemd makes one for a Type=notify unit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.settimeout(15)
        self.got: list[tuple[int, str]] = []  # (sender pid, message)

    def receive(self, wanted: str) -> tuple[int, str]:
        """The next datagram that contains ``wanted`` (others are kept)."""
        while True:
            data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
            pid = int.from_bytes(anc[0][2][:4], sys.byteorder) if anc else 0
            self.got.append((pid, data.decode()))
            if wanted in data.decode():
                return self.got[-1]

    def close(self) -> None:
        self.sock.close()


def test_keelrun_under_systemd_says_ready_then_stopping_and_keeps_its_socket(
    tmp_path: Path, keelrun
) -> None:
    systemd = FakeSystemd(tmp_path / "notify.sock")
    config = (
        '[tool.keelrun.processes.web]\nready = "log:^up$"\n'
        '[tool.keelrun.processes.api]\nready = "notify"\n'
    )
    app = make_app(
        tmp_path / "app",
        "web: sleep 0.5; echo up; exec sleep 1000\n"
        f"api: exec {py('notifier.py', 'READY=1')}\n"
        'worker: echo "worker sees ${NOTIFY_SOCKET-no socket} ${WATCHDOG_USEC-no usec}"; '
        "exec sleep 1000\n",
        pyproject=config,
    )
    from support.runner import base_env

    env = base_env(NOTIFY_SOCKET=str(systemd.path), WATCHDOG_USEC="400000")
    try:
        run = keelrun.start("start", "--log-format", "json", cwd=app, env=env)
        pid, _ = systemd.receive("READY=1")
        received = time.time()
        assert pid == run.pid, "keelrun itself sends READY=1"
        for name in ("web.1", "api.1"):  # READY=1 only once every check passed
            run.wait_for_line(rf'"event": "process_ready".*"target": "{name}"', 10)
            event = next(r for r in run.events("process_ready") if r["target"] == name)
            stamp = datetime.fromisoformat(event["ts"].replace("Z", "+00:00")).timestamp()
            assert stamp <= received + 0.001
        systemd.receive("WATCHDOG=1")  # WATCHDOG_USEC was for keelrun: it pings
        records = run.records()
        worker = next(r["msg"] for r in records if r["proc"] == "worker.1")
        assert worker == "worker sees no socket no usec", "systemd's socket stays keelrun's"
        api_pid = next(r["pid"] for r in run.events("process_started") if r["target"] == "api.1")
        assert proc_environ(api_pid)["NOTIFY_SOCKET"].startswith("@keelrun/")
        run.send(15)
        pid, _ = systemd.receive("STOPPING=1")
        assert pid == run.pid
        assert run.wait_exit() == 0
        said = [m for _, m in systemd.got if not m.startswith("WATCHDOG")]
        assert [m.split("\n")[0] for m in said] == ["READY=1", "STOPPING=1"]
    finally:
        systemd.close()


SYSTEMD_NOTIFY = shutil.which("systemd-notify")


@pytest.mark.skipif(SYSTEMD_NOTIFY is None, reason="systemd-notify not installed (systemd)")
def test_a_shell_script_readies_with_systemd_notify(tmp_path: Path, runner) -> None:
    # systemd-notify is a short-lived child of the instance's shell: it waits until
    # keelrun has read its datagram (BARRIER=1), so its place in the tree is known.
    app = make_app(
        tmp_path / "app",
        "web: echo migrating; systemd-notify --ready --status='migrated, serving'; "
        "exec sleep 1000\n",
        pyproject=NOTIFY,
    )
    k = runner.start(app, "--no-timestamp")
    k.wait_for_line(r"^keelrun\s+\| web\.1 is ready: it sent READY=1$", 10)
    assert k.ps()["web.1"]["status"] == "migrated, serving"
    assert k.terminate() == 0
