"""tty instances under a real `keelrun start` (README "Terminals"): the terminal the app
gets, and its output through keelrun's one log path."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from support.attach import KEELRUN, Wire, said, start_app
from support.procs import wait_gone
from support.runner import Keelrun, RunSet, base_env
from support.ttys import child

N = 100_000
ISATTY = f"{sys.executable} -c \"import os; print('isatty', [os.isatty(i) for i in range(3)])\""


def _probe(run: Keelrun) -> dict[str, object]:
    i = run.wait_for_line(r"web\.1 +\| \{")
    return json.loads(run.lines[i].split(b"| ", 1)[1])


def test_a_tty_type_runs_on_its_own_controlling_terminal(
    keelrun: RunSet[Keelrun], tmp_path: Path
) -> None:
    procfile = f"web: {child('probe')}\nworker: {ISATTY}\n"
    (tmp_path / "keelrun.toml").write_text("[processes.web]\ntty = true\n")
    run = start_app(keelrun, tmp_path, procfile, "--restart", "never")
    report = _probe(run)  # it opened /dev/tty: the pty is its controlling terminal
    assert report["isatty"] == [True, True, True] and report["term_stdout_fd"]
    assert report["session_leader"] and report["foreground"]  # its own session, in front
    assert report["size"] == [24, 80]  # until someone attaches
    run.wait_for_line(r"worker\.1 +\| isatty \[False, False, False\]$")  # pipes, as before
    assert run.wait_exit() == 0


def test_lines_end_at_crlf_and_a_progress_bar_leaves_its_last_state(
    keelrun: RunSet[Keelrun], tmp_path: Path
) -> None:
    script = (
        "import os, sys\n"
        "os.write(1, b'plain\\n')\n"
        "os.write(1, b'bar 10%\\r')\n"
        "os.write(1, b'bar 50%\\rbar 100%\\n')\n"
        "os.write(1, b'\\x1b[1;31mERROR\\x1b[0m disk \\x1b]0;title\\x07full\\n')\n"
        "os.write(2, b'to stderr\\n')\n"
        "os.write(1, b'no newline at the end')\n"
    )
    (tmp_path / "app.py").write_text(script)
    run = start_app(keelrun, tmp_path, f"web: {sys.executable} app.py\n", "--tty", "web")
    assert run.wait_exit() == 0
    # stdout is a pipe here: escapes are removed; stdout and stderr are one terminal.
    assert said(run, "web.1") == [
        b"plain",
        b"bar 100%",
        b"ERROR disk full",
        b"to stderr",
        b"no newline at the end",
    ]


def test_json_mode_removes_escapes(keelrun: RunSet[Keelrun], tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("print('\\x1b[32mok\\x1b[0m done')\n")
    (tmp_path / "Procfile").write_text(f"web: {sys.executable} app.py\n")
    run = keelrun.start("start", "--tty", "web", "--log-format", "json", cwd=tmp_path)
    assert run.wait_exit() == 0
    logs = [r for r in run.records() if r.get("proc") == "web.1"]
    assert [(r["stream"], r["msg"]) for r in logs] == [("stdout", "ok done")]


def test_escapes_are_kept_for_keelruns_terminal(keelrun: RunSet[Keelrun], tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_text(f"web: {sys.executable} app.py\n")
    (tmp_path / "app.py").write_text("print('\\x1b[32mok\\x1b[0m')\n")
    run = keelrun.start("start", "--tty", "web", "--no-color", cwd=tmp_path, mode="pty")
    assert run.wait_exit() == 0
    assert said(run, "web.1") == [b"\x1b[32mok\x1b[0m"]


def test_the_stream_ends_when_the_last_process_on_the_terminal_is_gone(
    keelrun: RunSet[Keelrun], tmp_path: Path
) -> None:
    """The leader's exit hangs up its foreground group (SIGHUP, as in a terminal); a
    process that ignores it and keeps the terminal keeps the stream, as with a pipe."""
    script = (
        "import os, signal, sys, time\n"
        "if os.fork() == 0:\n"
        "    signal.signal(signal.SIGHUP, lambda *a: os.write(1, b'HUP\\n'))\n"
        "    print('child', os.getpid(), flush=True)\n"
        "    signal.pause(); time.sleep(0.3); print('late', flush=True); sys.exit(0)\n"
        "time.sleep(0.2)\n"
    )
    (tmp_path / "app.py").write_text(script)
    procfile = f"web: {sys.executable} app.py\nworker: sleep 30\n"
    run = start_app(keelrun, tmp_path, procfile, "--tty", "web")
    pid = int(run.wait_for_match(r"web\.1 +\| child (\d+)$").group(1))
    ended = run.wait_for_line(r"keelrun +\| web\.1 \(pid \d+\) exited with status 0$")
    run.wait_for_line(r"web\.1 +\| HUP$")
    run.wait_for_line(r"web\.1 +\| late$", start=ended)
    assert not wait_gone([pid], 10)
    run.send(signal.SIGTERM)
    assert run.wait_exit() == 0


def test_a_flood_while_attached_reaches_the_output_and_the_client(
    keelrun: RunSet[Keelrun], tmp_path: Path
) -> None:
    """Every line, in order, both in keelrun's output and to the attached client, whose
    keystrokes came in the same write as its request."""
    run = start_app(
        keelrun, tmp_path, f"web: {child('flood', str(N), '--on-input')}\n", "--tty", "web"
    )
    wire = Wire(tmp_path, after=b'{"in": "go\\r"}\n')
    raw = wire.to_eof(timeout=60)
    wire.close()
    assert wire.reply()["ok"] is True
    expected = [f"line {i:07d} ".encode() + b"x" * 40 for i in range(N)]
    # The client got the terminal's bytes: the echo of "go", then every line.
    assert raw == b"go\r\n" + b"".join(line + b"\r\n" for line in expected) + (
        b"\r\n[keelrun: web.1 exited]\r\n"
    )
    assert run.wait_exit(30) == 0
    assert said(run, "web.1") == [b"go", *expected]


def test_reload_puts_a_type_on_a_terminal(keelrun: RunSet[Keelrun], tmp_path: Path) -> None:
    run = start_app(keelrun, tmp_path, f"web: {ISATTY}; sleep 30\n")
    run.wait_for_line(r"web\.1 +\| isatty \[False, False, False\]$")
    mark = len(run.lines)
    (tmp_path / "keelrun.toml").write_text("[processes.web]\ntty = true\n")
    r = subprocess.run(
        [*KEELRUN, "reload"], cwd=tmp_path, env=base_env(), capture_output=True, timeout=20
    )
    assert r.returncode == 0, r.stderr
    run.wait_for_line(r"keelrun +\| reloaded: restarted web$", start=mark)
    run.wait_for_line(r"web\.1 +\| isatty \[True, True, True\]$", start=mark)
    run.send(signal.SIGTERM)
    assert run.wait_exit() == 0


def test_tty_inputs_are_checked(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_text("web: true\nworker: true\n")

    def start(*args: str) -> tuple[int, str]:
        r = subprocess.run(
            [*KEELRUN, "start", *args], cwd=tmp_path, env=base_env(), capture_output=True,
            text=True, timeout=20,
        )  # fmt: skip
        return r.returncode, r.stderr

    assert start("--tty", "wbe") == (
        2,
        'keelrun: --tty: no process type "wbe" in the Procfile; did you mean "web"?\n',
    )
    assert start("--tty", "web,") == (2, 'keelrun: --tty: empty process type in "web,"\n')
    (tmp_path / "keelrun.toml").write_text('[processes.web]\ntty = "maybe"\n')
    status, err = start()
    assert status == 2
    assert err == 'keelrun: keelrun.toml: processes.web.tty: expected true or false, got "maybe"\n'
