"""The formation: how many instances of each type, their names and ports.

Everything here is pure: strings and Settings in, counts and InstanceSpecs out
(README "Precedence" has the rules).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from keelrun.errors import InputError, InputErrors
from keelrun.procfile import NAME
from keelrun.settings import MAX_COUNT, RELEASE_TYPE, InstanceSpec, ProcessTypeSettings, Settings

ALL = "all"  # `all=N`: every type the same formation does not name


def parse_formation(text: str, where: str) -> dict[str, int]:
    """``"web=2,worker=0,all=1"`` -> ``{"web": 2, "worker": 0, "all": 1}``.

    Blanks around items are allowed; an empty text is an empty formation.
    Raises InputErrors listing every bad item.
    """
    items = [] if not text.strip() else [part.strip() for part in text.split(",")]
    return {name: n for name, _op, n in _parse_items(items, where, relative=False)}


def parse_scale(changes: Iterable[str], where: str) -> list[tuple[str, str, int]]:
    """``["web=2", "worker=+1", "clock=-1"]`` -> ``[("web", "=", 2), ("worker", "+", 1), ...]``.

    The op is ``=`` (absolute), ``+`` or ``-`` (relative). Names are checked
    for shape only: whether a type exists is the running formation's business.
    """
    return _parse_items(changes, where, relative=True)


def _parse_items(items: Iterable[str], where: str, relative: bool) -> list[tuple[str, str, int]]:
    """``TYPE=N`` items (and ``TYPE=+N``, ``TYPE=-N`` when ``relative``): one reading for
    -m and scale; every bad item is reported."""
    result: list[tuple[str, str, int]] = []
    errors: list[InputError] = []
    seen: set[str] = set()
    for item in items:
        name, eq, value = (s.strip() for s in item.partition("="))
        op = "="
        if relative and value[:1] in ("+", "-"):
            op, value = value[0], value[1:].strip()
        # scale quotes the whole item, -m the count (their messages predate this reading)
        got = item if relative else value
        if not eq or NAME.fullmatch(name) is None:
            shape = "TYPE=N, TYPE=+N or TYPE=-N" if relative else "TYPE=COUNT"
            errors.append(InputError(where, f'expected {shape}, got "{item}"'))
        elif not value.isdigit() or not value.isascii():
            count = "a count" if relative else "a count (0 or more)"
            errors.append(InputError(where, f'{name}: expected {count}, got "{got}"'))
        elif len(value) > 6 or int(value) > MAX_COUNT:
            errors.append(InputError(where, f'{name}: at most {MAX_COUNT} instances, got "{got}"'))
        elif name in seen:
            errors.append(InputError(where, f'type "{name}" given twice'))
        else:
            seen.add(name)
            result.append((name, op, int(value)))
    if errors:
        raise InputErrors(errors)
    return result


def apply_formation(
    counts: Mapping[str, int], formation: Mapping[str, int], where: str, types: Iterable[str]
) -> dict[str, int]:
    """Counts after ``formation``: named types take its count, ``all`` sets the others.

    Types it does not name keep their count (honcho's reading, not foreman's).
    Naming a type the Procfile lacks, or ``release``, is an error.
    """
    known = list(types)
    errors: list[InputError] = []
    for name in formation:
        if name == ALL:
            continue
        if name == RELEASE_TYPE:
            errors.append(InputError(where, f'"{RELEASE_TYPE}" is not part of the formation'))
        elif name not in known:
            errors.append(InputError(where, unknown_type(name, known)))
    if errors:
        raise InputErrors(errors)
    result = dict(counts)
    for name in known:
        if name in formation:
            result[name] = formation[name]
        elif ALL in formation:
            result[name] = formation[ALL]
    return result


def expand(settings: Settings, only_types: Iterable[str] = ()) -> list[InstanceSpec]:
    """Every instance to run: ``type.N`` for N in 1..count, ports by the scheme.

    ``only_types`` (the TYPE arguments of ``keelrun start``) selects types
    without changing their counts or ports; an unknown name is an InputError.
    """
    selected = list(only_types)
    check_types(settings, selected)
    specs: list[InstanceSpec] = []
    for t in settings.types:
        if selected and t.name not in selected:
            continue
        for number in range(1, t.count + 1):
            specs.append(
                InstanceSpec(
                    name=f"{t.name}.{number}",
                    type=t.name,
                    number=number,
                    port=t.port_of(number),
                    command=t.command,
                )
            )
    return specs


def check_types(settings: Settings, names: Iterable[str], where: str = "TYPE") -> None:
    """Raise InputErrors for every name that is not a type of the formation."""
    known = [t.name for t in settings.types]
    errors: list[InputError] = []
    for name in names:
        if name == RELEASE_TYPE and name not in known:
            errors.append(InputError(where, f'"{name}" is run by `--release` or `keelrun release`'))
        elif name not in known:
            errors.append(InputError(where, unknown_type(name, known)))
    if errors:
        raise InputErrors(errors)


def port_range(first: int, count: int) -> str:
    """``5000-5001`` for a type's ports, ``-`` when it has no instance."""
    if count <= 0:
        return "-"
    return str(first) if count == 1 else f"{first}-{first + count - 1}"


def unknown_type(name: str, known: Sequence[str]) -> str:
    """The message for a type name the Procfile lacks, with the closest one if any is close."""
    from difflib import get_close_matches  # only on this error path

    close = get_close_matches(name, known, n=1)
    if close:
        return f'no process type "{name}" in the Procfile; did you mean "{close[0]}"?'
    return f'no process type "{name}" in the Procfile (types: {", ".join(known)})'


class PortOverlap(NamedTuple):
    """Instances of two types that get the same ports (type k's start at base + 100·k)."""

    lower: str  # the type with the lower base port, whose instances reach past 100
    lower_numbers: tuple[int, int]  # its instances that overlap, first and last
    upper: str
    upper_numbers: tuple[int, int]
    ports: tuple[int, int]  # the shared ports, first and last

    def message(self) -> str:
        a = _instances(self.lower, *self.lower_numbers)
        b = _instances(self.upper, *self.upper_numbers)
        first, last = self.ports
        ports = f"port {first}" if first == last else f"ports {first}-{last}"
        return (
            f"{a} and {b} both get {ports}: type k's ports start at base + 100·k, "
            "so more than 100 instances of a type reach the next type's ports"
        )


def _instances(name: str, first: int, last: int) -> str:
    return f"{name}.{first}" if first == last else f"{name}.{first}-{name}.{last}"


def port_overlaps(
    types: Iterable[ProcessTypeSettings], counts: Mapping[str, int]
) -> list[PortOverlap]:
    """Every pair of types whose instances would share ports, given counts per type.

    A type missing from ``counts`` runs no instance; only instances that run
    can collide. Pure, so that ``keelrun scale`` can ask before it scales.
    """
    running = sorted(
        (t.base_port, t.name, counts.get(t.name, 0)) for t in types if counts.get(t.name, 0) > 0
    )
    found: list[PortOverlap] = []
    for i, (base_a, a, count_a) in enumerate(running):
        last_a = base_a + count_a - 1
        for base_b, b, count_b in running[i + 1 :]:
            if last_a < base_b:
                break
            shared_last = min(last_a, base_b + count_b - 1)
            found.append(
                PortOverlap(
                    a,
                    (base_b - base_a + 1, shared_last - base_a + 1),
                    b,
                    (1, shared_last - base_b + 1),
                    (base_b, shared_last),
                )
            )
    return found
