"""textual and watchfiles cost tens of milliseconds to import: only `keelrun top` and a
configured watch may pay that. A real `python -m keelrun ...` runs to its end and
reports the modules it had loaded; these tests fail as soon as one of the heavy
ones comes in eagerly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import clean_environ, make_app

# Packages of `top` and of the watcher, and what they pull in.
HEAVY = ("textual", "watchfiles", "rich", "anyio", "keelrun.top", "keelrun.watch.watcher")

# Runs keelrun as `python -m keelrun` would, and writes sys.modules to a file however it
# ends: by SystemExit, or by os._exit (keelrun exits without interpreter teardown).
RUN_AND_REPORT = """
import json, os, runpy, sys
out, sys.argv = sys.argv[1], ["keelrun", *sys.argv[2:]]
def report():
    with open(out, "w") as f:
        json.dump(sorted(n for n, m in sys.modules.items() if m is not None), f)
real_exit = os._exit
def exit_after_report(status):
    report()
    real_exit(status)
os._exit = exit_after_report
try:
    runpy.run_module("keelrun", run_name="__main__", alter_sys=True)
finally:
    report()
"""


def heavy(names: set[str]) -> list[str]:
    return sorted(n for n in names if any(n == h or n.startswith(h + ".") for h in HEAVY))


def loaded(*args: str, cwd: Path, timeout: float = 30) -> tuple[set[str], str]:
    """The modules loaded by ``python -m keelrun ARGS`` run to its end, and its stdout."""
    report = cwd / "modules.json"
    r = subprocess.run(
        [sys.executable, "-c", RUN_AND_REPORT, str(report), *args],
        cwd=cwd,
        env=clean_environ(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr[-2000:])
    return set(json.loads(report.read_text())), r.stdout


def test_the_check_itself_sees_textual_and_watchfiles(tmp_path: Path) -> None:
    app = make_app(tmp_path / "app")
    # An eager import, as a sitecustomize makes one: the report must show it.
    (app / "sitecustomize.py").write_text("import textual.app, watchfiles\n")
    r = subprocess.run(
        [sys.executable, "-c", RUN_AND_REPORT, str(app / "modules.json"), "--version"],
        cwd=app,
        env=clean_environ(PYTHONPATH=f"{app}:{clean_environ()['PYTHONPATH']}"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    names = set(json.loads((app / "modules.json").read_text()))
    assert {"textual.app", "watchfiles", "rich"} <= set(heavy(names))


def test_start_without_watch_imports_neither_textual_nor_watchfiles(tmp_path: Path) -> None:
    app = make_app(tmp_path / "app", procfile="web: echo hello from web\nclock: echo tick\n")
    names, out = loaded("start", cwd=app)
    assert "hello from web" in out and "tick" in out  # a whole run: spawn, output, exit
    assert "keelrun.start" in names  # the list is the run's
    assert heavy(names) == []


def test_client_commands_and_help_stay_light(tmp_path: Path) -> None:
    app = make_app(tmp_path / "app")
    for args in (("ps", "--help"), ("top", "--help"), ("check",), ("--help",)):
        names, _ = loaded(*args, cwd=app)
        assert "keelrun.cli" in names
        assert heavy(names) == [], args
