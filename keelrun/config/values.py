"""Value checkers: ``check(value, where) -> typed value`` or an InputError naming ``where``.

A value comes as TOML gave it (str, int, float, bool, list, table) or as the
text of a flag or KEELRUN_ variable; every checker accepts both, so that one
option is checked the same way from every source. The health keys' checkers
live in keelrun/healthspec.py, next to the values they make.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, cast

from keelrun.errors import InputError, InputErrors
from keelrun.healthspec import MAX_SECONDS, seconds, show
from keelrun.settings import MAX_COUNT

Checker = Callable[[object, str], Any]

RESTART_POLICIES = ("on-failure", "always", "never")
LOG_FORMATS = ("text", "json")
MAX_PORT = 65535


def to_int(value: object, where: str, minimum: int = 0, maximum: int | None = None) -> int:
    if isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"[+-]?[0-9]{1,18}", text):
            raise InputError(where, f"expected an integer, got {show(value)}")
        number = int(text)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        raise InputError(where, f"expected an integer, got {show(value)}")
    if number < minimum or (maximum is not None and number > maximum):
        bound = f"{minimum}-{maximum}" if maximum is not None else f">= {minimum}"
        raise InputError(where, f"expected an integer {bound}, got {number}")
    return number


def to_count(value: object, where: str) -> int:
    return to_int(value, where, minimum=0, maximum=MAX_COUNT)


def to_port(value: object, where: str) -> int:
    return to_int(value, where, minimum=1, maximum=MAX_PORT)


def to_seconds(value: object, where: str) -> float:
    return seconds(value, where, positive=False, at_most=MAX_SECONDS)


def to_bool(value: object, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
    raise InputError(where, f"expected true or false, got {show(value)}")


def to_choice(choices: tuple[str, ...]) -> Checker:
    def check(value: object, where: str) -> str:
        if isinstance(value, str) and value.strip() in choices:
            return value.strip()
        raise InputError(where, f"expected one of {', '.join(choices)}, got {show(value)}")

    return check


to_restart = to_choice(RESTART_POLICIES)
to_log_format = to_choice(LOG_FORMATS)


def to_path(value: object, where: str) -> str:
    if isinstance(value, str) and value.strip():
        if "\0" in value:
            raise InputError(where, "a path cannot contain a NUL character")
        return value
    raise InputError(where, f"expected a path, got {show(value)}")


def to_paths(value: object, where: str) -> tuple[str, ...]:
    """An array of paths, or one string of comma-separated paths (repeated flags: a tuple)."""
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        parts = [p.strip() for v in value for p in v.split(",")]
    else:
        raise InputError(where, f"expected an array of paths, got {show(value)}")
    if not all(parts):
        raise InputError(where, f"empty path in {show(value)}")
    if any("\0" in p for p in parts):
        raise InputError(where, "a path cannot contain a NUL character")
    return tuple(parts)


def to_names(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(where, f"expected an array of process types, got {show(value)}")
    return tuple(cast(list[str], value))


def to_type_names(value: object, where: str) -> tuple[str, ...]:
    """Process type names: an array, or strings (repeated flags) of comma-separated names.

    Whether each is a type of the Procfile is the loader's to check.
    """
    from keelrun.procfile import NAME

    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(where, f"expected process types, got {show(value)}")
    names = [part.strip() for v in value for part in v.split(",")]
    if not all(names):
        raise InputError(where, f"empty process type in {show(','.join(value))}")
    for name in names:
        if NAME.fullmatch(name) is None:
            raise InputError(where, f"invalid process type name {show(name)}")
    return tuple(dict.fromkeys(names))


def to_watch(value: object, where: str) -> tuple[str, ...]:
    """Glob patterns relative to the app root (README "The development loop")."""
    from keelrun.watch.globs import pattern_error  # only `re`: cheap

    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(where, f"expected an array of glob patterns, got {show(value)}")
    for pattern in value:
        problem = pattern_error(pattern)
        if problem:
            raise InputError(where, problem)
    return tuple(value)


def to_signal(value: object, where: str) -> Any:
    from keelrun.signals import parse_signal

    if not isinstance(value, str | int):
        raise InputError(where, f"expected a signal name or number, got {show(value)}")
    return parse_signal(value, where)


def to_formation(value: object, where: str) -> dict[str, int]:
    """A formation: the string ``"web=2,all=0"`` or the table ``{web = 2}``."""
    from keelrun.formation import parse_formation

    if isinstance(value, str):
        return parse_formation(value, where)
    if not isinstance(value, dict):
        raise InputError(where, f'expected a table or a string "TYPE=N,...", got {show(value)}')
    errors: list[InputError] = []
    counts: dict[str, int] = {}
    for name, count in value.items():
        try:
            counts[name] = to_count(count, f"{where}.{name}")
        except InputError as e:
            errors.append(e)
    if errors:
        raise InputErrors(errors)
    return counts


@functools.cache
def _toml_nouns() -> dict[Checker, str]:
    from keelrun import healthspec as h

    seconds_noun = "a number of seconds"
    return {
        to_int: "an integer",
        to_count: "an integer",
        to_port: "an integer",
        to_seconds: seconds_noun,
        to_bool: "true or false",
        to_names: "an array of process types",
        to_type_names: "an array of process types",
        to_watch: "an array of glob patterns",
        h.parse_seconds: seconds_noun,
        h.parse_watchdog: seconds_noun,
        h.parse_retries: "an integer",
    }


def from_toml(check: Checker, value: object, where: str) -> Any:
    """``check`` for a value of the config file, where TOML gives numbers, booleans
    and arrays types of their own: there "2" is a string, not a count (README
    "Precedence"). The text forms are for flags and KEELRUN_* variables."""
    noun = _toml_nouns().get(check)
    if noun is not None and isinstance(value, str):
        raise InputError(where, f"expected {noun}, got {show(value)}")
    if check is to_formation and isinstance(value, dict):
        for name, count in value.items():
            if isinstance(count, str):
                raise InputError(f"{where}.{name}", f"expected an integer, got {show(count)}")
    return check(value, where)
