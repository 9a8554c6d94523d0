"""The `attach` request's arguments and the choice of its instance
(keelrun/supervisor/attach.py): pure logic. The session itself runs against a real
keelrun in test_control_attach.py and test_tty_attach.py."""

from __future__ import annotations

import pytest

from keelrun.errors import RequestError
from keelrun.supervisor import attach as attach_mod
from keelrun.supervisor.attach import parse_attach_args


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
