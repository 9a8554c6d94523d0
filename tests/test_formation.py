"""Formation, instance names and ports, also against honcho's expand_processes."""

from __future__ import annotations

import signal
from collections import OrderedDict
from pathlib import Path

import pytest
from honcho.environ import expand_processes
from hypothesis import given
from hypothesis import strategies as st

from keelrun.errors import InputErrors
from keelrun.formation import (
    PortOverlap,
    apply_formation,
    expand,
    parse_formation,
    parse_scale,
    port_overlaps,
    port_range,
    unknown_type,
)
from keelrun.settings import ProcessTypeSettings, Settings


def settings_for(procfile: list[tuple[str, str]], counts: dict[str, int], port: int = 5000):
    types = []
    for index, (name, command) in enumerate(procfile):
        if name == "release":
            continue
        types.append(
            ProcessTypeSettings(
                name=name,
                command=command,
                index=index,
                count=counts.get(name, 1),
                base_port=port + 100 * index,
                restart="on-failure",
                max_restarts=5,
                grace=5.0,
                stop_signal=signal.SIGTERM,
            )
        )
    return Settings(
        app_root=Path("/app"),
        procfile=Path("/app/Procfile"),
        types=tuple(types),
        release=None,
        env={},
        port=port,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("web=2", {"web": 2}),
        ("web=2,worker=0", {"web": 2, "worker": 0}),
        (" web = 2 , all=3 ", {"web": 2, "all": 3}),
        ("all=0", {"all": 0}),
        ("", {}),
        ("a-b_c=10", {"a-b_c": 10}),
    ],
)
def test_parse_formation(text: str, expected: dict[str, int]) -> None:
    assert parse_formation(text, "-m") == expected


@pytest.mark.parametrize(
    ("text", "messages"),
    [
        ("web", ['-m: expected TYPE=COUNT, got "web"']),
        ("web=x", ['-m: web: expected a count (0 or more), got "x"']),
        ("web=-1", ['-m: web: expected a count (0 or more), got "-1"']),
        ("web=1.5", ['-m: web: expected a count (0 or more), got "1.5"']),
        ("web=", ['-m: web: expected a count (0 or more), got ""']),
        ("web=1,web=2", ['-m: type "web" given twice']),
        ("web.x=1", ['-m: expected TYPE=COUNT, got "web.x=1"']),
        ("web=1,", ['-m: expected TYPE=COUNT, got ""']),
        (
            "=1,w=z",
            ['-m: expected TYPE=COUNT, got "=1"', '-m: w: expected a count (0 or more), got "z"'],
        ),
    ],
)
def test_parse_formation_errors(text: str, messages: list[str]) -> None:
    with pytest.raises(InputErrors) as e:
        parse_formation(text, "-m")
    assert e.value.lines() == messages


def test_apply_formation_names_all_and_keeps_the_rest() -> None:
    types = ["web", "worker", "clock"]
    base = {"web": 1, "worker": 3, "clock": 1}
    assert apply_formation(base, {"web": 2}, "-m", types) == {"web": 2, "worker": 3, "clock": 1}
    assert apply_formation(base, {"web": 2, "all": 0}, "-m", types) == {
        "web": 2,
        "worker": 0,
        "clock": 0,
    }
    assert apply_formation(base, {}, "-m", types) == base


def test_apply_formation_unknown_and_release() -> None:
    with pytest.raises(InputErrors) as e:
        apply_formation({"web": 1}, {"nope": 1, "release": 1, "web": 2}, "-m", ["web"])
    assert e.value.lines() == [
        '-m: no process type "nope" in the Procfile (types: web)',
        '-m: "release" is not part of the formation',
    ]


PROCFILE = [("web", "w"), ("release", "r"), ("worker", "k"), ("clock", "c")]


def test_expand_names_and_ports() -> None:
    s = settings_for(PROCFILE, {"web": 2, "worker": 3, "clock": 0})
    got = [(i.name, i.type, i.number, i.port, i.command) for i in expand(s)]
    assert got == [
        ("web.1", "web", 1, 5000, "w"),
        ("web.2", "web", 2, 5001, "w"),
        ("worker.1", "worker", 1, 5200, "k"),
        ("worker.2", "worker", 2, 5201, "k"),
        ("worker.3", "worker", 3, 5202, "k"),
    ]


def test_expand_only_types_keeps_ports() -> None:
    s = settings_for(PROCFILE, {}, port=8000)
    got = [(i.name, i.port) for i in expand(s, ["clock", "web"])]
    assert got == [("web.1", 8000), ("clock.1", 8300)]


def test_expand_unknown_types() -> None:
    s = settings_for(PROCFILE, {})
    with pytest.raises(InputErrors) as e:
        expand(s, ["web", "nope", "release"])
    assert e.value.lines() == [
        'TYPE: no process type "nope" in the Procfile (types: web, worker, clock)',
        'TYPE: "release" is run by `--release` or `keelrun release`',
    ]


@given(
    st.lists(
        st.tuples(st.from_regex(r"[a-z]{1,6}", fullmatch=True), st.integers(0, 4)),
        min_size=1,
        max_size=6,
        unique_by=lambda t: t[0],
    ),
    st.integers(1000, 30000),
)
def test_expand_matches_honcho(types: list[tuple[str, int]], port: int) -> None:
    # honcho is right about names and ports when every type is started
    # (with TYPE arguments it numbers only the selected types).
    procfile = [(name, f"cmd {name}") for name, _ in types]
    counts = dict(types)
    ours = [(i.name, i.command, str(i.port)) for i in expand(settings_for(procfile, counts, port))]
    theirs = [
        (p.name, p.cmd, p.env["PORT"])
        for p in expand_processes(OrderedDict(procfile), concurrency=counts, port=port)
    ]
    assert ours == theirs


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (["web=2"], [("web", "=", 2)]),
        (["worker=+1", "clock=-1"], [("worker", "+", 1), ("clock", "-", 1)]),
        (["web=0"], [("web", "=", 0)]),
        (["web = + 3"], [("web", "+", 3)]),
    ],
)
def test_parse_scale(changes: list[str], expected: list[tuple[str, str, int]]) -> None:
    assert parse_scale(changes, "scale") == expected


@pytest.mark.parametrize(
    ("changes", "messages"),
    [
        (["web"], ['scale: expected TYPE=N, TYPE=+N or TYPE=-N, got "web"']),
        (["web=x"], ['scale: web: expected a count, got "web=x"']),
        (["web=+"], ['scale: web: expected a count, got "web=+"']),
        (["web=--1"], ['scale: web: expected a count, got "web=--1"']),
        (["web=1", "web=+1"], ['scale: type "web" given twice']),
        (
            ["w.1=2", "=3"],
            [
                'scale: expected TYPE=N, TYPE=+N or TYPE=-N, got "w.1=2"',
                'scale: expected TYPE=N, TYPE=+N or TYPE=-N, got "=3"',
            ],
        ),
    ],
)
def test_parse_scale_errors(changes: list[str], messages: list[str]) -> None:
    with pytest.raises(InputErrors) as e:
        parse_scale(changes, "scale")
    assert e.value.lines() == messages


def test_port_range() -> None:
    assert port_range(5000, 0) == "-"
    assert port_range(5000, 1) == "5000"
    assert port_range(5000, 3) == "5000-5002"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("wbe", 'no process type "wbe" in the Procfile; did you mean "web"?'),
        ("workers", 'no process type "workers" in the Procfile; did you mean "worker"?'),
        ("Clock", 'no process type "Clock" in the Procfile; did you mean "clock"?'),
        ("nope", 'no process type "nope" in the Procfile (types: web, worker, clock)'),
    ],
)
def test_unknown_type_suggests_the_closest(name: str, message: str) -> None:
    assert unknown_type(name, ["web", "worker", "clock"]) == message


def test_did_you_mean_in_formation_and_type_arguments() -> None:
    s = settings_for(PROCFILE, {})
    with pytest.raises(InputErrors) as e:
        expand(s, ["wbe"])
    assert e.value.lines() == ['TYPE: no process type "wbe" in the Procfile; did you mean "web"?']
    with pytest.raises(InputErrors) as e:
        apply_formation({}, {"wrker": 2}, "-m", ["web", "worker", "clock"])
    assert e.value.lines() == [
        '-m: no process type "wrker" in the Procfile; did you mean "worker"?'
    ]


def test_port_overlaps_name_the_instances_and_ports() -> None:
    # web k=0, release k=1 (not running), worker k=2, clock k=3.
    types = settings_for(PROCFILE, {}).types
    assert port_overlaps(types, {"web": 200, "worker": 1, "clock": 1}) == []
    assert port_overlaps(types, {"web": 201, "worker": 1, "clock": 1}) == [
        PortOverlap("web", (201, 201), "worker", (1, 1), (5200, 5200))
    ]
    assert port_overlaps(types, {"web": 250, "worker": 3, "clock": 1}) == [
        PortOverlap("web", (201, 203), "worker", (1, 3), (5200, 5202))
    ]
    # Past two types' ranges, and a type reaching into the next.
    assert port_overlaps(types, {"web": 302, "worker": 150, "clock": 2}) == [
        PortOverlap("web", (201, 302), "worker", (1, 102), (5200, 5301)),
        PortOverlap("web", (301, 302), "clock", (1, 2), (5300, 5301)),
        PortOverlap("worker", (101, 102), "clock", (1, 2), (5300, 5301)),
    ]
    # A type with no instance, or left out of the counts, collides with nothing.
    assert port_overlaps(types, {"web": 400, "worker": 0}) == []


def test_port_overlap_message() -> None:
    one = PortOverlap("web", (101, 101), "worker", (1, 1), (5100, 5100))
    assert one.message() == (
        "web.101 and worker.1 both get port 5100: type k's ports start at base + 100·k, "
        "so more than 100 instances of a type reach the next type's ports"
    )
    many = PortOverlap("web", (101, 103), "worker", (1, 3), (5100, 5102))
    assert many.message().startswith(
        "web.101-web.103 and worker.1-worker.3 both get ports 5100-5102:"
    )


@given(
    st.lists(st.integers(0, 400), min_size=1, max_size=5),
    st.integers(1000, 20000),
)
def test_port_overlaps_agree_with_expand(counts: list[int], port: int) -> None:
    procfile = [(f"t{i}", "c") for i in range(len(counts))]
    named = {f"t{i}": c for i, c in enumerate(counts)}
    s = settings_for(procfile, named, port)
    owners: dict[int, list[str]] = {}
    for spec in expand(s):
        owners.setdefault(spec.port, []).append(spec.name)
    shared = {p: names for p, names in owners.items() if len(names) > 1}
    reported: dict[int, list[str]] = {}
    for o in port_overlaps(s.types, named):
        for offset in range(o.ports[1] - o.ports[0] + 1):
            reported.setdefault(o.ports[0] + offset, []).extend(
                [
                    f"{o.lower}.{o.lower_numbers[0] + offset}",
                    f"{o.upper}.{o.upper_numbers[0] + offset}",
                ]
            )
    assert {p: sorted(set(n)) for p, n in reported.items()} == {
        p: sorted(n) for p, n in shared.items()
    }
