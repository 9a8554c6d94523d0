"""Warnings about the inputs that are no errors: instances of two types that share
ports, ports another process already listens on, TYPE arguments that run nothing.

`keelrun check` prints them after the formation; `keelrun start` once its first
processes are spawned, so that they never delay them. Each is one line on
stderr, `keelrun: warning: ...`.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Mapping, Sequence
from typing import TextIO

from keelrun.settings import Settings

SHOWN_PER_TYPE = 3  # taken ports named per type; the rest are counted


def formation_warnings(
    settings: Settings,
    counts: Mapping[str, int],
    only_types: Sequence[str] = (),
    count_sources: Mapping[str, str] | None = None,
) -> list[str]:
    """Shared ports, and types that run no instance although named (pure)."""
    from keelrun.formation import port_overlaps

    lines = [o.message() for o in port_overlaps(settings.types, counts)]
    sources = count_sources or {}
    for name in only_types:
        if counts.get(name, 0) == 0:
            source = sources.get(name)
            why = f" ({source})" if source else ""
            lines.append(
                f"{name} has a count of 0{why}, so no instance of it runs; "
                f"`keelrun scale {name}=1` starts one"
            )
    if not only_types and settings.types and not any(counts.values()):
        lines.append("every type has a count of 0: nothing runs until `keelrun scale TYPE=N`")
    return lines


def taken_port_warnings(
    settings: Settings, counts: Mapping[str, int], tree_of: int | None = None
) -> list[str]:
    """Ports of this run's instances that another process already listens on.

    ``tree_of`` (keelrun's pid in ``start``): listeners among its descendants
    are the instances themselves, not another process.
    """
    from keelrun.listeners import taken_by_others

    owner: dict[int, tuple[str, str]] = {}
    for t in settings.types:
        for number in range(1, counts.get(t.name, 0) + 1):
            owner[t.port_of(number)] = (t.name, f"{t.name}.{number}")
    taken = taken_by_others(owner, tree_of)
    lines: list[str] = []
    per_type: dict[str, int] = {}
    for port, address in taken.items():
        type_name, instance = owner[port]
        per_type[type_name] = per_type.get(type_name, 0) + 1
        if per_type[type_name] <= SHOWN_PER_TYPE:
            lines.append(
                f"port {port} of {instance} is already in use "
                f"(another process listens on {address})"
            )
    for type_name, n in per_type.items():
        if n > SHOWN_PER_TYPE:
            lines.append(f"{n - SHOWN_PER_TYPE} more ports of {type_name} are already in use")
    return lines


def warn(lines: Sequence[str], stream: TextIO | None = None) -> None:
    out = stream or sys.stderr
    for line in lines:
        out.write(f"keelrun: warning: {line}\n")
    out.flush()


def warn_at_start(
    settings: Settings,
    counts: Mapping[str, int],
    only_types: Sequence[str],
    count_sources: Mapping[str, str],
) -> None:
    """Every warning, for `keelrun start` once the formation is spawned."""
    import os

    lines = formation_warnings(settings, counts, only_types, count_sources)
    # Runs inside the supervisor's loop: an unreadable /proc must not stop the formation.
    with contextlib.suppress(OSError, ValueError):
        lines += taken_port_warnings(settings, counts, tree_of=os.getpid())
    with contextlib.suppress(OSError):  # stderr gone: not worth stopping the formation for
        warn(lines)
