"""The http probe against real servers: answers, refusals, resets, stalls, garbage."""

from __future__ import annotations

import itertools
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.loopkit import Kit
from support.ports import free_port

from keelrun.supervisor.httpprobe import HttpProbe, NotHttp, final_status, request_bytes
from keelrun.supervisor.probeapi import ProbeResult

pytestmark = pytest.mark.timeout(30)


def serve(kit: Kit, mode: str, *args: str) -> int:
    port = free_port()
    child = kit.python("netserver.py", str(port), mode, *args)
    kit.run_until(lambda: child.saw("listening"), 10, f"netserver {mode} listening")
    return port


def probe_once(kit: Kit, port: int, path: str = "/health", timeout: float = 2.0) -> ProbeResult:
    results: list[ProbeResult] = []
    probe = HttpProbe(kit.loop, port, path, timeout)
    probe.start(results.append)
    assert not results, "a result never comes from inside start()"
    kit.run_until(lambda: results, timeout + 5, "the probe's result")
    assert len(results) == 1 and not probe.running
    return results[0]


@pytest.mark.parametrize(
    ("code", "ok"), [("200", True), ("204", True), ("302", True), ("404", False), ("503", False)]
)
def test_status_code_decides(kit: Kit, code: str, ok: bool) -> None:
    port = serve(kit, "http", code)
    result = probe_once(kit, port)
    assert result == ProbeResult(ok, f"HTTP {code}")


def test_the_request_is_a_get_of_the_path(kit: Kit) -> None:
    port = free_port()
    child = kit.python("netserver.py", str(port), "log")
    kit.run_until(lambda: child.saw("listening"), 10, "listening")
    assert probe_once(kit, port, "/health/ready?full=1").ok
    kit.run_until(lambda: child.saw("GET"), 5, "the request line printed")
    assert "GET /health/ready?full=1 HTTP/1.0" in child.lines


def test_connection_refused(kit: Kit) -> None:
    result = probe_once(kit, free_port())
    assert result == ProbeResult(False, "connection refused")


def test_reset_by_the_server(kit: Kit) -> None:
    port = serve(kit, "reset")
    result = probe_once(kit, port)
    assert not result.ok
    assert "reset" in result.detail or "closed" in result.detail


def test_slow_answer_byte_by_byte_succeeds(kit: Kit) -> None:
    port = serve(kit, "slow")
    assert probe_once(kit, port) == ProbeResult(True, "HTTP 200")


def test_garbage_is_a_failure(kit: Kit) -> None:
    port = serve(kit, "garbage")
    assert probe_once(kit, port) == ProbeResult(False, "not an HTTP answer: hello there\\r")


def test_partial_status_line_then_close(kit: Kit) -> None:
    port = serve(kit, "partial")
    assert probe_once(kit, port) == ProbeResult(
        False, "connection closed with an incomplete answer"
    )


def test_interim_1xx_answer_is_skipped(kit: Kit) -> None:
    port = serve(kit, "hints", "204")
    assert probe_once(kit, port) == ProbeResult(True, "HTTP 204")


@pytest.mark.parametrize("mode", ["hang", "listen"])
def test_no_answer_times_out_without_blocking_the_loop(kit: Kit, mode: str) -> None:
    port = serve(kit, mode)
    ticks: list[float] = []

    def tick() -> None:
        ticks.append(time.monotonic())
        kit.loop.call_later(0.01, tick)

    tick()
    started = time.monotonic()
    result = probe_once(kit, port, timeout=0.5)
    took = time.monotonic() - started
    assert result == ProbeResult(False, "no answer within 0.5s")
    assert 0.45 <= took < 3
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert len(ticks) > 10 and max(gaps) < 0.25, "the loop kept running during the probe"


def test_cancel_closes_the_socket_and_never_calls_back(kit: Kit) -> None:
    port = serve(kit, "hang")
    results: list[ProbeResult] = []
    probe = HttpProbe(kit.loop, port, "/", 0.3)
    probe.start(results.append)
    kit.run_for(0.05)
    probe.cancel()
    kit.run_for(0.5)
    assert results == [] and not probe.running


def test_probe_runs_again_after_a_result(kit: Kit) -> None:
    port = serve(kit, "http", "200")
    probe = HttpProbe(kit.loop, port, "/", 2)
    for _ in range(3):
        results: list[ProbeResult] = []
        probe.start(results.append)
        kit.run_until(lambda r=results: r, 5, "a result")
        assert results == [ProbeResult(True, "HTTP 200")]


def test_connect_only_mode(kit: Kit) -> None:
    port = serve(kit, "listen")
    results: list[ProbeResult] = []
    HttpProbe(kit.loop, port, None, 1).start(results.append)
    kit.run_until(lambda: results, 5, "a result")
    assert results == [ProbeResult(True, f"port {port} accepts connections")]


# -- the pure parts -------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "code"),
    [
        (b"HTTP/1.1 200 OK\r\n", 200),
        (b"HTTP/1.0 204\r\n", 204),
        (b"HTTP/1.1 301 Moved\n", 301),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 500 Oops\r\n", 500),
        (b"HTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\nHTTP/1.1 200 OK\r\n", 200),
        (b"HTTP/1.1 20", None),
        (b"HTT", None),
        (b"", None),
        (b"HTTP/1.1 103 Early Hints\r\nLink: x\r\n", None),
    ],
)
def test_final_status(head: bytes, code: int | None) -> None:
    assert final_status(head) == code


@pytest.mark.parametrize(
    "head", [b"hello\n", b"<html>", b"HTTP/1.1 2x0 OK\r\n", b"HTTP/1.1 099 x\r\n"]
)
def test_final_status_rejects_garbage(head: bytes) -> None:
    with pytest.raises(NotHttp):
        final_status(head)


@given(st.binary(max_size=300))
def test_final_status_never_fails_otherwise(head: bytes) -> None:
    try:
        code = final_status(head)
    except NotHttp:
        return
    assert code is None or 200 <= code <= 999


def test_request_bytes_quotes_what_a_request_line_cannot_hold() -> None:
    req = request_bytes("/héalth?q=a b", 5000)
    assert req.startswith(b"GET /h%C3%A9alth?q=a%20b HTTP/1.0\r\nHost: 127.0.0.1:5000\r\n")
    assert req.endswith(b"\r\n\r\n")
