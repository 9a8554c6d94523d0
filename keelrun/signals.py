"""Signal names as users write them: ``TERM``, ``SIGTERM``, ``term`` or a number."""

from __future__ import annotations

import signal

from keelrun.errors import InputError


def parse_signal(value: str | int, where: str) -> signal.Signals:
    """The signal that ``value`` names; an InputError at ``where`` if none does."""
    if isinstance(value, bool):  # bool is an int subclass: `stop_signal = true` is a type error
        raise InputError(where, f"expected a signal name or number, got {str(value).lower()}")
    if isinstance(value, int):
        return _by_number(value, str(value), where)
    if not isinstance(value, str):
        raise InputError(where, f"expected a signal name or number, got {value!r}")
    text = value.strip()
    digits = text.removeprefix("-")
    if digits.isascii() and digits.isdigit() and len(text) < 6:
        return _by_number(int(text), value, where)
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    # Only real signals: SIG_DFL/SIG_IGN live in signal.Handlers, not here.
    try:
        return signal.Signals[name]
    except KeyError:
        raise InputError(where, f'unknown signal "{value}"') from None


def _by_number(number: int, shown: str, where: str) -> signal.Signals:
    try:
        return signal.Signals(number)
    except ValueError:
        raise InputError(where, f"unknown signal {shown}") from None


def signal_name(sig: signal.Signals) -> str:
    """``SIGTERM`` -> ``TERM``, the spelling used in messages and exports."""
    return sig.name.removeprefix("SIG")
