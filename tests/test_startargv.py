"""`keelrun start`'s command line read without click (keelrun/config/startargv.py) gives
exactly what click gives, or hands the command line to click.

Command lines are generated from the option declarations (keelrun/config/options.py):
every spelling of every start option in every form click accepts, TYPE arguments,
``--``, and forms click rejects or treats specially (help, unknown options, a value
given to a flag, a missing value)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
from conftest import make_app, run_keelrun
from hypothesis import given, settings
from hypothesis import strategies as st

from keelrun.clickcli import cli
from keelrun.config import Overrides
from keelrun.config.options import OPTIONS, Option
from keelrun.config.startargv import parse_start

START = [o for o in OPTIONS if "start" in o.commands]
TAKES_VALUE = [o for o in START if o.kind in ("value", "multiple")]
NO_VALUE = [o for o in START if o.kind in ("flag", "switch")]


def click_reads(args: list[str]) -> Overrides | None:
    """The Overrides click's `start` command makes of ``args``; None on a usage error or help."""
    command = cli.commands["start"]
    try:
        ctx = command.make_context("start", list(args))
    except (click.ClickException, click.exceptions.Exit):
        return None
    params: dict[str, Any] = dict(ctx.params)
    return Overrides(only_types=params.pop("types"), **params)


def same(a: Overrides, b: Overrides) -> bool:
    return (a.given, a.only_types) == (b.given, b.only_types)


def spellings(opt: Option) -> list[str]:
    return [s for spelling in opt.flags for s in spelling.split("/")]


# Values and TYPE arguments: anything, including what looks like an option or `--`.
values = st.one_of(
    st.text(max_size=8),
    st.sampled_from(["web", "web=2", "a,b", "-x", "--", "-h", "--help", "=", "-", ""]),
)
types = st.one_of(st.text(max_size=6).filter(lambda t: not t.startswith("-")), st.just("-"))


@st.composite
def valid_piece(draw: st.DrawFn) -> list[str]:
    """One option in one of the forms click accepts for it, or one TYPE argument."""
    kind = draw(st.sampled_from(["value", "flag", "type"]))
    if kind == "type":
        return [draw(types)]
    if kind == "flag":
        return [draw(st.sampled_from([s for o in NO_VALUE for s in spellings(o)]))]
    spelling = draw(st.sampled_from([s for o in TAKES_VALUE for s in spellings(o)]))
    value = draw(values)
    if spelling.startswith("--"):
        return draw(st.sampled_from([[spelling, value], [f"{spelling}={value}"]]))
    if value:  # `-f ''` is a value; `-f` + '' would be no value at all
        return draw(st.sampled_from([[spelling, value], [spelling + value]]))
    return [spelling, value]


@st.composite
def valid_argv(draw: st.DrawFn) -> list[str]:
    args = [a for piece in draw(st.lists(valid_piece(), max_size=8)) for a in piece]
    if draw(st.booleans()):
        args += ["--", *draw(st.lists(values, max_size=3))]
    return args


# Forms the fast path must leave to click (or read exactly as click does).
odd_pieces = st.sampled_from(
    [
        ["-h"],
        ["--help"],
        ["--version"],
        ["-x"],
        ["--bogus"],
        ["--proc"],  # click has no abbreviations
        ["-"],
        ["--"],
        ["-1"],
        ["-fq"],
        ["--watch=yes"],
        ["--color=no"],
        ["--no-color=1"],
        ["--release=1"],
        ["-p"],  # at the end: a missing value
        ["--port"],
        ["-=x"],
        ["---port", "1"],
        ["-d-x"],
    ]
)


@st.composite
def any_argv(draw: st.DrawFn) -> list[str]:
    pieces = draw(st.lists(st.one_of(valid_piece(), odd_pieces), max_size=8))
    return [a for piece in pieces for a in piece]


@settings(max_examples=600, deadline=None)
@given(valid_argv())
def test_every_form_click_accepts_is_read_as_click_reads_it(args: list[str]) -> None:
    ours, theirs = parse_start(args), click_reads(args)
    assert theirs is not None, args  # the generator makes only valid command lines
    assert ours is not None, args
    assert same(ours, theirs), (args, ours, theirs)


@settings(max_examples=600, deadline=None)
@given(any_argv())
def test_anything_else_goes_to_click_or_reads_the_same(args: list[str]) -> None:
    ours, theirs = parse_start(args), click_reads(args)
    if ours is not None:
        assert theirs is not None, args  # click would have refused it, or shown help
        assert same(ours, theirs), (args, ours, theirs)


def test_each_start_option_in_each_form() -> None:
    # The cases a reader checks by eye; the properties above cover the rest.
    cases = {
        ("-f", "P", "web"): {"procfile": "P"},
        ("-fP",): {"procfile": "P"},
        ("--procfile=P",): {"procfile": "P"},
        ("-f", "-x"): {"procfile": "-x"},  # click takes the next argument, whatever it is
        ("-m", "web=2", "-cworker=3", "--concurrency", "x=1"): {
            "formation": ("web=2", "worker=3", "x=1")
        },
        ("-p", "1", "--port=2"): {"port": "2"},  # the last one wins
        ("--color", "--no-color"): {"color": False},
        ("--no-timestamp", "--release", "--watch"): {
            "no_timestamp": True,
            "run_release": True,
            "watch": True,
        },
    }
    for args, given_ in cases.items():
        ours, theirs = parse_start(list(args)), click_reads(list(args))
        assert ours is not None and theirs is not None, args
        assert ours.given == given_ and same(ours, theirs), args
    ours = parse_start(["web", "--", "-f", "--"])
    assert ours is not None and ours.only_types == ("web", "-f", "--") and ours.given == {}
    for refused in (["-h"], ["--help"], ["-p"], ["--watch=1"], ["--bogus"], ["-x"], ["-1"]):
        assert parse_start(refused) is None, refused
    assert len(START) == len([o for o in OPTIONS if "start" in o.commands]) > 10


def test_release_is_run_by_the_fast_path(tmp_path: Path) -> None:
    # `--release` (read without click) runs the release phase, then the formation.
    app = make_app(tmp_path / "app", procfile="release: echo released\nweb: echo served\n")
    r = run_keelrun("start", "--release", "--no-color", cwd=app)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "released" in out and "served" in out
    assert out.index("released") < out.index("served")


@pytest.mark.parametrize(
    ("args", "status", "first"),
    [
        (["start", "--help"], 0, "Usage: keelrun start [OPTIONS] [TYPE]..."),
        (["start", "-p"], 2, "keelrun: start: Option '-p' requires an argument."),
        (["start", "--watch=1"], 2, "keelrun: start: Option '--watch' does not take a value."),
        (["start", "--prot", "1"], 2, "keelrun: start: No such option '--prot'"),
    ],
)
def test_what_the_fast_path_leaves_gets_clicks_answer(
    tmp_path: Path, args: list[str], status: int, first: str
) -> None:
    r = run_keelrun(*args, cwd=tmp_path)
    assert r.returncode == status, r
    out = r.stdout if status == 0 else r.stderr
    assert out.splitlines()[0].startswith(first), out
