"""The health and exit-policy keys of the config, as values and as pure parsers.

Each parser is ``(value, where) -> value`` and raises ``InputError(where, message)``
with a one-line message, so the config's table of keys can call it as it calls
its other checks. What the checks mean: README, "Health: readiness, liveness,
notify" and "Exit policy".
"""

# No ``from __future__ import annotations``: see keelrun/settings.py.

import math
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal, NamedTuple

from keelrun.errors import InputError

CheckKind = Literal["port", "log", "http", "exec", "notify"]

DEFAULT_READY_INTERVAL = 0.5
DEFAULT_PROBE_TIMEOUT = 2.0
DEFAULT_READY_TIMEOUT = 60.0
DEFAULT_HEALTH_INTERVAL = 10.0
DEFAULT_HEALTH_RETRIES = 3
DEFAULT_SUCCESS_CODES = frozenset({0})
MAX_RETRIES = 1000
MAX_SECONDS = 366 * 86400.0  # a year: anything longer is a typo, and timers stay sane

_READY_FORMS = '"port", "log:REGEX", "http:PATH", "exec:COMMAND" or "notify"'
_HEALTH_FORMS = '"port", "http:PATH" or "exec:COMMAND"'


# NamedTuples, not dataclasses: they are built on every start (see keelrun/settings.py).
class Check(NamedTuple):
    """One readiness or liveness check: ``kind`` and the argument that kind takes."""

    kind: CheckKind
    pattern: str | None = None  # log: the regex
    path: str | None = None  # http: the request target, starting with "/"
    command: str | None = None  # exec: run by /bin/sh -c

    @property
    def uses_port(self) -> bool:
        return self.kind in ("port", "http")


def show(value: object) -> str:
    """A value as TOML would spell it, for error messages."""
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return str(value)


def _parse_check(value: object, where: str, forms: str) -> Check:
    if not isinstance(value, str):
        raise InputError(where, f"expected {forms}, got {show(value)}")
    if value in ("port", "notify"):
        return Check(value)  # type: ignore[arg-type]
    kind, colon, arg = value.partition(":")
    if not colon or kind not in ("log", "http", "exec"):
        raise InputError(where, f"expected {forms}, got {show(value)}")
    if kind == "log":
        if not arg:
            raise InputError(where, 'empty pattern in "log:REGEX"')
        try:
            re.compile(arg)
        except re.error as e:
            raise InputError(where, f"invalid regular expression: {e}") from None
        return Check("log", pattern=arg)
    if kind == "http":
        if not arg.startswith("/"):
            raise InputError(where, f'the path of "http:PATH" starts with "/", got {show(value)}')
        if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in arg):
            raise InputError(
                where, f"the path of {show(value)} contains a blank or control character"
            )
        return Check("http", path=arg)
    if not arg.strip():
        raise InputError(where, 'empty command in "exec:COMMAND"')
    if "\0" in arg:
        raise InputError(where, 'a NUL character in "exec:COMMAND"')
    return Check("exec", command=arg)


def parse_ready(value: object, where: str) -> Check:
    """``ready``: port, log:REGEX, http:PATH, exec:COMMAND or notify."""
    return _parse_check(value, where, _READY_FORMS)


def parse_health(value: object, where: str) -> Check:
    """``health``: port, http:PATH or exec:COMMAND (a log line or a notify message
    says an app started, not that it still works)."""
    check = _parse_check(value, where, _HEALTH_FORMS)
    if check.kind in ("log", "notify"):
        raise InputError(
            where,
            f"{show(value)} is a readiness check (ready = ...); health takes {_HEALTH_FORMS}",
        )
    return check


def parse_seconds(value: object, where: str) -> float:
    """A duration > 0 in seconds: a number, or a string holding one."""
    return seconds(value, where, positive=True, at_most=MAX_SECONDS)


def seconds(value: object, where: str, *, positive: bool, at_most: float | None) -> float:
    """A number of seconds (or a string holding one), >= 0, or > 0 when ``positive``."""
    number: float
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise InputError(where, f"expected a number of seconds, got {show(value)}") from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    else:
        raise InputError(where, f"expected a number of seconds, got {show(value)}")
    too_big = at_most is not None and number > at_most
    if not math.isfinite(number) or number < 0 or (positive and number == 0) or too_big:
        bound = ("> 0" if positive else ">= 0") + (" (a year at most)" if at_most else "")
        raise InputError(where, f"expected a number of seconds {bound}, got {show(value)}")
    return number


def parse_watchdog(value: object, where: str) -> float:
    """``watchdog``: seconds, passed on as WATCHDOG_USEC (whole microseconds, at least 1 ms)."""
    seconds = parse_seconds(value, where)
    if seconds < 0.001:
        raise InputError(where, f"expected at least 0.001 seconds, got {show(value)}")
    return seconds


def _integer(value: object, where: str, low: int, high: int) -> int:
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?[0-9]{1,9}\s*", value):
        number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        raise InputError(where, f"expected an integer, got {show(value)}")
    if not low <= number <= high:
        raise InputError(where, f"expected an integer {low}-{high}, got {number}")
    return number


def parse_retries(value: object, where: str) -> int:
    """``health_retries``: failures in a row that make an instance unhealthy (1 or more)."""
    return _integer(value, where, 1, MAX_RETRIES)


def parse_success_codes(value: object, where: str) -> frozenset[int]:
    """``success_codes``: exit statuses 0-255 that count as success (128+N: death by signal N)."""
    items = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(items, list) or not items:
        raise InputError(
            where, f"expected an array of exit statuses such as [0, 3], got {show(value)}"
        )
    codes = set()
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int):
            raise InputError(where, f"expected exit statuses (integers 0-255), got {show(item)}")
        if not 0 <= item <= 255:
            raise InputError(where, f"an exit status is 0-255, got {item}")
        codes.add(item)
    return frozenset(codes)


def parse_exit_code_from(value: object, where: str, types: Collection[str]) -> str:
    """``exit_code_from`` / ``--exit-code-from``: a process type of the Procfile, not release."""
    if not isinstance(value, str) or not value.strip():
        raise InputError(where, f"expected a process type, got {show(value)}")
    name = value.strip()
    if name == "release":
        raise InputError(where, '"release" runs before the formation, not in it')
    if name not in types:
        from keelrun.formation import unknown_type  # only on this error path

        raise InputError(where, unknown_type(name, list(types)))
    return name


class HealthPlan(NamedTuple):
    """Everything one process type says about its health and exit."""

    ready: Check | None = None
    health: Check | None = None
    ready_interval: float = DEFAULT_READY_INTERVAL
    probe_timeout: float = DEFAULT_PROBE_TIMEOUT
    ready_timeout: float = DEFAULT_READY_TIMEOUT
    health_interval: float = DEFAULT_HEALTH_INTERVAL
    health_retries: int = DEFAULT_HEALTH_RETRIES
    watchdog: float | None = None
    success_codes: frozenset[int] = DEFAULT_SUCCESS_CODES

    @property
    def uses_notify(self) -> bool:
        """Types that get a NOTIFY_SOCKET: ready = "notify" or a watchdog."""
        return (self.ready is not None and self.ready.kind == "notify") or self.watchdog is not None

    @property
    def has_check(self) -> bool:
        """``health`` in `ps` is null without one of these."""
        return self.health is not None or self.watchdog is not None

    @property
    def uses_port(self) -> bool:
        return any(c is not None and c.uses_port for c in (self.ready, self.health))


Parser = Callable[[object, str], Any]

# Per-type keys: name -> (parser, default). keelrun/config/options.py declares
# them from this table; ProcessTypeSettings has a field of each name.
TYPE_KEYS: Mapping[str, tuple[Parser, Any]] = {
    "ready": (parse_ready, None),
    "health": (parse_health, None),
    "ready_interval": (parse_seconds, DEFAULT_READY_INTERVAL),
    "probe_timeout": (parse_seconds, DEFAULT_PROBE_TIMEOUT),
    "ready_timeout": (parse_seconds, DEFAULT_READY_TIMEOUT),
    "health_interval": (parse_seconds, DEFAULT_HEALTH_INTERVAL),
    "health_retries": (parse_retries, DEFAULT_HEALTH_RETRIES),
    "watchdog": (parse_watchdog, None),
    "success_codes": (parse_success_codes, DEFAULT_SUCCESS_CODES),
}
