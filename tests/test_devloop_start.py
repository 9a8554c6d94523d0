"""The development loop through a real keelrun: `watch` restarts, `--watch`, `-q`.

Real files are written and the real inotify watcher sees them; each wait is on
a line of keelrun's output.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from conftest import run_keelrun
from support.control import Keelrun, Runner

pytestmark = pytest.mark.timeout(60)

# An app that says which version it runs and says goodbye on SIGTERM (a graceful stop).
APP = """\
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *a: (print("bye", VERSION, flush=True), sys.exit(0)))
VERSION = "v1"
print("up", VERSION, flush=True)
while True:
    time.sleep(30)
"""
PY = sys.executable


def _app(runner: Runner, procfile: str, config: str = "") -> Path:
    root = runner.app(procfile)
    (root / "app.py").write_text(APP)
    if config:
        (root / "keelrun.toml").write_text(config)
    return root


def _edit(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new))


def test_a_watched_file_restarts_its_type_gracefully(runner: Runner) -> None:
    root = _app(
        runner,
        f"web: {PY} app.py\nother: {PY} app.py\n",
        '[processes.web]\nwatch = ["**/*.py"]\n',
    )
    k = runner.start(root)
    k.wait_for_line(r"web\.1\s+\| up v1")
    k.wait_for_line(r"other\.1\s+\| up v1")
    k.wait_for_line(r"keelrun\s+\| watching files in \d+ director(y|ies)$")
    before = k.ps()
    # A burst of saves within the quiet period is one restart.
    mark = k.mark()
    for n in range(2, 7):
        _edit(root / "app.py", f'"v{n - 1}"', f'"v{n}"')
    k.wait_for_line(r"keelrun\s+\| files changed \(app\.py\): restarting web$", 10, mark)
    k.wait_for_line(r"web\.1\s+\| bye v1$", 10, mark)  # its own handler: a graceful stop
    k.wait_for_line(r"web\.1\s+\| up v6$", 10, mark)
    after = k.ps()
    assert after["web.1"]["pid"] != before["web.1"]["pid"]
    assert after["web.1"]["state"] == "running" and after["web.1"]["restarts"] == 1
    # Not a failed start; the type that watches nothing runs on untouched.
    assert after["other.1"]["pid"] == before["other.1"]["pid"]
    text = k.output()
    assert text.count("files changed") == 1, text
    assert "failed" not in text and "restarting web.1 in" not in text


def test_watch_flag_watches_python_files_for_every_type_and_ignores_the_rest(
    runner: Runner,
) -> None:
    root = _app(runner, f"web: {PY} app.py\nworker: {PY} app.py\n")
    (root / ".venv").mkdir()
    (root / "__pycache__").mkdir()
    (root / "templates").mkdir()
    k = runner.start(root, "--watch")
    k.wait_for_line(r"keelrun\s+\| watching files in \d+ director(y|ies)$")
    mark = k.mark()
    # Ignored places and files that match no pattern first, then one that matters:
    # the only batch names the one that matters.
    (root / ".venv" / "site.py").write_text("x = 1\n")
    (root / "__pycache__" / "app.py").write_text("x = 1\n")
    (root / "templates" / "index.html").write_text("<p>\n")
    (root / "notes.txt").write_text("n\n")
    (root / "tasks.py").write_text("x = 2\n")
    line = k.wait_for_line(
        r"keelrun\s+\| files changed \((.*)\): restarting web, worker$", 10, mark
    )
    assert line.group(1) == "tasks.py"
    k.wait_for_line(r"worker\.1\s+\| up v1$", 10, mark)
    assert k.output().count("files changed") == 1


def test_a_procfile_change_while_watching_reloads(runner: Runner) -> None:
    root = _app(runner, f"web: {PY} app.py\n", '[processes.web]\nwatch = ["templates/**"]\n')
    k = runner.start(root)
    k.wait_for_line(r"keelrun\s+\| watching files in \d+ director(y|ies)$")
    mark = k.mark()
    (root / "Procfile").write_text(f"web: {PY} app.py\nbeat: {PY} app.py\n")
    k.wait_for_line(r"keelrun\s+\| files changed \(Procfile\): reloading$", 10, mark)
    k.wait_for_line(r"keelrun\s+\| reloaded: added beat$", 10, mark)
    k.wait_for_line(r"beat\.1\s+\| up v1$", 10, mark)
    # `templates/**` matches a file at any depth below templates.
    (root / "templates" / "pages").mkdir(parents=True)
    mark = k.mark()
    (root / "templates" / "pages" / "a.html").write_text("<p>\n")
    k.wait_for_line(r"files changed \(templates/pages/a\.html\): restarting web$", 10, mark)


def test_an_instance_stopped_by_hand_stays_stopped_on_a_change(runner: Runner) -> None:
    root = _app(runner, f"web: {PY} app.py\nworker: {PY} app.py\n")
    k = runner.start(root, "--watch")
    k.wait_for_line(r"worker\.1\s+\| up v1")
    k.wait_for_line(r"keelrun\s+\| watching files in \d+ director(y|ies)$")
    assert k.client("stop", "worker").returncode == 0
    k.wait_for_line(r"worker\.1\s+\| bye v1")
    mark = k.mark()
    _edit(root / "app.py", '"v1"', '"v2"')
    k.wait_for_line(r"web\.1\s+\| up v2$", 10, mark)
    assert k.ps()["worker.1"]["state"] == "stopped"


def _quiet_run(runner: Runner, *args: str, env: dict[str, str] | None = None) -> Keelrun:
    root = runner.app("loud: echo loud-line; exec sleep 30\nhush: echo hush-line; exec sleep 30\n")
    k = runner.start(root, *args, env=env)
    k.wait_for_line(r"loud\.1\s+\| loud-line")
    return k


@pytest.mark.parametrize("how", ["flag", "variable"])
def test_quiet_types_are_not_printed_but_kept_for_logs(runner: Runner, how: str) -> None:
    if how == "flag":
        k = _quiet_run(runner, "-q", "hush")
    else:
        k = _quiet_run(runner, env=runner.env(KEELRUN_QUIET="hush"))
    logs = k.client("logs", "--no-timestamp", "hush")
    assert re.search(r"^hush\.1\s+\| hush-line$", logs.stdout, re.M), logs.stdout
    assert not re.search(r"^\S+ hush\.1\s+\|", k.output(), re.M), k.output()
    assert "started hush.1" in k.output()  # keelrun's own events about it still show
    records = [
        json.loads(x)
        for x in k.client("logs", "--log-format", "json", "hush").stdout.split("\n")
        if x
    ]
    assert [r["msg"] for r in records] == ["hush-line"]


def test_bad_watch_and_quiet_values_are_input_errors(tmp_path: Path) -> None:
    root = tmp_path / "app"
    root.mkdir()
    (root / "Procfile").write_text("web: a\nbeat: b\n")
    (root / "keelrun.toml").write_text('[processes.web]\nwatch = ["/etc/*.py"]\n')
    r = run_keelrun("check", cwd=root)
    assert r.returncode == 2
    assert r.stderr.startswith("keelrun: keelrun.toml: processes.web.watch: ")
    assert "relative to the app root" in r.stderr and len(r.stderr.splitlines()) == 1
    (root / "keelrun.toml").unlink()
    r = run_keelrun("start", "-q", "bet", cwd=root)
    assert r.returncode == 2
    assert (
        r.stderr
        == 'keelrun: --quiet: no process type "bet" in the Procfile; did you mean "beat"?\n'
    )
