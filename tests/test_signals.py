import signal

import pytest

from keelrun.errors import InputError
from keelrun.signals import parse_signal, signal_name


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("TERM", signal.SIGTERM),
        ("SIGTERM", signal.SIGTERM),
        ("term", signal.SIGTERM),
        ("sigint", signal.SIGINT),
        (" HUP ", signal.SIGHUP),
        ("QUIT", signal.SIGQUIT),
        ("USR1", signal.SIGUSR1),
        ("KILL", signal.SIGKILL),
        (15, signal.SIGTERM),
        ("9", signal.SIGKILL),
        (int(signal.SIGUSR2), signal.SIGUSR2),
    ],
)
def test_accepts_names_and_numbers(value: str | int, expected: signal.Signals) -> None:
    assert parse_signal(value, "x") is expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("FOO", 'x: unknown signal "FOO"'),
        ("SIG", 'x: unknown signal "SIG"'),
        ("", 'x: unknown signal ""'),
        ("DFL", 'x: unknown signal "DFL"'),
        (0, "x: unknown signal 0"),
        (999, "x: unknown signal 999"),
        ("-1", "x: unknown signal -1"),
        (True, "x: expected a signal name or number, got true"),
    ],
)
def test_rejects_unknown(value: str | int, message: str) -> None:
    with pytest.raises(InputError) as e:
        parse_signal(value, "x")
    assert str(e.value) == message


def test_signal_name_is_the_short_spelling() -> None:
    assert signal_name(signal.SIGTERM) == "TERM"
    assert parse_signal(signal_name(signal.SIGUSR1), "x") is signal.SIGUSR1
