"""Client commands find the socket in the current directory or a parent, as git finds
`.git`, and stop at the first app root; with none, they say how to point at one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_app
from support.control import TRAPPING, Runner
from support.procs import alive

pytestmark = pytest.mark.timeout(60)

PROCFILE = f"web: {TRAPPING}\n"


def _run(runner: Runner, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keelrun", *args],
        cwd=cwd,
        env=runner.env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )


def _one_line_error(r: subprocess.CompletedProcess[str], status: int) -> str:
    assert r.returncode == status, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("keelrun: "), r.stderr
    return lines[0]


def _names(r: subprocess.CompletedProcess[str]) -> set[str]:
    assert r.returncode == 0, r.stderr
    return {row["name"] for row in json.loads(r.stdout)}


def test_every_client_command_works_from_a_subdirectory(runner: Runner) -> None:
    app = runner.app(PROCFILE)
    deep = app / "src" / "pkg" / "deeper"
    deep.mkdir(parents=True)
    k = runner.start(app)
    k.wait_ready("web.1")
    assert _names(_run(runner, deep, "ps", "--json")) == {"web.1"}
    r = _run(runner, deep, "scale", "web=2")
    assert r.returncode == 0 and "web: 1 -> 2" in r.stdout, r.stderr
    k.wait_ready("web.2")
    mark = k.mark()
    r = _run(runner, app / "src", "signal", "USR1", "web.2")
    assert r.returncode == 0, r.stderr
    k.wait_for_line(r"web\.2 got USR1", 10, mark)
    old = k.ps()["web.1"]["pid"]
    mark = k.mark()
    r = _run(runner, deep, "restart", "web.1")
    assert r.returncode == 0 and "restarting web.1" in r.stdout, r.stderr
    k.wait_for_line(r"web\.1 up ", 10, mark)
    assert k.ps()["web.1"]["pid"] != old
    r = _run(runner, deep, "logs", "-n", "1000", "--no-timestamp", "web.2")
    assert r.returncode == 0 and "web.2 got USR1" in r.stdout, r.stderr
    r = _run(runner, deep, "reload")
    assert r.returncode == 0 and "reloaded" in r.stdout, r.stderr
    r = _run(runner, deep, "stop")
    assert r.returncode == 0, r.stderr
    assert k.wait_exit() == 0


CLIENT_COMMANDS = [
    ("ps",),
    ("scale", "web=2"),
    ("stop",),
    ("restart",),
    ("signal", "USR1", "web"),
    ("logs",),
    ("reload",),
]


def test_no_socket_anywhere_says_how_to_point_at_one(runner: Runner) -> None:
    nowhere = runner.root / "nowhere" / "below"
    nowhere.mkdir(parents=True)
    for args in CLIENT_COMMANDS:
        line = _one_line_error(_run(runner, nowhere, *args), 1)
        assert "no keelrun is running in " + str(nowhere) in line, line
        assert "-d DIR" in line and "--socket PATH" in line, line


def test_the_search_stops_at_the_first_app_root(runner: Runner) -> None:
    outer = runner.app(PROCFILE, name="outer")
    inner = make_app(outer / "services" / "inner", procfile="api: sleep 100\n")
    (inner / "src").mkdir()
    (outer / "docs" / "api").mkdir(parents=True)
    k = runner.start(outer)
    k.wait_ready("web.1")
    pid = k.ps()["web.1"]["pid"]
    # Inside another app (its own Procfile), the outer keelrun is not the one meant.
    for cwd in (inner, inner / "src"):
        line = _one_line_error(_run(runner, cwd, "stop"), 1)
        assert f"no keelrun is running on {inner / '.keelrun.sock'}" in line, line
    assert k.proc.poll() is None and alive(pid)
    # Plain subdirectories of the outer app reach it.
    assert _names(_run(runner, outer / "docs" / "api", "ps", "--json")) == {"web.1"}
    assert _names(_run(runner, outer / "services", "ps", "--json")) == {"web.1"}


def test_a_config_socket_of_a_directory_on_the_way_up_is_used(runner: Runner) -> None:
    app = make_app(
        runner.root / "app",
        procfile=PROCFILE,
        pyproject='[project]\nname = "x"\n\n[tool.keelrun]\nsocket = "run/ctl.sock"\n',
    )
    (app / "run").mkdir()
    (app / "src").mkdir()
    k = runner.start(app)
    k.wait_ready("web.1")
    assert (app / "run" / "ctl.sock").is_socket()
    assert not (app / ".keelrun.sock").exists()
    assert _names(_run(runner, app / "src", "ps", "--json")) == {"web.1"}
    assert _names(_run(runner, runner.root, "ps", "--json", "-d", "app")) == {"web.1"}


def test_a_pyproject_without_keelrun_config_does_not_stop_the_search(runner: Runner) -> None:
    app = runner.app(PROCFILE)
    backend = make_app(app / "backend", procfile=None, pyproject='[project]\nname = "b"\n')
    k = runner.start(app)
    k.wait_ready("web.1")
    assert _names(_run(runner, backend, "ps", "--json")) == {"web.1"}


def test_d_names_the_app_root_from_anywhere(runner: Runner, tmp_path: Path) -> None:
    app = runner.app(PROCFILE)
    k = runner.start(app)
    k.wait_ready("web.1")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert _names(_run(runner, elsewhere, "ps", "--json", "-d", str(app))) == {"web.1"}
    # -d names exactly that root: no search upward from it.
    line = _one_line_error(_run(runner, elsewhere, "ps", "-d", str(app / "nothing")), 1)
    assert f"no keelrun is running on {app / 'nothing' / '.keelrun.sock'}" in line, line
