"""Reading /proc directly: cheap enough for the stop path, no psutil import."""

from __future__ import annotations

import os


def stat_fields(pid: int | str, maxsplit: int = -1) -> list[bytes] | None:
    """The fields of /proc/PID/stat after the command name, the state first; None if gone.

    ``maxsplit`` stops splitting once the fields the caller needs are cut off.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # The command name is in parentheses and may itself contain ") ".
    return data[data.rfind(b")") + 2 :].split(b" ", maxsplit)


def _ppid_pgid(pid: str) -> tuple[int, int] | None:
    rest = stat_fields(pid, 4)
    if rest is None or rest[0] == b"Z":
        return None  # zombies are reaped, not signalled
    return int(rest[1]), int(rest[2])


ProcessTree = dict[int, list[tuple[int, int]]]  # ppid -> [(pid, pgid)]


def process_tree() -> ProcessTree:
    """One pass over /proc: every living process by parent."""
    children: ProcessTree = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return children
    for name in entries:
        if not name.isdigit():
            continue
        ids = _ppid_pgid(name)
        if ids is not None:
            children.setdefault(ids[0], []).append((int(name), ids[1]))
    return children


def descendants(root: int, tree: ProcessTree | None = None) -> list[tuple[int, int]]:
    """(pid, pgid) of every living descendant of root (not root itself)."""
    children = process_tree() if tree is None else tree
    found: list[tuple[int, int]] = []
    stack = list(children.get(root, ()))
    while stack:
        entry = stack.pop()
        found.append(entry)
        stack.extend(children.get(entry[0], ()))
    return found
