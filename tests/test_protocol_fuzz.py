"""Fuzzing the control socket: random JSON and random bytes against one running keelrun.

Property: every request gets a reply line or a clean close within a bound, and
keelrun keeps answering `ps` with its formation alive afterwards.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support.control import TRAPPING, Keelrun, Runner
from support.wire import read_replies, recv_replies

pytestmark = pytest.mark.timeout(120)

REPLY_BOUND = 5.0  # seconds for one reply or close
FUZZ = settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keelrun]:
    """One keelrun for the module. `--restart always` and a high --max-restarts so
    that signals the fuzzer sends to the children cannot end the formation."""
    r = Runner(tmp_path_factory.mktemp("fuzz"))
    app = r.app(f"web: {TRAPPING}\nworker: {TRAPPING}\n")
    k = r.start(app, "-m", "web=2", "--restart", "always", "--max-restarts", "100000", "-t", "1")
    k.wait_ready("web.1", "web.2", "worker.1")
    yield k
    leftovers = r.close()
    assert not leftovers, f"processes left behind: {leftovers}"


def _exchange(path: str, data: bytes) -> list[dict[str, Any]] | None:
    """Send data, half-close, read the first reply line; None for a clean close."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(REPLY_BOUND)
        s.connect(path)
        started = time.monotonic()
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)  # no more request bytes: the server must not wait
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused mid-send: a reply or the close is still readable
        buf = recv_replies(s, first_only=True)
        assert time.monotonic() - started < REPLY_BOUND
    if not buf:
        return None
    line = buf.split(b"\n", 1)[0]
    reply = json.loads(line)
    assert isinstance(reply, dict)
    return [reply]


def _still_serving(k: Keelrun) -> None:
    assert k.proc.poll() is None, k.output()[-3000:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(REPLY_BOUND)
        s.connect(k.socket_path())
        s.sendall(b'{"v": 1, "cmd": "ps", "args": {}}\n')
        replies = read_replies(s)
    assert replies and replies[0]["ok"] is True
    assert isinstance(replies[0]["result"], list)


def _check_reply(reply: list[dict[str, Any]] | None) -> None:
    if reply is None:
        return
    first = reply[0]
    assert isinstance(first.get("ok"), bool), first
    if first["ok"] is False:
        assert isinstance(first["error"], str) and first["error"]
        assert first["kind"] in ("input", "runtime")


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
NAMES = st.lists(
    st.sampled_from(["web", "web.1", "web.2", "web.3", "worker", "worker.1", "nosuch", ""])
    | st.text(max_size=10),
    max_size=3,
)
SIGNALS = (
    st.sampled_from(["USR1", "SIGUSR2", "HUP", "TERM", "KILL", "STOP", "CONT", "0", "10", "-1"])
    | st.integers(-(2**70), 2**70)
    | st.text(max_size=8)
    | JSON
)
ARGS = st.fixed_dictionaries(
    {},
    optional={
        "names": NAMES | JSON,
        "lines": st.integers(-10, 2000) | JSON,
        "follow": st.booleans() | JSON,
        "signal": SIGNALS,
        "changes": st.lists(
            st.from_regex(r"\A(web|worker|nosuch)=[+-]?[0-3]\Z") | st.text(max_size=10),
            max_size=3,
        )
        | JSON,
    },
)
COMMANDS = ["ps", "ping", "scale", "stop", "restart", "signal", "logs", "reload"]
REQUESTS = st.fixed_dictionaries(
    {
        "cmd": st.sampled_from(
            ["ps", "ping", "scale", "stop", "restart", "signal", "logs", "reload"]
        )
        | st.text(max_size=10)
        | JSON,
    },
    optional={"v": st.just(1) | JSON, "args": ARGS | JSON},
)


def _harmless(request: Any) -> bool:
    """Everything but `stop` with no NAME (stopping keelrun is a correct reply to it)."""
    if not isinstance(request, dict) or request.get("cmd") != "stop" or request.get("v", 1) != 1:
        return True
    args = request.get("args", {})
    if not isinstance(args, dict):
        return True
    names = args.get("names", [])
    return not (isinstance(names, list) and not names)


@FUZZ
@given(request=REQUESTS.filter(_harmless))
def test_random_requests_get_a_reply_or_a_clean_close(fuzzed: Keelrun, request: dict) -> None:
    data = (json.dumps(request) + "\n").encode()
    _check_reply(_exchange(fuzzed.socket_path(), data))
    _still_serving(fuzzed)


@FUZZ
@given(value=JSON.filter(_harmless), newline=st.booleans())
def test_random_json_values_get_a_reply_or_a_clean_close(
    fuzzed: Keelrun, value: Any, newline: bool
) -> None:
    data = json.dumps(value).encode() + (b"\n" if newline else b"")
    reply = _exchange(fuzzed.socket_path(), data)
    _check_reply(reply)
    if newline and not isinstance(value, dict):  # a line that is not a request at all
        assert reply is not None and reply[0]["ok"] is False, (value, reply)
    _still_serving(fuzzed)


@FUZZ
@given(data=st.binary(max_size=4096))
def test_random_bytes_get_a_reply_or_a_clean_close(fuzzed: Keelrun, data: bytes) -> None:
    _check_reply(_exchange(fuzzed.socket_path(), data))
    _still_serving(fuzzed)


def test_fuzzed_keelrun_still_stops_cleanly(fuzzed: Keelrun, tmp_path: Path) -> None:
    """Last in the module: after all of the above, `keelrun stop` ends it with status 0."""
    _still_serving(fuzzed)
    r = fuzzed.client("stop")
    assert r.returncode == 0, r.stderr
    assert fuzzed.wait_exit(20) == 0
    assert not Path(fuzzed.socket_path()).exists()


# Digits of every script: "²" passes str.isdigit() but not int() (it once killed keelrun).
NUMERIC_TEXT = st.text(st.characters(categories=["Nd", "No", "Nl"]), min_size=1, max_size=4)


@settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(sig=NUMERIC_TEXT, prefix=st.sampled_from(["", "-", "SIG"]))
@example(sig="²", prefix="")
def test_signals_written_in_any_digits(runner: Runner, sig: str, prefix: str) -> None:
    """Its own keelrun (the crash it finds would end the module's one), a new one
    after a crash so that each example is judged alone."""
    if runner.started:
        try:
            _still_serving(runner.started[-1])
        except (OSError, AssertionError):
            runner.started[-1].wait_exit(15)  # crashed: on to a fresh keelrun
    if not runner.started or runner.started[-1].proc.poll() is not None:
        runner.start(runner.app(f"web: {TRAPPING}\n")).wait_ready("web.1")
    k = runner.started[-1]
    request = {"v": 1, "cmd": "signal", "args": {"signal": prefix + sig, "names": ["web"]}}
    reply = _exchange(k.socket_path(), (json.dumps(request) + "\n").encode())
    _check_reply(reply)
    _still_serving(k)
