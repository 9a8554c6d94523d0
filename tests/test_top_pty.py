"""`keelrun top` for real: `python -m keelrun top` in a pseudo-terminal (pexpect)."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pytest
from conftest import clean_environ, run_keelrun
from support.control import TRAPPING, Keelrun, Runner

pexpect = pytest.importorskip("pexpect", reason="the pty tests drive a terminal with pexpect")

PROCFILE = f"web: {TRAPPING}\nworker: {TRAPPING}\n"
SGR = re.compile(rb"\x1b\[([0-9;:]*)m")


def spawn_top(k: Keelrun, **env: str) -> pexpect.spawn:
    top = pexpect.spawn(
        sys.executable,
        ["-m", "keelrun", "top"],
        cwd=str(k.app),
        env={**k.env, "TERM": "xterm-256color", "COLORTERM": "truecolor", **env},
        dimensions=(30, 110),
        timeout=20,
    )
    top.logfile_read = io.BytesIO()  # everything the terminal received
    return top


def received(top: pexpect.spawn) -> bytes:
    return top.logfile_read.getvalue()


def quit_top(top: pexpect.spawn) -> int:
    top.send("q")
    top.expect(pexpect.EOF, timeout=10)
    top.close()
    assert top.exitstatus is not None, f"top ended by signal {top.signalstatus}"
    return top.exitstatus


def colours(output: bytes) -> list[tuple[int, int, int]]:
    """Every foreground and background colour set by SGR sequences; the 16 basic
    colours count as (-1, n, 0) so that they never look grey."""
    found = []
    for m in SGR.finditer(output):
        params = [int(p) if p.isdigit() else 0 for p in re.split(rb"[;:]", m.group(1))]
        i = 0
        while i < len(params):
            p = params[i]
            if p in (38, 48) and i + 1 < len(params) and params[i + 1] == 2:
                found.append(tuple(params[i + 2 : i + 5]))  # type: ignore[arg-type]
                i += 5
                continue
            if p in (38, 48) and i + 1 < len(params) and params[i + 1] == 5:
                found.append((-1, params[i + 2], 5))
                i += 3
                continue
            if 30 <= p <= 37 or 40 <= p <= 47 or 90 <= p <= 97 or 100 <= p <= 107:
                found.append((-1, p, 0))
            i += 1
    return found


def test_top_in_a_terminal_shows_instances_and_q_leaves_keelrun_running(
    runner: Runner,
) -> None:
    k = runner.start(runner.app(PROCFILE))
    k.wait_ready("web.1", "worker.1")
    before = k.ps()
    top = spawn_top(k)
    try:
        top.expect(rb"worker\.1")
        top.expect(rb"web\.1 up port=5000")  # the selected instance's lines
        seen = received(top)
        assert str(before["web.1"]["pid"]).encode() in seen
        exit_status = quit_top(top)
    finally:
        if top.isalive():
            top.terminate(force=True)
    assert exit_status == 0
    assert k.proc.poll() is None
    after = k.ps()
    assert {n: r["pid"] for n, r in after.items()} == {n: r["pid"] for n, r in before.items()}
    colour = colours(seen)
    assert any(len(set(c)) > 1 for c in colour), "expected colours without NO_COLOR"


def test_no_color_gives_a_grey_screen(runner: Runner) -> None:
    k = runner.start(runner.app(PROCFILE))
    k.wait_ready("web.1", "worker.1")
    top = spawn_top(k, NO_COLOR="1")
    try:
        top.expect(rb"web\.1 up port=5000")
        assert quit_top(top) == 0
        seen = received(top)
    finally:
        if top.isalive():
            top.terminate(force=True)
    colour = colours(seen)
    assert colour, "no colour sequence at all: nothing to check"
    assert all(c[0] == c[1] == c[2] for c in colour), sorted(set(colour))[:10]


def test_top_without_keelrun_says_so_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_text("web: true\n")
    env = clean_environ(TERM="xterm-256color")
    top = pexpect.spawn(
        sys.executable, ["-m", "keelrun", "top"], cwd=str(tmp_path), env=env, timeout=20
    )
    top.expect(pexpect.EOF)
    top.close()
    out = top.before.decode()
    assert top.exitstatus == 1, out
    assert re.fullmatch(r"keelrun: no keelrun is running on \S+\.keelrun\.sock(; .*)?\s*", out), out


def test_top_needs_a_terminal(tmp_path: Path) -> None:
    r = run_keelrun("top", cwd=tmp_path)
    assert r.returncode == 2, r
    assert r.stderr == "keelrun: keelrun top: needs a terminal (stdin, stdout and stderr)\n"


def test_a_attaches_to_the_selected_tty_instance_and_top_comes_back(runner: Runner) -> None:
    from support.ttys import child

    k = runner.start(runner.app(f"web: {child('winch')}\nworker: {TRAPPING}\n"), "--tty", "web")
    k.wait_for_line(r"web\.1 +\| size 24x80$")
    top = spawn_top(k)
    try:
        top.expect(rb"web\.1: latest lines, following")  # the first row is selected
        top.send("a")  # top hands its terminal to `keelrun attach web.1`
        top.expect(rb"size 30x110\r\n")  # the app follows the attaching terminal
        top.send("hi\r")
        top.expect(rb"got: hi\r\n")
        top.sendcontrol("]")
        top.expect(rb"\[detached from web\.1\]")  # top's status line, once it is back
        k.wait_for_line(r"keelrun +\| pid \d+ on /dev/pts/\d+ detached from web\.1$")
        top.send("\x1b[B")  # down: worker.1, on pipes
        top.expect(rb"worker\.1: latest lines, following")
        top.send("a")
        top.expect(rb"worker\.1 does not run on a terminal")
        assert quit_top(top) == 0
    finally:
        if top.isalive():
            top.terminate(force=True)
    k.wait_for_line(r"web\.1 +\| got: hi$")
    assert k.proc.poll() is None


def test_top_with_stderr_away_from_the_terminal_is_an_input_error(tmp_path: Path) -> None:
    """textual draws on stderr: redirected, the screen would stay blank."""
    p = pexpect.spawn(
        "sh",
        ["-c", 'exec "$@" 2>/dev/null', "sh", sys.executable, "-m", "keelrun", "top"],
        cwd=str(tmp_path),
        env=clean_environ(),
        timeout=20,
    )
    p.expect(pexpect.EOF)
    p.close()
    assert p.exitstatus == 2
