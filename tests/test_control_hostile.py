"""Hostile clients on the control socket: the supervisor answers or closes, and carries on."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
from typing import Any

import pytest
from support.control import TRAPPING, Keelrun, Runner
from support.procs import alive
from support.wire import raw_request, read_replies

pytestmark = pytest.mark.timeout(60)

PROCFILE = f"web: {TRAPPING}\nworker: {TRAPPING}\n"


def _start(runner: Runner) -> Keelrun:
    k = runner.start(runner.app(PROCFILE))
    k.wait_ready("web.1", "worker.1")
    return k


def _healthy(k: Keelrun, pids: dict[str, int]) -> None:
    """keelrun still answers and its children are the same, alive."""
    assert k.proc.poll() is None, k.output()[-2000:]
    rows = k.ps()
    assert {n: r["pid"] for n, r in rows.items()} == pids
    assert all(alive(p) for p in pids.values())


def _pids(k: Keelrun) -> dict[str, int]:
    return {n: r["pid"] for n, r in k.ps().items()}


def _send(k: Keelrun, data: bytes) -> list[dict]:
    return raw_request(k.socket_path(), data, timeout=10)


def _req(cmd: Any, args: Any = None, **extra: Any) -> bytes:
    body: dict[str, Any] = {"v": 1, "cmd": cmd, **extra}
    if args is not None:
        body["args"] = args
    return (json.dumps(body) + "\n").encode()


BAD_REQUESTS = {
    "garbage": b"\x00\xff\xfe garbage \x80\x81\n",
    "not-json": b"{this is not json\n",
    "half-json": b'{"v": 1, "cmd": "ps"\n',
    "json-array": b'["ps"]\n',
    "json-string": b'"ps"\n',
    "json-number": b"42\n",
    "json-null": b"null\n",
    "empty-line": b"\n",
    "deep-nesting": b"[" * 20_000 + b"]" * 20_000 + b"\n",
    "unknown-cmd": _req("explode"),
    "cmd-not-string": _req(["ps"]),
    "no-cmd": b'{"v": 1}\n',
    "bad-version": b'{"v": 99, "cmd": "ps"}\n',
    "args-not-object": _req("ps", [1, 2]),
    "names-not-list": _req("stop", {"names": "web"}),
    "names-not-strings": _req("restart", {"names": [1, None]}),
    "lines-negative": _req("logs", {"lines": -5}),
    "lines-string": _req("logs", {"lines": "10"}),
    "lines-bool": _req("logs", {"lines": True}),
    "lines-huge": _req("logs", {"lines": 10**40}),
    "follow-not-bool": _req("logs", {"follow": "yes"}),
    "signal-bogus": _req("signal", {"signal": "BOGUS", "names": ["web"]}),
    "signal-list": _req("signal", {"signal": ["TERM"], "names": ["web"]}),
    "signal-huge": _req("signal", {"signal": 10**30, "names": ["web"]}),
    "signal-no-names": _req("signal", {"signal": "USR1", "names": []}),
    "unknown-name": _req("stop", {"names": ["nosuch"]}),
    "scale-not-list": _req("scale", {"changes": "web=2"}),
    "scale-bad-syntax": _req("scale", {"changes": ["web"]}),
    "scale-unknown-type": _req("scale", {"changes": ["nosuch=1"]}),
    "scale-float": _req("scale", {"changes": ["web=1.5"]}),
    "scale-5000-digits": _req("scale", {"changes": ["web=" + "9" * 5000]}),
    "scale-too-many": _req("scale", {"changes": ["web=1000000"]}),
    "signal-5000-digits": _req("signal", {"signal": "9" * 5000, "names": ["web"]}),
}


def test_malformed_requests_get_an_error_reply_and_harm_nothing(runner: Runner) -> None:
    k = _start(runner)
    pids = _pids(k)
    for label, data in BAD_REQUESTS.items():
        mark = k.mark()
        replies = _send(k, data)
        assert len(replies) == 1, (label, replies)
        reply = replies[0]
        assert reply["ok"] is False and reply["kind"] == "input", (label, reply)
        assert isinstance(reply["error"], str) and reply["error"], label
        assert "\n" not in reply["error"], label
        # Nothing was stopped, restarted or scaled by it.
        assert k.ps().keys() == pids.keys(), label
        assert not any("got TERM" in line for line in k.lines[mark:]), (label, k.lines[mark:])
    _healthy(k, pids)


# Requests that once made a parser raise ValueError out of the loop (keelrun died).
CRASHERS = {
    "signal-unicode-digit": _req("signal", {"signal": "²", "names": ["web"]}),
    "signal-unicode-digit-number": _req("signal", {"signal": "1²", "names": ["web"]}),
}


@pytest.mark.parametrize("label", list(CRASHERS))
def test_requests_that_raise_inside_a_handler_get_an_error_reply(
    runner: Runner, label: str
) -> None:
    k = _start(runner)
    pids = _pids(k)
    replies = _send(k, CRASHERS[label])
    assert len(replies) == 1 and replies[0]["ok"] is False, replies
    _healthy(k, pids)


def test_an_oversized_request_gets_its_error_reply(runner: Runner) -> None:
    """The reply is not lost to a reset: keelrun reads the rest of the request
    (and throws it away) before it closes."""
    k = _start(runner)
    pids = _pids(k)
    for size in (64 * 1024 + 1, 70_000, 1 << 20, 10 << 20):
        for end in (b"\n", b""):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(10)
                s.connect(k.socket_path())
                s.sendall(b"x" * size + end)
                s.shutdown(socket.SHUT_WR)
                replies = read_replies(s)
            assert replies == [
                {"ok": False, "error": "request longer than 65536 bytes", "kind": "input"}
            ], (size, end, replies)
    _healthy(k, pids)


def test_a_flood_past_the_discard_bound_is_closed(runner: Runner) -> None:
    k = _start(runner)
    pids = _pids(k)
    started = time.monotonic()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(k.socket_path())
        chunk = b"x" * (1 << 20)
        sent = 0
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for _ in range(64):
                s.sendall(chunk)
                sent += len(chunk)
    assert sent < 64 << 20, "keelrun read 64 MiB of an oversized request"
    assert time.monotonic() - started < 10
    _healthy(k, pids)


@pytest.mark.timeout(20)
def test_a_silent_client_does_not_block_others_and_is_closed(runner: Runner) -> None:
    k = _start(runner)
    pids = _pids(k)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.settimeout(20)
        silent.connect(k.socket_path())
        t0 = time.monotonic()
        # Served meanwhile: the raw socket and the real client.
        _healthy(k, pids)
        r = k.client("ps")
        assert r.returncode == 0 and "web.1" in r.stdout
        # A half-sent request does not reset the idle timer either.
        silent.sendall(b'{"v": 1, "cmd"')
        replies = read_replies(silent)
        waited = time.monotonic() - t0
    assert 9 <= waited < 15, waited
    assert len(replies) == 1 and replies[0]["ok"] is False
    assert "no request" in replies[0]["error"]
    _healthy(k, pids)


def test_two_hundred_clients_at_once(runner: Runner) -> None:
    k = _start(runner)
    pids = _pids(k)
    path = k.socket_path()
    n = 200
    results: list[Any] = [None] * n
    go = threading.Barrier(n)

    def client(i: int) -> None:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(15)
                go.wait(10)
                s.setblocking(True)  # a full backlog makes connect wait, not fail
                s.connect(path)
                s.settimeout(15)
                # Refused before we wrote: the reply or a close follows.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    s.sendall(_req("ps", {}))
                results[i] = read_replies(s)
        except BaseException as e:  # recorded and asserted on below
            results[i] = e

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "a client hung"
    answered = refused = closed = 0
    for res in results:
        assert not isinstance(res, BaseException), repr(res)
        if not res:
            closed += 1
        elif res[0]["ok"]:
            assert {r["name"] for r in res[0]["result"]} == set(pids)
            answered += 1
        else:
            assert "too many connections" in res[0]["error"], res
            refused += 1
    assert answered + refused + closed == n
    assert answered >= 64, (answered, refused, closed)
    # Room is always made by closing a connection that has not sent a whole
    # request yet: nobody is refused while such a one exists.
    assert refused == 0, (answered, refused, closed)
    _healthy(k, pids)
    r = k.client("ps")
    assert r.returncode == 0


@pytest.mark.parametrize("how", ["silent", "half-a-line"])
def test_idle_connections_cannot_lock_the_socket_out(runner: Runner, how: str) -> None:
    """200 connections that never complete a request: `keelrun ps` still gets in (slowloris)."""
    k = _start(runner)
    pids = _pids(k)
    path = k.socket_path()
    hogs: list[socket.socket] = []
    try:
        for _ in range(200):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(True)  # a full backlog makes connect wait, not fail
            s.connect(path)
            if how == "half-a-line":
                s.sendall(b'{"v": 1, "cmd": "p')
            hogs.append(s)
        for _ in range(3):  # again and again: each real request gets a slot
            t0 = time.monotonic()
            r = k.client("ps", "--json")
            assert r.returncode == 0, r.stderr
            assert {row["name"] for row in json.loads(r.stdout)} == set(pids)
            assert time.monotonic() - t0 < 5
        # The oldest hogs were closed without a reply to make room; none got an answer.
        closed = 0
        for s in hogs:
            s.setblocking(False)
            try:
                data = s.recv(4096)
            except BlockingIOError:
                continue
            assert data == b"", data
            closed += 1
        assert closed == 200 - 64 + 1  # one more for the first real request; it then left room
    finally:
        for s in hogs:
            s.close()
    _healthy(k, pids)


# On USR1, 8 MB of output: more than keelrun may hold for one follower (4 MiB).
FLOOD = (
    "trap 'head -c 8000000 /dev/zero | tr \"\\\\0\" x | fold -w 1000; echo; echo flood-done' USR1; "
    'echo "$PS up port=$PORT"; while :; do sleep 30 & wait $!; done'
)


def test_a_follower_that_never_reads_is_dropped(runner: Runner) -> None:
    k = runner.start(runner.app(f"flood: {FLOOD}\n"))
    k.wait_ready("flood.1")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(20)
        s.connect(k.socket_path())
        s.sendall(_req("logs", {"follow": True, "lines": 0}))
        first = s.recv(4096)  # the subscription reply: we are listening now
        assert json.loads(first.split(b"\n")[0])["ok"] is True
        # Never reading while keelrun produces 8 MB for us: it must drop us
        # instead of buffering without end, and keep running.
        assert k.client("signal", "USR1", "flood").returncode == 0
        k.wait_for_line(r"flood\.1\s+\| flood-done$", 20)
        received = 0
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            received += len(chunk)
    assert received < 8_000_000
    assert k.ps()["flood.1"]["state"] == "running"


# 2 MB of history in 1000 lines: a `logs` reply larger than a socket buffer.
BIG = "head -c 2000000 /dev/zero | tr '\\0' y | fold -w 2000; echo; echo big-done; exec sleep 600"


def test_a_half_closed_client_still_gets_the_whole_reply(runner: Runner) -> None:
    k = runner.start(runner.app(f"big: {BIG}\n"))
    k.wait_for_line(r"big\.1\s+\| big-done$")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(k.socket_path())
        s.sendall(_req("logs", {"lines": 1000, "names": ["big"]}))
        s.shutdown(socket.SHUT_WR)  # the request is complete; we only read from now on
        # Without reading, the reply cannot be flushed. keelrun must wait for us, not
        # hang up: a hang-up before we read would be seen here within the bound.
        poller = select.poll()
        poller.register(s, select.POLLHUP | select.POLLRDHUP)
        hung_up = poller.poll(1000)
        replies = read_replies(s)
    assert not hung_up, "keelrun closed the connection with the reply half written"
    assert len(replies) == 1002 and replies[-1] == {"ok": True, "end": True}
