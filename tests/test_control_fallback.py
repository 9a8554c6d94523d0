"""The default socket moves to a private runtime directory when the app root cannot be
written (a root-owned WORKDIR, a read-only root file system); a socket the user
named does not. Run for real: keelrun as uid 65534 in a root-owned app root, and
keelrun in a mount namespace where the app root is a read-only bind mount."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import make_app
from support import otheruid
from support.control import TRAPPING, Keelrun, Runner
from support.procs import alive, wait_until

pytestmark = pytest.mark.timeout(60)

PROCFILE = f"web: {TRAPPING}\n"
WHY_NOT = otheruid.available()
needs_nobody = pytest.mark.skipif(WHY_NOT is not None, reason=str(WHY_NOT))


def _unshare_mount_works() -> bool:
    if os.getuid() != 0 or shutil.which("unshare") is None:
        return False
    r = subprocess.run(["unshare", "-m", "true"], capture_output=True, timeout=10)
    return r.returncode == 0


needs_mount_ns = pytest.mark.skipif(
    not _unshare_mount_works(), reason="unshare -m (a mount namespace) needs root"
)

# `sh -c READ_ONLY APP PROGRAM...`, run by `unshare -m`: APP becomes a read-only bind
# mount in a mount namespace of keelrun's own, then keelrun replaces the shell.
READ_ONLY = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"'


class Shared:
    """A world-reachable directory: a root-owned app root (0755, so uid 65534 cannot
    write it) and a temp dir (1777, like /tmp) that keelrun's TMPDIR points at."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.root = otheruid.shared_dir("keelrun-fallback-")
        self.tmp = self.root / "tmp"
        self.tmp.mkdir()
        self.tmp.chmod(0o1777)
        self.app = make_app(self.root / "app", procfile=PROCFILE)
        (self.app / "sub" / "deeper").mkdir(parents=True)
        for d in (self.app, self.app / "sub", self.app / "sub" / "deeper"):
            d.chmod(0o755)

    def env(self, **extra: str) -> dict[str, str]:
        env = self.runner.env(TMPDIR=str(self.tmp), **extra)
        env.pop("XDG_RUNTIME_DIR", None)
        return env

    def runtime_dir(self, uid: int) -> Path:
        return self.tmp / f"keelrun-{uid}"

    def start_as_nobody(self, *args: str, wait: str | None = r"keelrun\s+\| started ") -> Keelrun:
        env = otheruid.env(self.env())
        return self.runner.start(self.app, *args, env=env, wait=wait, program=otheruid.keelrun())

    def nobody(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """A client command run to completion as uid 65534."""
        return subprocess.run(
            [*otheruid.keelrun(), *args],
            cwd=cwd or self.app,
            env=otheruid.env(self.env()),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
        )


@pytest.fixture
def shared(runner: Runner) -> Iterator[Shared]:
    s = Shared(runner)
    yield s
    # Before the directories go, so that every keelrun is gone with its socket.
    leftovers = runner.close()
    shutil.rmtree(s.root, ignore_errors=True)
    assert not leftovers, f"processes left behind: {leftovers}"


def _only_socket(directory: Path) -> Path:
    entries = list(directory.iterdir())
    assert len(entries) == 1, entries
    return entries[0]


def _one_line(r: subprocess.CompletedProcess[str] | str) -> str:
    text = r if isinstance(r, str) else r.stderr
    assert "Traceback" not in text, text
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("keelrun: "), text
    return lines[0]


@needs_nobody
def test_an_unwritable_app_root_moves_the_socket_to_the_runtime_dir(shared: Shared) -> None:
    k = shared.start_as_nobody()
    k.wait_ready("web.1")
    assert not (shared.app / ".keelrun.sock").exists()
    private = shared.runtime_dir(otheruid.NOBODY)
    st = os.lstat(private)
    assert st.st_uid == otheruid.NOBODY and stat.S_IMODE(st.st_mode) == 0o700
    sock = _only_socket(private)
    st = os.lstat(sock)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == otheruid.NOBODY
    # keelrun says where the socket went and why.
    k.wait_for_line(
        rf"keelrun\s+\| control socket at {re.escape(str(sock))} "
        rf"\({re.escape(str(shared.app))} is not writable: Permission denied\)$"
    )
    # Its clients compute the same place, from the app root and from below it.
    for cwd in (shared.app, shared.app / "sub" / "deeper"):
        r = shared.nobody("ps", "--json", cwd=cwd)
        assert r.returncode == 0, r.stderr
        assert "web.1" in r.stdout
    r = shared.nobody("stop", cwd=shared.app / "sub")
    assert r.returncode == 0, r.stderr
    assert k.wait_exit() == 0
    assert not sock.exists()


@needs_nobody
def test_a_second_start_and_a_stale_socket_in_the_runtime_dir(shared: Shared) -> None:
    k = shared.start_as_nobody()
    k.wait_ready("web.1")
    sock = _only_socket(shared.runtime_dir(otheruid.NOBODY))
    second = shared.start_as_nobody(wait=None)
    assert second.wait_exit(20) == 1
    line = _one_line(second.output())
    assert "already running" in line and str(sock) in line, line
    assert shared.nobody("ps").returncode == 0  # the first one is untouched

    old_child = json.loads(shared.nobody("ps", "--json").stdout)[0]["pid"]
    k.proc.send_signal(signal.SIGKILL)
    k.wait_exit(10)
    assert stat.S_ISSOCK(os.lstat(sock).st_mode)  # left behind by the killed keelrun
    wait_until(lambda: not alive(old_child), 10, "the killed keelrun's child to be stopped")
    r = shared.nobody("ps")
    assert r.returncode == 1 and "no keelrun is running" in _one_line(r)

    k3 = shared.start_as_nobody()
    k3.wait_ready("web.1")
    assert _only_socket(shared.runtime_dir(otheruid.NOBODY)) == sock
    r = shared.nobody("ps")
    assert r.returncode == 0 and "web.1" in r.stdout, r.stderr


@needs_nobody
@pytest.mark.parametrize("planted", ["owned-by-root", "writable-by-others"])
def test_a_planted_runtime_dir_is_refused(shared: Shared, planted: str) -> None:
    private = shared.runtime_dir(otheruid.NOBODY)
    private.mkdir(mode=0o777)
    private.chmod(0o777)
    if planted == "writable-by-others":
        os.chown(private, otheruid.NOBODY, otheruid.NOBODY)
    k = shared.start_as_nobody(wait=None)
    assert k.wait_exit(20) == 1
    line = _one_line(k.output())
    assert str(private) in line, line
    if planted == "owned-by-root":
        assert "owned by uid 0 (root)" in line, line
    else:
        assert "writable by others" in line, line
    assert list(private.iterdir()) == []  # nothing was put there
    assert "started" not in k.output()


@needs_nobody
@pytest.mark.parametrize("how", ["--socket", "KEELRUN_SOCKET", "config"])
def test_a_named_socket_that_cannot_be_created_is_fatal(shared: Shared, how: str) -> None:
    named = shared.app / "ctl.sock"
    args: tuple[str, ...] = ()
    env = shared.env()
    if how == "--socket":
        args = ("--socket", str(named))
    elif how == "KEELRUN_SOCKET":
        env["KEELRUN_SOCKET"] = str(named)
    else:
        (shared.app / "keelrun.toml").write_text('socket = "ctl.sock"\n')
    k = shared.runner.start(
        shared.app, *args, env=otheruid.env(env), wait=None, program=otheruid.keelrun()
    )
    assert k.wait_exit(20) == 2
    line = _one_line(k.output())
    assert str(named) in line and "Permission denied" in line, line
    assert not shared.runtime_dir(otheruid.NOBODY).exists()  # no quiet fallback


def _read_only_keelrun(app: Path) -> list[str]:
    return ["unshare", "-m", "sh", "-c", READ_ONLY, str(app), sys.executable, "-m", "keelrun"]


@needs_mount_ns
def test_a_read_only_app_root_works(runner: Runner, tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = runner.env(TMPDIR=str(tmp))
    env.pop("XDG_RUNTIME_DIR", None)
    app = runner.app(PROCFILE)
    (app / "src").mkdir()
    program = _read_only_keelrun(app)
    k = runner.start(app, env=env, program=program)
    k.wait_ready("web.1")
    assert not (app / ".keelrun.sock").exists()
    sock = _only_socket(tmp / f"keelrun-{os.getuid()}")
    assert stat.S_ISSOCK(os.lstat(sock).st_mode)
    assert k.socket_path() == str(sock)
    r = k.client("ps", env=env)
    assert r.returncode == 0 and "web.1" in r.stdout, r.stderr
    # A second keelrun on the same read-only root finds the first.
    second = runner.start(app, env=env, program=program, wait=None)
    assert second.wait_exit(20) == 1
    assert "already running" in _one_line(second.output())
    # A socket the user names inside the read-only root is an error, not moved.
    ctl = str(app / "ctl.sock")
    named = runner.start(app, "--socket", ctl, env=env, program=program, wait=None)
    assert named.wait_exit(20) == 2
    line = _one_line(named.output())
    assert str(app / "ctl.sock") in line and "Read-only file system" in line, line
    assert _only_socket(tmp / f"keelrun-{os.getuid()}") == sock
    r = subprocess.run(
        [sys.executable, "-m", "keelrun", "stop"],
        cwd=app / "src",
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert r.returncode == 0, r.stderr
    assert k.wait_exit() == 0
    assert not sock.exists()
