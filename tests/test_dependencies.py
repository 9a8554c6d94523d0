"""depends_on across types (keelrun/config/dependencies.py): pure checks."""

from __future__ import annotations

import pytest

from keelrun.config.dependencies import dependency_errors, find_cycle


@pytest.mark.parametrize(
    ("graph", "cycle"),
    [
        ({}, None),
        ({"web": (), "worker": ("web",)}, None),
        ({"a": ("b",), "b": ("c",), "c": ()}, None),
        ({"a": ("a",)}, ["a", "a"]),
        ({"a": ("b",), "b": ("a",)}, ["a", "b", "a"]),
        ({"x": ("a",), "a": ("b",), "b": ("c",), "c": ("a",)}, ["a", "b", "c", "a"]),
    ],
)
def test_find_cycle(graph: dict[str, tuple[str, ...]], cycle: list[str] | None) -> None:
    assert find_cycle(graph) == cycle


def where(*keys: str) -> str:
    return "keelrun.toml: " + ".".join(keys)


def test_each_problem_names_the_key() -> None:
    per_type = {
        "worker": {"depends_on": ("web", "release", "db")},
        "web": {"depends_on": ("worker",)},
    }
    got = [str(e) for e in dependency_errors(per_type, ["release", "web", "worker"], where)]
    assert got == [
        'keelrun.toml: processes.worker.depends_on: "release" runs before the formation, not in it',
        'keelrun.toml: processes.worker.depends_on: no process type "db" in the Procfile '
        "(types: web, worker)",
        "keelrun.toml: processes.worker.depends_on: dependency cycle worker -> web -> worker",
    ]


def test_without_a_procfile_only_cycles_are_looked_for() -> None:
    assert dependency_errors({"web": {"depends_on": ("db",)}}, [], where) == []
