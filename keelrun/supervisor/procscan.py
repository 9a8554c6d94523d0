"""Reading /proc directly: cheap enough for the stop path, no psutil import."""

from __future__ import annotations

import os


def _ppid(pid: str) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # The command name is in parentheses and may itself contain ") ".
    rest = data[data.rfind(b")") + 2 :].split(b" ", 3)
    if rest[0] == b"Z":
        return None  # zombies are reaped, not signalled
    return int(rest[1])


def descendants(root: int) -> list[int]:
    """Pids of every living descendant of root (not root itself)."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for name in entries:
        if not name.isdigit():
            continue
        ppid = _ppid(name)
        if ppid is not None:
            children.setdefault(ppid, []).append(int(name))
    found: list[int] = []
    stack = list(children.get(root, ()))
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, ()))
    return found
