"""keelrun/supervisor/terminal.py's parts on real ptys, without a supervisor: the
command line, the Terminal's input queue, size and end, and read_pty. What an app
sees on its terminal under `keelrun start` is proven by test_tty_start.py and
test_tty_attach.py."""

from __future__ import annotations

import errno
import os
import select
import signal

import pytest
from support.ttys import TtySet, child

from keelrun.loop import Loop
from keelrun.supervisor import terminal


@pytest.fixture
def ttys():  # type: ignore[no-untyped-def]
    s = TtySet()
    yield s
    problems = s.finish()
    assert not problems, "; ".join(problems)


def test_the_script_opens_the_slave_then_runs_the_command() -> None:
    """No preexec_fn on Linux, so Popen keeps its vfork path (see benchmarks/tty.py)."""
    if not terminal._OPEN_MAKES_CTTY:
        pytest.skip("the preexec_fn path is for systems where open() makes no ctty")
    cmd = terminal.tty_command("python3 app.py", "/dev/pts/7")
    assert cmd == ": </dev/pts/7; exec python3 app.py"


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
