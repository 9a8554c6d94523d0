"""tty types in the supervisor's state machine, in-process: a fake kernel whose tty
"processes" are bare ptys the test writes to, and an attach through the commands
with an in-memory connection. Real processes and sockets: test_tty_start.py,
test_tty_attach.py, test_control_attach.py."""

from __future__ import annotations

import os
import re
import select
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.fakes import Harness, exited

from keelrun.errors import RequestError

pytestmark = pytest.mark.timeout(10)


class FakeConnection:
    """The commands' Reply for an attach, in memory."""

    def __init__(self) -> None:
        self.on_close: Callable[[], None] | None = None
        self.on_data: Callable[[bytes], None] | None = None
        self.sent = bytearray()
        self.finished = False
        self.reading = True
        self.peer_pid = 4242

    def send(self, obj: dict[str, object]) -> None:
        raise AssertionError("attach answers in raw bytes")

    def send_raw(self, data: bytes) -> None:
        self.sent += data

    def finish(self, obj: dict[str, object]) -> None:
        raise AssertionError("attach answers in raw bytes")

    def finish_raw(self, data: bytes) -> None:
        self.sent += data
        self.finished = True

    def set_reading(self, on: bool) -> None:
        self.reading = on


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def build(procfile: str, **opts: str) -> Harness:
        h = Harness(tmp_path / f"app{len(made)}", procfile, **opts)
        made.append(h)
        return h

    yield build
    for h in made:
        h.close()


def said(h: Harness) -> list[str]:
    """keelrun's output lines, the name's padding taken out."""
    return [re.sub(r" +\| ", " | ", line, count=1) for line in h.out.lines()]


def _pump(h: Harness, name: str, until: Callable[[], bool]) -> None:
    """Let the log path read the instance's pty until ``until()`` holds."""
    inst = h.sup.instances[name]
    for _ in range(100):
        if until():
            return
        stream = inst.streams[0]
        select.select([stream.fd], [], [], 1.0)
        h.sup.pipes.read(stream)
    raise AssertionError(f"never happened; output {said(h)[-5:]}")


def test_a_tty_type_is_one_stream_read_as_a_terminal(make: Callable[..., Harness]) -> None:
    h = make("web: app\nworker: app\n", tty=("web",))
    h.sup.pipes.strip_escapes = True  # as when keelrun's stdout is not a terminal
    h.start()
    web, worker = (h.sup.instances[n] for n in ("web.1", "worker.1"))
    assert [s.tty for s in h.kernel.spawned] == [True, False]
    assert web.terminal is not None and worker.terminal is None
    assert [s.name for s in web.streams] == ["stdout"]
    slave = h.kernel.spawned[0].out_w
    os.write(slave, b"one\r\n\x1b[1mtwo\x1b[0m\r\nbar 1%\r")  # a pty gives \r\n
    _pump(h, "web.1", lambda: "web.1 | two" in said(h))
    assert [line for line in said(h) if line.startswith("web.1")] == [
        "web.1 | one",
        "web.1 | two",  # not a terminal: escapes removed
    ]
    assert web.terminal.framer.pending == b"bar 1%\r"


def test_attach_then_the_process_ends(make: Callable[..., Harness]) -> None:
    h = make("web: app\n", tty=("web",))
    h.start()
    slave = h.kernel.spawned[0].out_w
    os.write(slave, b"hello\r\n(Pdb) ")
    _pump(h, "web.1", lambda: "web.1 | hello" in said(h))
    conn = FakeConnection()
    assert h.commands.attach({"name": "web", "rows": 10, "cols": 100}, conn) is None
    head, screen = bytes(conn.sent).split(b"\n", 1)
    assert b'"name": "web.1"' in head and screen == b"hello\r\n(Pdb) "
    assert h.events()[-1] == "pid 4242 attached to web.1"
    assert conn.on_data is not None
    conn.on_data(b'{"in": "c\\r"}\n')
    assert os.read(slave, 100) == b"c\n"  # what the app reads (the pty's ICRNL)
    again = FakeConnection()
    with pytest.raises(RequestError, match=r"already attached by pid 4242 since"):
        h.commands.attach({"name": "web.1"}, again)
    h.end("web.1", exited(0))
    assert conn.finished and conn.sent.endswith(b"\r\n[keelrun: web.1 exited]\r\n")
    events = h.events()
    at = events.index("pid 4242 detached from web.1")
    assert events[at + 1] == "web.1 (pid 101) exited with status 0"


def test_a_tty_spawn_that_fails_backs_off_and_cannot_be_attached(
    make: Callable[..., Harness],
) -> None:
    h = make("web: app\n", tty=("web",))
    h.kernel.spawn_errors = 1
    h.start()
    assert h.state("web.1") == "backoff"
    with pytest.raises(RequestError) as e:
        h.commands.attach({"name": "web.1"}, FakeConnection())
    assert (str(e.value), e.value.kind) == ("web.1 is not running (backoff)", "runtime")
    h.advance(1.0)
    assert h.state("web.1") == "running" and h.sup.instances["web.1"].terminal is not None
    h.kernel.signals.clear()
    h.commands.stop_all(signal.SIGTERM)
    h.obey()
    assert h.sup.instances["web.1"].terminal.ended
