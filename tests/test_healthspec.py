"""The health and exit-policy keys: every value parsed, every mistake one line naming the key."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keelrun.errors import InputError
from keelrun.healthspec import (
    TYPE_KEYS,
    Check,
    HealthPlan,
    parse_exit_code_from,
    parse_health,
    parse_ready,
    parse_retries,
    parse_seconds,
    parse_success_codes,
    parse_watchdog,
)

WHERE = "pyproject.toml: tool.keelrun.processes.web.ready"


@pytest.mark.parametrize(
    ("value", "check"),
    [
        ("port", Check("port")),
        ("notify", Check("notify")),
        ("log:Listening at: http", Check("log", pattern="Listening at: http")),
        ("log:a:b", Check("log", pattern="a:b")),
        ("http:/health", Check("http", path="/health")),
        ("http:/ready?full=1", Check("http", path="/ready?full=1")),
        ("exec:pg_isready -h $DB", Check("exec", command="pg_isready -h $DB")),
        ("exec:a:b", Check("exec", command="a:b")),
    ],
)
def test_ready_values(value: str, check: Check) -> None:
    assert parse_ready(value, WHERE) == check


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("tcp", 'expected "port", "log:REGEX", "http:PATH", "exec:COMMAND" or "notify", got "tcp"'),
        (
            "Port",
            'expected "port", "log:REGEX", "http:PATH", "exec:COMMAND" or "notify", got "Port"',
        ),
        (5000, 'expected "port", "log:REGEX", "http:PATH", "exec:COMMAND" or "notify", got 5000'),
        (True, 'expected "port", "log:REGEX", "http:PATH", "exec:COMMAND" or "notify", got true'),
        ("log:", 'empty pattern in "log:REGEX"'),
        ("log:(", "invalid regular expression: missing ), unterminated subpattern at position 0"),
        ("http:health", 'the path of "http:PATH" starts with "/", got "http:health"'),
        ("http:", 'the path of "http:PATH" starts with "/", got "http:"'),
        ("http:/a b", 'the path of "http:/a b" contains a blank or control character'),
        ("http:/a\nb", 'the path of "http:/a\\nb" contains a blank or control character'),
        ("exec:", 'empty command in "exec:COMMAND"'),
        ("exec:   ", 'empty command in "exec:COMMAND"'),
        ("exec:a\0b", 'a NUL character in "exec:COMMAND"'),
        (
            "notify:x",
            'expected "port", "log:REGEX", "http:PATH", "exec:COMMAND" or "notify", got "notify:x"',
        ),
    ],
)
def test_ready_errors_name_the_key_on_one_line(value: object, message: str) -> None:
    with pytest.raises(InputError) as e:
        parse_ready(value, WHERE)
    assert str(e.value) == f"{WHERE}: {message}"
    assert "\n" not in str(e.value) and e.value.exit_status == 2


def test_health_takes_port_http_exec_only() -> None:
    assert parse_health("port", "k") == Check("port")
    assert parse_health("http:/h", "k") == Check("http", path="/h")
    assert parse_health("exec:true", "k") == Check("exec", command="true")
    for value in ("notify", "log:x"):
        with pytest.raises(InputError) as e:
            parse_health(value, "x.toml: processes.web.health")
        assert "is a readiness check" in str(e.value) and str(e.value).startswith(
            "x.toml: processes"
        )
    with pytest.raises(InputError, match=r'health takes|expected "port", "http:PATH"'):
        parse_health("tcp", "k")


@given(st.one_of(st.text(max_size=40), st.integers(), st.none(), st.lists(st.integers())))
def test_parsers_raise_nothing_but_input_errors(value: object) -> None:
    for key, (parser, _default) in TYPE_KEYS.items():
        try:
            parser(value, key)
        except InputError as e:
            assert "\n" not in str(e) and str(e).startswith(f"{key}: ")


def test_seconds() -> None:
    assert parse_seconds(0.5, "k") == 0.5
    assert parse_seconds(10, "k") == 10.0
    assert parse_seconds(" 2.5 ", "k") == 2.5
    for bad in (0, -1, "x", float("nan"), float("inf"), True, None, [1], 10**9):
        with pytest.raises(InputError, match=r"^k: expected a number of seconds"):
            parse_seconds(bad, "k")


def test_watchdog_at_least_a_millisecond() -> None:
    assert parse_watchdog(30, "w") == 30.0
    with pytest.raises(InputError, match=r"at least 0.001 seconds"):
        parse_watchdog(0.0001, "w")


def test_retries() -> None:
    assert parse_retries(3, "r") == 3
    assert parse_retries("5", "r") == 5
    for bad in (0, -2, 1.5, "x", True, 10**6):
        with pytest.raises(InputError, match=r"^r: expected an integer"):
            parse_retries(bad, "r")


def test_success_codes() -> None:
    assert parse_success_codes([0, 3], "s") == frozenset({0, 3})
    assert parse_success_codes(0, "s") == frozenset({0})
    assert parse_success_codes([143, 0, 143], "s") == frozenset({0, 143})
    for bad, message in (
        ([], "expected an array of exit statuses"),
        ("0,3", "expected an array of exit statuses"),
        ([0, 256], "an exit status is 0-255, got 256"),
        ([-1], "an exit status is 0-255, got -1"),
        ([True], "expected exit statuses (integers 0-255), got true"),
        (["0"], 'expected exit statuses (integers 0-255), got "0"'),
    ):
        with pytest.raises(InputError) as e:
            parse_success_codes(bad, "s")
        assert message in str(e.value)


def test_exit_code_from_names_a_type_of_the_procfile() -> None:
    types = ("web", "worker", "e2e")
    assert parse_exit_code_from("e2e", "--exit-code-from", types) == "e2e"
    with pytest.raises(
        InputError,
        match=r'^--exit-code-from: no process type "e2" in the Procfile; did you mean "e2e"\?$',
    ):
        parse_exit_code_from("e2", "--exit-code-from", types)
    with pytest.raises(InputError, match="runs before the formation"):
        parse_exit_code_from("release", "exit_code_from", (*types, "release"))
    with pytest.raises(InputError, match="expected a process type"):
        parse_exit_code_from(3, "exit_code_from", types)


def test_plan_defaults_and_derived_facts() -> None:
    plan = HealthPlan()
    assert (plan.ready_interval, plan.probe_timeout, plan.ready_timeout) == (0.5, 2.0, 60.0)
    assert (plan.health_interval, plan.health_retries, plan.watchdog) == (10.0, 3, None)
    assert plan.success_codes == {0}
    assert not plan.uses_notify and not plan.has_check and not plan.uses_port
    notify = HealthPlan(ready=Check("notify"))
    assert notify.uses_notify and not notify.has_check
    watchdog = HealthPlan(watchdog=5.0)
    assert watchdog.uses_notify and watchdog.has_check
    http = HealthPlan(health=Check("http", path="/"))
    assert http.has_check and http.uses_port and not http.uses_notify
    for key, (_parser, default) in TYPE_KEYS.items():
        assert getattr(plan, key) == default
