"""Instances on a pty of their own (keelrun/supervisor/terminal.py), with real ptys."""

from __future__ import annotations

import errno
import json
import os
import select
import signal
from pathlib import Path

import pytest
from support.procs import pgid_sid, wait_gone
from support.ttys import TtySet, child

from keelrun.loop import Loop
from keelrun.supervisor import terminal


@pytest.fixture
def ttys():  # type: ignore[no-untyped-def]
    s = TtySet()
    yield s
    problems = s.finish()
    assert not problems, "; ".join(problems)


def _tty_nr(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    return int(data[data.rfind(b")") + 2 :].split()[4])


def test_the_child_runs_on_its_own_controlling_terminal(ttys: TtySet) -> None:
    run = ttys.spawn(child("probe"))
    report = json.loads(run.wait_line(r"^\{").string)
    assert report["isatty"] == [True, True, True]
    assert report["term_stdout_fd"]
    assert report["session_leader"] and report["foreground"]
    assert report["tty"] == run.path
    assert report["size"] == [24, 80]  # until someone attaches
    run.read_to_eof()
    assert run.exit_status() == 0


def test_session_and_controlling_terminal_seen_from_proc(ttys: TtySet) -> None:
    """The exec'd app itself is the session leader, and its stat names the pty."""
    run = ttys.spawn(child("winch"))
    run.wait_line(r"^size 24x80$")
    pgid, sid = pgid_sid(run.pid) or (0, 0)
    assert pgid == sid == run.pid
    assert _tty_nr(run.pid) == os.stat(run.path).st_rdev
    run.write(b"quit\n")
    run.read_to_eof()
    assert run.exit_status() == 0


def test_ctrl_c_interrupts_the_foreground_group(ttys: TtySet) -> None:
    run = ttys.spawn(child("sigint"))
    run.wait_until(lambda: len(_ready(run.lines)) == 2)
    pids = _ready(run.lines)
    run.write(b"\x03")
    for pid in pids:
        run.wait_line(rf"SIGINT {pid}$")  # after the echoed ^C, for the first one
    run.read_to_eof()
    assert run.exit_status() == 0
    assert b"^C" in b"".join(run.reads)  # the terminal echoed the key, as a terminal does


def _ready(lines: list[bytes]) -> set[int]:
    return {int(line.split()[1]) for line in lines if line.startswith(b"ready ")}


def test_crlf_split_between_two_reads(ttys: TtySet) -> None:
    run = ttys.spawn(child("crlf"))
    run.wait_pending(b"first\r")  # a read ended between \r and \n
    assert run.reads[-1].endswith(b"first\r")
    run.write(b"go\n")
    run.read_to_eof()
    assert run.lines[-2:] == [b"first", b"second"]
    assert run.exit_status() == 0


def test_pending_prompt_then_the_answer(ttys: TtySet) -> None:
    run = ttys.spawn(child("prompt"))
    run.wait_pending(b"name? ")
    run.write(b"pat\n")
    run.wait_line(r"^hello pat$")
    # The echo of what was typed completes the prompt's line, as on a screen.
    assert b"name? pat" in run.lines
    run.read_to_eof()
    assert run.exit_status() == 0


def test_eof_when_the_child_exits_and_final_line_kept(ttys: TtySet) -> None:
    script = "import os; os.write(1, b'one\\ntwo without newline')"
    run = ttys.spawn(f'python3 -c "{script}"')
    ended: list[bool] = []
    run.framer.on_end = lambda: ended.append(True)
    assert run.read_to_eof() == [b"one", b"two without newline"]
    assert ended == [True]
    assert run.exit_status() == 0


def test_flood_arrives_complete_and_in_order(ttys: TtySet) -> None:
    n = 50_000
    run = ttys.spawn(child("flood", str(n)))
    lines = run.read_to_eof(timeout=40)
    expected = [f"line {i:07d} ".encode() + b"x" * 40 for i in range(n)]
    assert len(lines) == n
    assert lines == expected
    assert run.exit_status() == 0


def test_escape_sequences_stripped_when_asked(ttys: TtySet) -> None:
    script = "print('\\x1b[31mred\\x1b[0m plain'); print('\\x1b]0;title\\x07end')"
    run = ttys.spawn(f'python3 -c "{script}"', strip=True)
    assert run.read_to_eof() == [b"red plain", b"end"]
    assert b"\x1b[31m" in b"".join(run.reads)  # the raw reads (for attach) keep them
    assert run.exit_status() == 0


def test_resize_sends_sigwinch_and_the_new_size(ttys: TtySet) -> None:
    run = ttys.spawn(child("winch"))
    run.wait_line(r"^size 24x80$")
    terminal.set_winsize(run.master, 50, 132)
    run.wait_line(r"^size 50x132$")
    assert terminal.get_winsize(run.master) == (50, 132)
    run.write(b"quit\n")
    run.read_to_eof()
    assert run.exit_status() == 0


def test_the_master_sees_eof_only_once_grandchildren_close_the_slave(ttys: TtySet) -> None:
    """A background child that keeps the terminal open keeps the stream open, as a pipe."""
    run = ttys.spawn(
        'python3 -c "import os, signal, sys\nif os.fork() == 0:\n'
        "    signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
        "    print('child', os.getpid(), flush=True); sys.stdin.readline()\""
    )
    pid = int(run.wait_line(r"^child (\d+)$").group(1))
    assert not run.eof
    run.write(b"done\n")
    run.read_to_eof()
    assert not wait_gone([pid], 10)
    assert run.exit_status() == 0


def test_the_script_opens_the_slave_then_runs_the_command() -> None:
    """No preexec_fn on Linux, so Popen keeps its vfork path (see benchmarks/tty.py)."""
    if not terminal._OPEN_MAKES_CTTY:
        pytest.skip("the preexec_fn path is for systems where open() makes no ctty")
    cmd = terminal.tty_command("python3 app.py", "/dev/pts/7")
    assert cmd == ": </dev/pts/7; exec python3 app.py"


def test_sighup_reaches_the_group_when_the_session_leader_exits(
    ttys: TtySet, tmp_path: Path
) -> None:
    """Terminal semantics: the leader's exit hangs up its foreground group."""
    script = (
        "import os, signal, sys\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    signal.signal(signal.SIGHUP, lambda *a: (os.write(1, b'HUP\\n'), os._exit(0)))\n"
        "    os.write(1, b'waiting\\n'); signal.pause()\n"
        "else:\n"
        "    sys.stdin.readline()\n"
    )
    path = tmp_path / "hup.py"
    path.write_text(script)
    run = ttys.spawn(f"python3 {path}")
    run.wait_line("^waiting$")
    run.write(b"\n")
    run.read_to_eof()
    assert b"HUP" in run.lines
    assert run.exit_status() == 0


# ------------------------------------------------------------------ Terminal
def test_keystrokes_wait_in_the_loop_for_an_app_that_does_not_read(ttys: TtySet) -> None:
    """Input beyond what the pty holds is queued and written as the app reads, without
    blocking the loop; past MAX_PENDING_INPUT the writer is told to stop sending."""
    data = (b"x" * 99 + b"\n") * (4 * terminal.MAX_PENDING_INPUT // 100)
    run = ttys.spawn(child("sink", str(len(data))))
    run.wait_line("^ready$")
    loop = Loop()
    term = terminal.Terminal(loop, run.master)
    accepted = term.write(data)
    assert not accepted and term.pending_input > terminal.MAX_PENDING_INPUT
    drained: list[int] = []
    term.on_input_drained = lambda: (drained.append(term.pending_input), loop.stop())
    loop.call_later(0.0, lambda: os.kill(run.pid, signal.SIGUSR1))
    loop.call_later(20.0, loop.stop)  # the bound
    loop.run()
    assert drained == [0]
    run.wait_line(rf"^read {len(data)}$")
    term.close()
    loop.close()
    run.read_to_eof()
    assert run.exit_status() == 0


def test_terminal_resize_and_end(ttys: TtySet) -> None:
    run = ttys.spawn(child("winch"))
    run.wait_line(r"^size 24x80$")
    term = terminal.Terminal(Loop(), run.master)
    ended: list[str] = []

    class Session:
        def end(self, why: str) -> None:
            ended.append(why)

    term.session = Session()
    term.resize(40, 100)
    run.wait_line(r"^size 40x100$")
    assert term.write(b"quit\n")
    run.framer = term.framer  # the log path reads through the terminal's framer
    run.read_to_eof()
    assert ended == ["exited"] and term.ended
    term.resize(10, 10)  # after the end: nothing, no error
    assert term.write(b"late") and term.pending_input == 0
    assert run.exit_status() == 0


# ------------------------------------------------------------------ read_pty
def test_read_pty_has_the_contract_of_readv(ttys: TtySet) -> None:
    """Nothing there: BlockingIOError; data left by an ended child: returned; then EIO."""
    run = ttys.spawn(
        "python3 -c \"import os, sys; sys.stdin.readline(); os.write(1, b'y' * 3000)\""
    )
    view = memoryview(bytearray(65536))
    with pytest.raises(BlockingIOError):
        terminal.read_pty(run.master, [view])
    run.write(b"\n")  # echoed: "\r\n"
    assert run.exit_status() == 0
    got = b""
    with pytest.raises(OSError) as e:
        while True:
            n = terminal.read_pty(run.master, [view])
            got += view[:n].tobytes()
    assert e.value.errno == errno.EIO
    assert got == b"\r\n" + b"y" * 3000


def test_read_pty_flood_in_one_buffer(ttys: TtySet) -> None:
    """Reads go on into the same buffer while they come back big: nothing is lost."""
    block = b"".join(b"%06d " % i + b"z" * 93 + b"\n" for i in range(2000))
    run = ttys.spawn(
        f'python3 -c "import os, sys\nfor _ in range(50): os.write(1, {block[:200]!r} * 1000)"'
    )
    view = memoryview(bytearray(65536))
    got = bytearray()
    sizes = []
    while True:
        select.select([run.master], [], [], 10)
        try:
            n = terminal.read_pty(run.master, [view])
        except BlockingIOError:
            continue
        except OSError:
            break
        sizes.append(n)
        got += view[:n]
    assert bytes(got) == (block[:200] * 1000 * 50).replace(b"\n", b"\r\n")
    assert max(sizes) <= len(view)
    assert run.exit_status() == 0
