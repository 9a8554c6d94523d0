"""textual and watchfiles cost tens of milliseconds to import: only `keelrun top` and a
configured watch may pay that; a plain `keelrun start` does without click, and the
modules that structlog's import leaves to stand-ins (keelrun/supervisor/events.py)
stay stand-ins. A real `python -m keelrun ...` runs to its end and reports the
modules it had loaded; these tests fail as soon as one of them comes in eagerly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import clean_environ, make_app

from keelrun.supervisor.events import DEFERRED

# Packages of `top` and of the watcher, and what they pull in.
HEAVY = ("textual", "watchfiles", "rich", "anyio", "keelrun.top", "keelrun.watch.watcher")

# Runs keelrun as `python -m keelrun` would, and writes sys.modules to a file however it
# ends: by SystemExit, or by os._exit (keelrun exits without interpreter teardown).
# A module still held by its stand-in is reported apart: it was never really imported.
RUN_AND_REPORT = """
import gc, json, os, runpy, sys
out, sys.argv = sys.argv[1], ["keelrun", *sys.argv[2:]]
def report():
    modules = [(n, m) for n, m in sys.modules.items() if m is not None]
    stand_in = sorted(n for n, m in modules if type(m).__name__ == "_Deferred")
    real = sorted(n for n, m in modules if n not in stand_in)
    with open(out, "w") as f:
        json.dump({"real": real, "stand_in": stand_in, "gc": gc.isenabled()}, f)
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
    names, _, out = report(*args, cwd=cwd, timeout=timeout)
    return names, out


def report(*args: str, cwd: Path, timeout: float = 30) -> tuple[set[str], set[str], str]:
    """The modules really imported by ``python -m keelrun ARGS``, those still held by
    their stand-ins, and its stdout."""
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
    found = json.loads(report.read_text())
    if "keelrun.supervisor.supervisor" in found["real"]:
        # `start` runs its start-up without the cyclic collector, never the formation.
        assert found["gc"], "the garbage collector was left off"
    return set(found["real"]), set(found["stand_in"]), r.stdout


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
    names = set(json.loads((app / "modules.json").read_text())["real"])
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


def within(names: set[str], package: str) -> list[str]:
    return sorted(n for n in names if n == package or n.startswith(package + "."))


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_plain_start_imports_no_click_and_wakes_no_stand_in(tmp_path: Path, log_format) -> None:
    # web lives for a second: keelrun's work once the formation runs (its port
    # warnings, at most 0.2 s after the spawns) is part of the run checked.
    procfile = "web: echo hello from web; sleep 1\nclock: echo tick\n"
    app = make_app(tmp_path / "app", procfile=procfile)
    names, stand_in, out = report("start", "-t", "2", "--log-format", log_format, cwd=app)
    assert "hello from web" in out and "tick" in out and "web.1" in out  # a whole run
    assert "structlog" in names  # the events were rendered by structlog
    assert "keelrun.listeners" in names  # the port check after the spawns ran
    assert within(names, "click") == []  # the command line was read without click
    assert heavy(names) == []
    # Every module structlog's import left to a stand-in is still one: none was woken.
    assert stand_in == set(DEFERRED), stand_in
    assert not any(within(names, m) for m in DEFERRED), sorted(names & set(DEFERRED))


def test_the_check_sees_click_when_click_reads_the_command_line(tmp_path: Path) -> None:
    app = make_app(tmp_path / "app")
    names, out = loaded("start", "--help", cwd=app)
    assert "Usage: keelrun start" in out
    assert "click" in names


# A script run by a fresh interpreter (pytest has imported most of these already):
# structlog renders keelrun's events, then every deferred module, and structlog's own
# uses of them, work. (A file, so that a traceback shows its source lines.)
AFTER_STRUCTLOG = """
import sys, warnings
from keelrun.logformat import LogFormatter
from keelrun.supervisor.events import DEFERRED, Events, import_structlog

structlog = import_structlog()
assert all(type(sys.modules[m]).__name__ == "_Deferred" for m in DEFERRED), DEFERRED
lines = []
for json_mode in (False, True):
    events = Events(LogFormatter(json_mode=json_mode, color=False), lines.append)
    events.info("process_started", "started web.1 (pid 7)", target="web.1", pid=7)
assert b"started web.1 (pid 7)" in lines[0] and b'"pid": 7' in lines[1], lines
assert all(type(sys.modules[m]).__name__ == "_Deferred" for m in DEFERRED)

import asyncio
import asyncio.subprocess

async def child_status():
    proc = await asyncio.create_subprocess_exec("/bin/sh", "-c", "exit 3")
    return await proc.wait()

assert asyncio.run(child_status()) == 3
assert sys.modules["asyncio.subprocess"] is sys.modules["asyncio"].subprocess

import dataclasses, datetime, inspect, textwrap, traceback, uuid

@dataclasses.dataclass
class NoDoc:
    x: int

assert NoDoc.__doc__ == "NoDoc(x: int)"  # dataclasses used inspect.signature
assert str(inspect.signature(lambda a, b=1: a)) == "(a, b=1)"
assert uuid.uuid4().version == 4
assert datetime.datetime.now().year >= 2024
assert textwrap.dedent("  a\\n  b") == "a\\nb"
try:
    raise ValueError("boom")
except ValueError:
    text = traceback.format_exc()
assert 'raise ValueError("boom")' in text, text  # the source line: linecache, tokenize
stamp = structlog.processors.TimeStamper(fmt="iso")(None, "info", {})
assert stamp["timestamp"].startswith(str(datetime.date.today().year)), stamp
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    assert structlog.threadlocal.wrap_dict(dict).__name__.startswith("WrappedDict-")
assert all(type(sys.modules[m]).__name__ == "module" for m in DEFERRED)
print("ok")
"""


def test_structlog_works_and_a_later_real_import_of_each_stand_in_works(tmp_path: Path) -> None:
    script = tmp_path / "after_structlog.py"
    script.write_text(AFTER_STRUCTLOG)
    r = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=clean_environ(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (r.returncode, r.stdout, r.stderr) == (0, "ok\n", "")
