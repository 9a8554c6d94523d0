"""keelrun as a Type=notify service: what it sends to a socket standing in for systemd."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from pathlib import Path

import pytest

from keelrun.loop import Loop
from keelrun.supervisor.sdnotify import ServiceNotifier, formation_settled, send

pytestmark = pytest.mark.timeout(20)


class FakeSystemd:
    """A datagram socket with SO_PASSCRED, as systemd's notify socket is."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(address)
        self.sock.settimeout(5)

    def receive(self) -> tuple[str, int]:
        data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        ((_, _, creds),) = anc
        return data.decode(), int.from_bytes(creds[:4], "little")

    def pending(self) -> list[str]:
        out = []
        self.sock.setblocking(False)
        try:
            while True:
                out.append(self.sock.recv(4096).decode())
        except BlockingIOError:
            return out
        finally:
            self.sock.settimeout(5)


@pytest.fixture
def systemd(tmp_path: Path):
    s = FakeSystemd(str(tmp_path / "notify"))
    yield s, str(tmp_path / "notify")
    s.sock.close()


def test_ready_and_stopping_once_each_from_keelruns_pid(systemd) -> None:
    fake, path = systemd
    env = {"NOTIFY_SOCKET": path, "HOME": "/root"}
    notifier = ServiceNotifier.from_environ(env)
    assert notifier is not None and env == {"HOME": "/root"}
    notifier.ready("3 processes ready")
    notifier.ready()
    notifier.stopping()
    notifier.stopping()
    assert fake.receive() == ("READY=1\nSTATUS=3 processes ready", os.getpid())
    assert fake.receive() == ("STOPPING=1", os.getpid())
    assert fake.pending() == []
    notifier.close()


def test_abstract_address() -> None:
    name = f"keelrun-test/{secrets.token_hex(6)}"
    fake = FakeSystemd("\0" + name)
    try:
        notifier = ServiceNotifier.from_environ({"NOTIFY_SOCKET": "@" + name})
        assert notifier is not None
        notifier.ready()
        assert fake.receive() == ("READY=1", os.getpid())
    finally:
        fake.sock.close()


def test_watchdog_pings_at_half_the_interval(systemd) -> None:
    fake, path = systemd
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid())}
    notifier = ServiceNotifier.from_environ(env)
    assert notifier is not None and notifier.watchdog_usec == 200_000 and env == {}
    loop = Loop()
    notifier.start_watchdog(loop)
    loop.call_later(0.35, loop.stop)
    loop.run()
    pings = fake.pending()
    assert set(pings) == {"WATCHDOG=1"} and 3 <= len(pings) <= 4  # at 0, 0.1, 0.2, (0.3) s
    notifier.stopping()
    loop.call_later(0.25, loop.stop)
    loop.run()
    assert fake.pending() == ["STOPPING=1"]  # and no more pings
    notifier.close()
    loop.close()


def test_a_watchdog_meant_for_another_pid_is_not_ours(systemd) -> None:
    _, path = systemd
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"}
    notifier = ServiceNotifier.from_environ(env)
    assert notifier is not None and notifier.watchdog_usec is None and env == {}


@pytest.mark.parametrize("value", ["", "relative/path", "vsock:2:1234", "@"])
def test_unusable_socket_values_are_dropped_all_the_same(value: str) -> None:
    env = {"NOTIFY_SOCKET": value, "WATCHDOG_USEC": "5"}
    assert ServiceNotifier.from_environ(env) is None
    assert env == {}


def test_children_never_inherit_systemds_socket(monkeypatch, systemd) -> None:
    _, path = systemd
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    assert ServiceNotifier.from_environ(os.environ) is not None
    out = subprocess.run(["env"], capture_output=True, text=True, timeout=10).stdout
    assert "NOTIFY_SOCKET" not in out and "WATCHDOG_USEC" not in out and "PATH=" in out


def test_send_never_blocks_nor_raises(tmp_path: Path) -> None:
    assert send(str(tmp_path / "nobody-listens"), "READY=1") is False
    full = FakeSystemd(str(tmp_path / "full"))
    try:
        started = time.monotonic()
        results = [send(str(tmp_path / "full"), f"STATUS={i}") for i in range(50)]
        assert time.monotonic() - started < 1
        assert results[0] is True and results[-1] is False  # the queue filled up
    finally:
        full.sock.close()


def test_formation_settled() -> None:
    assert formation_settled([])
    assert formation_settled([("ready", True), ("running", False), ("exited", False)])
    assert formation_settled([("stopped", True)])
    assert not formation_settled([("running", True)])  # has a check, not ready yet
    assert not formation_settled([("ready", True), ("starting", True)])
    assert not formation_settled([("backoff", False)])
    assert not formation_settled([("stopping", False)])
