"""A client talks only to a socket served by its own uid or root (SO_PEERCRED, checked
before anything is sent). The servers here are a made-up keelrun
(support/fake_server.py) run for real as uid 65534 or as root."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import otheruid
from support.control import Runner, lines_of, wait_in

pytestmark = pytest.mark.timeout(60)

WHY_NOT = otheruid.available()
pytestmark = [pytestmark, pytest.mark.skipif(WHY_NOT is not None, reason=str(WHY_NOT))]


class FakeServer:
    """fake_server.py on ``path``; ``wait_connection()`` is what it got from one client."""

    def __init__(self, runner: Runner, path: Path, as_nobody: bool, mode: str = "rows") -> None:
        self.path = path
        self.proc = subprocess.Popen(
            [*otheruid.fake_server(as_nobody=as_nobody), str(path), mode],
            env=runner.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
        )
        runner.extra.append(self.proc)  # killed and checked at teardown
        self.lines: list[str] = []
        self.cond = threading.Condition()
        lines_of(self.proc.stdout, self.lines, self.cond)
        wait_in(self.lines, self.cond, "^listening$", 15)
        self.seen = 0

    def wait_connection(self, timeout: float = 15.0) -> int:
        """Bytes the next client sent (0: it connected and left without a word)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                done = [line for line in self.lines if line.startswith("{")]
                if len(done) > self.seen:
                    self.seen += 1
                    return int(json.loads(done[self.seen - 1])["received"])
                left = deadline - time.monotonic()
                assert left > 0, f"the fake server saw no connection: {self.lines}"
                self.cond.wait(left)


@pytest.fixture
def shared(runner: Runner) -> Iterator[Path]:
    """A directory like /tmp: anyone may create files in it (mode 1777)."""
    where = otheruid.shared_dir("keelrun-trust-")
    where.chmod(0o1777)
    yield where
    leftovers = runner.close()
    shutil.rmtree(where, ignore_errors=True)
    assert not leftovers, f"processes left behind: {leftovers}"


def _as_root(runner: Runner, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keelrun", *args],
        cwd=cwd,
        env=runner.env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )


def _as_nobody(runner: Runner, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*otheruid.keelrun(), *args],
        cwd=cwd,
        env=otheruid.env(runner.env()),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )


def _refused(r: subprocess.CompletedProcess[str], path: Path) -> None:
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == "" and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert str(path) in lines[0] and "uid 65534 (nobody)" in lines[0], lines[0]


@pytest.mark.parametrize(
    "args", [("ps",), ("stop",), ("scale", "web=0"), ("logs", "-f"), ("signal", "KILL", "web")]
)
def test_root_refuses_a_socket_served_by_another_uid(
    runner: Runner, shared: Path, args: tuple[str, ...]
) -> None:
    planted = shared / "ctl.sock"
    server = FakeServer(runner, planted, as_nobody=True)
    r = _as_root(runner, shared, *args, "--socket", str(planted))
    _refused(r, planted)
    assert server.wait_connection() == 0  # not one byte of the request reached it


def test_a_socket_planted_in_a_parent_directory_is_refused(runner: Runner, shared: Path) -> None:
    # Another user's socket where the search passes: a shared directory above the project.
    planted = shared / ".keelrun.sock"
    server = FakeServer(runner, planted, as_nobody=True)
    project = shared / "project" / "sub"
    project.mkdir(parents=True)
    r = _as_root(runner, project, "stop")
    _refused(r, planted)
    assert server.wait_connection() == 0


@pytest.mark.parametrize("server_uid", ["own uid", "root"])
def test_uid_65534_talks_to_its_own_uid_and_to_root(
    runner: Runner, shared: Path, server_uid: str
) -> None:
    path = shared / "ctl.sock"
    server = FakeServer(runner, path, as_nobody=server_uid == "own uid")
    r = _as_nobody(runner, shared, "ps", "--json", "--socket", str(path))
    assert r.returncode == 0, r.stderr
    assert [row["name"] for row in json.loads(r.stdout)] == ["planted.1"]
    assert server.wait_connection() > 0


@pytest.mark.parametrize(
    ("mode", "message"), [("reset", "dropped the request"), ("garbage", "sent a malformed reply")]
)
def test_a_trusted_server_that_misbehaves_gets_a_one_line_error(
    runner: Runner, shared: Path, mode: str, message: str
) -> None:
    path = shared / "ctl.sock"
    server = FakeServer(runner, path, as_nobody=False, mode=mode)
    r = _as_root(runner, shared, "ps", "--socket", str(path))
    assert server.wait_connection() > 0
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip() == f"keelrun: keelrun on {path} {message}" + (
        ": Connection reset by peer" if mode == "reset" else ""
    )
