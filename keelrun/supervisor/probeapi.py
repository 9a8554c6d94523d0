"""What every probe shares: a try gives exactly one result, from the loop.

A probe (port, http or exec; see probes.py) runs one try at a time:
``start(on_result)`` begins it and ``on_result(ProbeResult)`` is called exactly
once, from a later turn of the loop (never from inside ``start``), unless
``cancel()`` ends the try first. Each try bounds itself by the probe timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol


class ProbeResult(NamedTuple):  # not a dataclass: see keelrun/settings.py
    ok: bool
    detail: str  # for events: "HTTP 503", "connection refused", "exit status 1: ..."


ResultCallback = Callable[[ProbeResult], None]


class Probe(Protocol):
    @property
    def running(self) -> bool: ...

    def start(self, on_result: ResultCallback) -> None: ...

    def cancel(self) -> None: ...


ExitCallback = Callable[[int], None]  # receives the wait status


class ChildRoutes:
    """keelrun's helper children (exec probes) and who wants each one's wait status.

    keelrun reaps in one place only; that reaper calls ``dispatch(pid, status)``
    for every pid it collects, and a probe's pid reaches its probe here.
    """

    def __init__(self) -> None:
        self._routes: dict[int, ExitCallback] = {}

    def add(self, pid: int, on_exit: ExitCallback) -> None:
        self._routes[pid] = on_exit

    def dispatch(self, pid: int, wait_status: int) -> bool:
        """Hand a reaped pid's status to its owner; False when the pid is not a helper's."""
        on_exit = self._routes.pop(pid, None)
        if on_exit is None:
            return False
        on_exit(wait_status)
        return True

    def __contains__(self, pid: int) -> bool:
        return pid in self._routes

    def __len__(self) -> int:
        return len(self._routes)
