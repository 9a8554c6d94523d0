"""The server side of attach (keelrun/supervisor/attach.py), in one real loop.

Each test has a real tty child (terminal.py), its master read in the loop
through the Terminal's framer as the log path reads it, and attach clients on
real socketpairs (support/peer.py plays the control connection).
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
from collections.abc import Callable

import pytest
from support.peer import SocketPeer
from support.ttys import TtyRun, TtySet, child

from keelrun.errors import RequestError
from keelrun.loop import Loop
from keelrun.supervisor import attach as attach_mod
from keelrun.supervisor.attach import AttachSession, attach, parse_attach_args
from keelrun.supervisor.terminal import MAX_PENDING_INPUT, Terminal


@pytest.fixture
def ttys():  # type: ignore[no-untyped-def]
    s = TtySet()
    yield s
    problems = s.finish()
    assert not problems, "; ".join(problems)


class Client:
    """The test's end of one attach connection, served by the same loop."""

    def __init__(self, bench: Bench) -> None:
        self.sock, server_end = socket.socketpair()
        self.sock.setblocking(False)
        self.received = b""
        self.eof = False
        self.reading = True
        self.outgoing = b""
        self.loop = bench.loop
        self.peer = SocketPeer(bench.loop, server_end)
        self._update()

    def _update(self) -> None:
        events = (selectors.EVENT_READ if self.reading and not self.eof else 0) | (
            selectors.EVENT_WRITE if self.outgoing else 0
        )
        self.loop.set_events(self.sock.fileno(), events, self._event)

    def _event(self, mask: int) -> None:
        if mask & selectors.EVENT_WRITE:
            with contextlib.suppress(BlockingIOError):
                self.outgoing = self.outgoing[self.sock.send(self.outgoing) :]
        if mask & selectors.EVENT_READ:
            try:
                data = self.sock.recv(1 << 20)
            except BlockingIOError:
                data = None
            except OSError:
                data = b""
            if data == b"":
                self.eof = True
            self.received += data or b""
        self._update()

    def send(self, msg: dict[str, object] | bytes) -> None:
        """Queued, and written as the loop runs."""
        self.outgoing += msg if isinstance(msg, bytes) else (json.dumps(msg) + "\n").encode()
        self._update()

    def stop_reading(self) -> None:
        self.reading = False
        self._update()

    def reply(self) -> dict[str, object]:
        return json.loads(self.received.split(b"\n", 1)[0])

    def close(self) -> None:
        self.loop.remove(self.sock.fileno())
        self.sock.close()


class Bench:
    def __init__(self, run: TtyRun) -> None:
        self.run = run
        self.loop = Loop()
        self.term = Terminal(self.loop, run.master)
        run.framer = self.term.framer  # TtyRun reads through the Terminal's framer
        self.loop.add_reader(run.master, self._readable)
        self._until: Callable[[], object] | None = None
        self.loop.after_iteration(self._check)

    def _readable(self, mask: int) -> None:
        self.run.read_once(0)
        if self.run.eof:
            self.loop.remove(self.run.master)

    def _check(self) -> None:
        if self._until is not None and self._until():
            self.loop.stop()

    def until(self, predicate: Callable[[], object], what: str, timeout: float = 10.0) -> None:
        if predicate():
            return
        self._until = predicate
        timer = self.loop.call_later(timeout, self.loop.stop)
        self.loop.run()
        timer.cancel()
        self._until = None
        assert predicate(), f"timed out waiting for {what}; lines {self.run.lines[-10:]!r}"

    def attach(self, rows: int = 24, cols: int = 80, tty: str = "/dev/pts/99") -> Client:
        client = Client(self)
        request = parse_attach_args({"name": "web.1", "rows": rows, "cols": cols, "tty": tty})
        attach(
            self.term,
            client.peer,
            request,
            name="web.1",
            pid=self.run.pid,
            client=attach_mod.describe_client(4242, tty),
            history=self.run.lines[-(rows - 1) :],
        )
        return client

    def finish(self) -> None:
        """End the child and read its pty to the end (the terminal ends with it)."""
        if not self.run.eof:
            os.killpg(self.run.pid, signal.SIGTERM)
            self.until(lambda: self.run.eof, "EOF of the pty")
        self.run.exit_status()
        self.loop.close()


def test_attach_sends_reply_history_and_pending_line_then_live_output(ttys: TtySet) -> None:
    bench = Bench(ttys.spawn(child("prompt")))
    bench.until(lambda: bench.term.framer.pending == b"name? ", "the prompt")
    client = bench.attach(rows=30, cols=90)
    bench.until(lambda: b"name? " in client.received, "history")
    reply = client.reply()
    assert reply == {
        "ok": True,
        "result": {"name": "web.1", "pid": bench.run.pid, "detach": "ctrl-]"},
    }
    assert client.received.split(b"\n", 1)[1] == b"ask\r\nname? "
    client.send({"in": "pat\r"})
    bench.until(lambda: bench.run.eof, "the child's end")
    assert b"hello pat\r\n" in client.received  # live output, raw as the pty gave it
    assert bench.run.lines[-2:] == [b"name? pat", b"hello pat"]  # and in the log path
    bench.until(lambda: client.eof, "the end of the attach")
    assert client.received.endswith(b"\r\n[keelrun: web.1 exited]\r\n")
    assert bench.term.session is None
    bench.finish()


def test_window_size_follows_the_client(ttys: TtySet) -> None:
    bench = Bench(ttys.spawn(child("winch")))
    bench.until(lambda: b"size 24x80" in bench.run.lines, "the first size")
    client = bench.attach(rows=33, cols=111)
    bench.until(lambda: b"size 33x111" in bench.run.lines, "the attach size")
    client.send({"resize": [50, 160]})
    bench.until(lambda: b"size 50x160\r\n" in client.received, "the resize")
    client.close()
    bench.finish()


def test_second_attach_is_refused_naming_the_first(ttys: TtySet) -> None:
    bench = Bench(ttys.spawn(child("winch")))
    first = bench.attach(tty="/dev/pts/7")
    with pytest.raises(RequestError) as e:
        bench.attach(tty="/dev/pts/8")
    assert e.value.kind == "runtime"
    assert "web.1 is already attached by pid 4242 on /dev/pts/7 since" in str(e.value)
    first.close()
    bench.until(lambda: bench.term.session is None, "the first client's end")
    second = bench.attach(tty="/dev/pts/8")  # free again
    second.send({"in": "again\r"})
    bench.until(lambda: b"got: again\r\n" in second.received, "the echo")
    second.close()
    bench.finish()


def test_client_gone_leaves_the_instance_running(ttys: TtySet) -> None:
    bench = Bench(ttys.spawn(child("winch")))
    client = bench.attach()
    client.send({"in": "one\r"})
    bench.until(lambda: b"got: one" in bench.run.lines, "the first line")
    client.close()
    bench.until(lambda: bench.term.session is None, "the detach")
    assert not bench.run.eof
    bench.term.write(b"two\r")  # the instance still reads its terminal
    bench.until(lambda: b"got: two" in bench.run.lines, "a line after the client left")
    bench.finish()


@pytest.mark.parametrize(
    "bad",
    [b"not json\n", b'{"resize": [0, 80]}\n', b'{"in": 5}\n', b'{"what": 1}\n', b"[1]\n"],
    ids=["garbage", "zero-rows", "in-not-text", "unknown", "not-object"],
)
def test_a_bad_message_ends_the_attach_not_the_instance(ttys: TtySet, bad: bytes) -> None:
    bench = Bench(ttys.spawn(child("winch")))
    client = bench.attach()
    client.send(bad)
    bench.until(lambda: client.eof, "the end of the attach")
    assert b"[keelrun: web.1 detached: " in client.received
    assert bench.term.session is None and not bench.run.eof
    bench.finish()


def test_an_endless_message_ends_the_attach(ttys: TtySet) -> None:
    bench = Bench(ttys.spawn(child("winch")))
    client = bench.attach()
    client.send(b'{"in": "' + b"x" * (attach_mod.MAX_MESSAGE + 10))
    bench.until(lambda: client.eof, "the end of the attach")
    assert b"message longer than" in client.received
    bench.finish()


def test_keystrokes_not_utf8_reach_the_app_as_bytes(ttys: TtySet) -> None:
    bench = Bench(ttys.spawn('python3 -c "import sys; print(sys.stdin.buffer.readline())"'))
    client = bench.attach()
    client.send({"in": b"\xff\xfe ok\r".decode("utf-8", "surrogateescape")})
    bench.until(lambda: bench.run.eof, "the child's end")
    assert bench.run.lines[-1] == b"b'\\xff\\xfe ok\\n'"
    client.close()
    bench.finish()


def test_a_client_that_does_not_read_is_dropped_and_the_log_path_goes_on(
    ttys: TtySet,
) -> None:
    n = 150_000  # ~8 MB: more than the socket buffers and MAX_PENDING_REPLY together
    bench = Bench(ttys.spawn(child("flood", str(n), "--on-input")))
    client = bench.attach()
    client.stop_reading()
    detached: list[str] = []
    session = bench.term.session
    assert isinstance(session, AttachSession)
    session.on_detached = lambda s: detached.append(s.name)
    client.send({"in": "go\r"})
    bench.until(lambda: bench.run.eof, "the flood's end", timeout=40)
    assert detached == ["web.1"] and bench.term.session is None
    lines = bench.run.lines
    assert lines[lines.index(b"go") + 1 :] == [
        f"line {i:07d} ".encode() + b"x" * 40 for i in range(n)
    ]
    client.close()
    bench.finish()


def test_keystrokes_the_app_does_not_read_pause_the_client(ttys: TtySet) -> None:
    paste = ("y" * 99 + "\n") * 50  # 5 KB messages, as a paste comes
    count = 4 * MAX_PENDING_INPUT // len(paste)
    run = ttys.spawn(child("sink", str(count * len(paste))))
    bench = Bench(run)
    bench.until(lambda: b"ready" in run.lines, "ready")
    client = bench.attach()
    paused: list[bool] = []
    real = client.peer.set_reading
    client.peer.set_reading = lambda on: (paused.append(on), real(on))  # type: ignore[method-assign]
    for _ in range(count):
        client.send({"in": paste})
    bench.until(lambda: paused == [False], "the pause")
    os.kill(run.pid, signal.SIGUSR1)  # the app starts reading
    bench.until(lambda: any(x.startswith(b"read ") for x in run.lines), "the app's count")
    # Paused, resumed as the app read (maybe paused again as the rest came), resumed.
    assert paused[-1] and paused == [False, True] * (len(paused) // 2)
    assert run.lines[-1] == f"read {count * len(paste)}".encode()
    client.close()
    bench.finish()


def test_attach_to_an_ended_terminal_is_refused(ttys: TtySet) -> None:
    bench = Bench(ttys.spawn("true"))
    bench.until(lambda: bench.run.eof, "EOF")
    with pytest.raises(RequestError, match=r"web\.1 is not running"):
        bench.attach()
    bench.finish()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({}, "attach needs the name of one instance"),
        ({"name": ""}, "attach needs the name of one instance"),
        ({"name": "w", "rows": 0}, "rows must be an integer from 1 to 65535"),
        ({"name": "w", "cols": True}, "cols must be an integer from 1 to 65535"),
        ({"name": "w", "cols": 70000}, "cols must be an integer from 1 to 65535"),
        ({"name": "w", "tty": 5}, "tty must be a terminal name"),
    ],
)
def test_request_arguments_are_checked(args: dict[str, object], message: str) -> None:
    with pytest.raises(RequestError) as e:
        parse_attach_args(args)
    assert (str(e.value), e.value.kind) == (message, "input")


def test_defaults_and_the_client_name_is_one_line() -> None:
    req = parse_attach_args({"name": "web.1", "tty": "/dev/pts/1\n\x1b[2J"})
    assert (req.rows, req.cols) == (24, 80)
    assert req.tty == "/dev/pts/1\\n\\x1b[2J"


@pytest.mark.parametrize(
    ("name", "matches", "outcome"),
    [
        ("web.1", [("web.1", True)], "web.1"),
        ("web", [("web.1", True)], "web.1"),  # a type with one instance
        (
            "web",
            [("web.1", True), ("web.2", True)],
            'input: "web" has 2 instances: attach to one of web.1, web.2',
        ),
        (
            "worker.1",
            [("worker.1", False)],
            "input: worker.1 does not run on a terminal: set"
            ' tty = true for process type "worker" (or start keelrun with --tty worker)',
        ),
        ("clock", [], 'runtime: "clock" has no instance to attach to'),
    ],
)
def test_choose_instance(name: str, matches: list[tuple[str, bool]], outcome: str) -> None:
    try:
        got = attach_mod.choose_instance(name, matches)
    except RequestError as e:
        got = f"{e.kind}: {e}"
    assert got == outcome
