"""The control socket file: mode, lifetime, one keelrun per socket, paths, the uid check."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
from support.control import TRAPPING, Keelrun, Runner
from support.procs import alive, wait_until

pytestmark = pytest.mark.timeout(60)

PROCFILE = f"web: {TRAPPING}\n"
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def _start(runner: Runner, *args: str, env: dict[str, str] | None = None) -> Keelrun:
    k = runner.start(runner.app(PROCFILE), *args, env=env)
    k.wait_ready("web.1")
    return k


def test_socket_is_0600_and_removed_on_exit(runner: Runner) -> None:
    k = _start(runner)
    path = k.app / ".keelrun.sock"
    assert k.socket_path() == str(path)
    st = os.lstat(path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.getuid()
    assert k.terminate() == 0
    assert not path.exists()


def test_second_start_on_the_same_socket_exits_1(runner: Runner) -> None:
    k = _start(runner)
    pid = k.ps()["web.1"]["pid"]
    r = k.client("start", timeout=20)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "already running" in r.stderr and "Traceback" not in r.stderr
    assert "web.1 up" not in r.stdout  # it started nothing
    # The first one is untouched and still answers.
    assert os.path.exists(k.socket_path())
    row = k.ps()["web.1"]
    assert row["pid"] == pid and alive(pid)


def test_stale_socket_after_kill_9_is_replaced(runner: Runner) -> None:
    k = _start(runner)
    old_child = k.ps()["web.1"]["pid"]
    k.proc.send_signal(signal.SIGKILL)
    k.wait_exit(10)
    assert os.path.exists(k.socket_path())  # left behind by the killed keelrun
    wait_until(lambda: not alive(old_child), 10, "the killed keelrun's child to be stopped")

    k2 = runner.start(k.app)
    k2.wait_ready("web.1")
    row = k2.ps()["web.1"]
    assert row["pid"] != old_child and alive(row["pid"])
    r = k2.client("ps")
    assert r.returncode == 0 and "web.1" in r.stdout


def test_socket_flag_is_honoured_by_start_and_clients(runner: Runner, tmp_path: Path) -> None:
    where = tmp_path / "sockets"
    where.mkdir()
    path = where / "ctl.sock"
    k = _start(runner, "--socket", str(path))
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    assert not (k.app / ".keelrun.sock").exists()
    r = k.client("ps", "--socket", str(path))
    assert r.returncode == 0 and "web.1" in r.stdout
    assert k.client("ps").returncode == 1  # the default path has nobody
    assert k.client("stop", "--socket", str(path)).returncode == 0
    assert k.wait_exit() == 0
    assert not path.exists()


def test_keelrun_socket_variable_is_honoured(runner: Runner, tmp_path: Path) -> None:
    path = tmp_path / "env.sock"
    env = runner.env(KEELRUN_SOCKET=str(path))
    k = _start(runner, env=env)
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    assert not (k.app / ".keelrun.sock").exists()
    r = k.client("ps", "--json", env=env)
    assert r.returncode == 0 and json.loads(r.stdout)[0]["name"] == "web.1"
    # Without the variable: the default path, where nobody listens.
    assert k.client("ps", env=runner.env()).returncode == 1
    assert k.client("stop", env=env).returncode == 0
    assert k.wait_exit() == 0
    assert not path.exists()


def test_a_socket_path_too_long_for_unix_sockets_falls_back(runner: Runner) -> None:
    deep = runner.root / ("d" * 60) / ("e" * 60)
    app = runner.app(PROCFILE, name=str(deep.relative_to(runner.root)))
    assert len(os.fsencode(app / ".keelrun.sock")) > 107
    k = runner.start(app)
    k.wait_ready("web.1")
    address = k.socket_path()
    assert address != str(app / ".keelrun.sock")
    n = len(os.fsencode(app / ".keelrun.sock"))
    k.wait_for_line(
        rf"keelrun\s+\| control socket at {re.escape(address)} "
        rf"\(longer than a Unix socket allows \({n} bytes\)\)$"
    )
    st = os.lstat(address)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    parent = os.lstat(os.path.dirname(address))
    assert parent.st_uid == os.getuid() and stat.S_IMODE(parent.st_mode) == 0o700
    r = k.client("ps")
    assert r.returncode == 0 and "web.1" in r.stdout
    # A second start on the same long path finds the running one there.
    r = k.client("start")
    assert r.returncode == 1 and "already running" in r.stderr
    assert k.client("stop").returncode == 0
    assert k.wait_exit() == 0
    assert not os.path.exists(address)


def _python_for_nobody() -> str:
    """A python3 that uid 65534 can execute (the test's own may live under /root)."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"):
        r = subprocess.run(
            [*NOBODY, candidate, "-c", ""],
            capture_output=True,
            timeout=10,
        )
        if r.returncode == 0:
            return candidate
    pytest.skip("no python3 that uid 65534 may run")


# Run as a script by uid 65534: one `stop` request, the replies printed as JSON.
RAW_CLIENT = Path(__file__).resolve().parent / "support" / "wire.py"


@pytest.mark.skipif(os.getuid() != 0, reason="setpriv to another uid needs root")
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is missing")
def test_a_foreign_uid_is_refused_by_the_peer_check(runner: Runner) -> None:
    python = _python_for_nobody()
    # A directory uid 65534 can reach, and the socket opened wide: only the
    # SO_PEERCRED check stands between that user and `stop`.
    where = Path(tempfile.mkdtemp(prefix="keelrun-uid-"))
    try:
        where.chmod(0o755)
        path = where / "ctl.sock"
        k = _start(runner, "--socket", str(path))
        pid = k.ps()["web.1"]["pid"]
        path.chmod(0o777)
        r = subprocess.run(
            [*NOBODY, python, str(RAW_CLIENT), str(path), "stop"],
            capture_output=True,
            text=True,
            timeout=20,
            env=k.env,
        )
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["closed"]
        assert len(out["replies"]) == 1
        reply = out["replies"][0]
        assert reply["ok"] is False and "uid 65534" in reply["error"], reply
        # keelrun was not stopped and still serves its owner.
        assert k.proc.poll() is None
        row = k.ps()["web.1"]
        assert row["pid"] == pid and row["state"] == "running"
        r = k.client("ps", "--socket", str(path))
        assert r.returncode == 0 and "web.1" in r.stdout
    finally:
        shutil.rmtree(where, ignore_errors=True)


def test_a_file_that_is_not_a_socket_is_left_alone(runner: Runner) -> None:
    app = runner.app(PROCFILE)
    (app / ".keelrun.sock").write_text("precious\n")
    k = runner.start(app, wait=None)
    assert k.wait_exit(15) == 1
    k.wait_for_line(r"^keelrun: .*\.keelrun\.sock: exists and is not a socket$", 1)
    assert "Traceback" not in k.output()
    assert (app / ".keelrun.sock").read_text() == "precious\n"


def test_a_socket_in_a_missing_directory_is_a_one_line_error(runner: Runner) -> None:
    app = runner.app(PROCFILE)
    missing = runner.root / "no" / "such" / "dir" / "ctl.sock"
    k = runner.start(app, "--socket", str(missing), wait=None)
    assert k.wait_exit(15) in (1, 2)
    out = k.output()
    assert "Traceback" not in out, out
    assert out.strip().splitlines() == [out.strip()] and str(missing) in out, out
    assert "started" not in out


CLIENTS = [("ps",), ("scale", "web=2"), ("stop",), ("restart",), ("signal", "USR1", "web")]
CLIENTS += [("logs",), ("reload",)]


def _one_line_input_error(text: str, directory: Path) -> None:
    assert "Traceback" not in text, text
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("keelrun: "), text
    assert str(directory) in lines[0] and "is a directory" in lines[0], lines[0]


@pytest.mark.parametrize("how", ["--socket", "KEELRUN_SOCKET"])
def test_a_socket_path_naming_a_directory_is_an_input_error(
    runner: Runner, tmp_path: Path, how: str
) -> None:
    app = runner.app(PROCFILE)
    directory = tmp_path / "a-directory"
    directory.mkdir()
    flag = ("--socket", str(directory)) if how == "--socket" else ()
    env = runner.env(KEELRUN_SOCKET=str(directory)) if how == "KEELRUN_SOCKET" else None
    k = runner.start(app, *flag, env=env, wait=None)
    assert k.wait_exit(15) == 2
    _one_line_input_error(k.output(), directory)
    assert "started" not in k.output()
    for args in CLIENTS:
        r = k.client(*args, *flag)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        assert r.stdout == ""
        _one_line_input_error(r.stderr, directory)
    assert list(directory.iterdir()) == []
