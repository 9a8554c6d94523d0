"""``depends_on`` checked across types: names of Procfile types, and no cycle."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from keelrun.errors import InputError
from keelrun.settings import RELEASE_TYPE


def dependency_errors(
    per_type: Mapping[str, Mapping[str, Any]],
    names: list[str],
    where: Callable[..., str],
) -> list[InputError]:
    """Problems of every ``depends_on``; ``where(*keys)`` names a key of the config file.

    ``names`` are the Procfile's types (empty when the Procfile could not be read:
    then only cycles are looked for).
    """
    from keelrun.formation import unknown_type

    known = [n for n in names if n != RELEASE_TYPE]
    errors: list[InputError] = []
    graph: dict[str, tuple[str, ...]] = {}
    for name, conf in per_type.items():
        deps = conf.get("depends_on", ())
        at = where("processes", name, "depends_on")
        for dep in deps:
            if dep == RELEASE_TYPE:
                errors.append(InputError(at, '"release" runs before the formation, not in it'))
            elif names and dep not in names:
                errors.append(InputError(at, unknown_type(dep, known)))
        graph[name] = deps
    cycle = find_cycle(graph)
    if cycle:
        at = where("processes", cycle[0], "depends_on")
        errors.append(InputError(at, "dependency cycle " + " -> ".join(cycle)))
    return errors


def find_cycle(graph: Mapping[str, tuple[str, ...]]) -> list[str] | None:
    """One dependency cycle as [a, b, ..., a], or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        for dep in graph.get(node, ()):
            found = visit(dep, [*path, node])
            if found:
                return found
        done.add(node)
        return None

    for start in graph:
        found = visit(start, [])
        if found:
            return found
    return None
