"""Readiness: when a started instance counts as ready, and what waits for it.

``ready = "port"`` probes the instance's port; ``ready = "log:REGEX"`` watches
its lines. An instance not ready within ``ready_timeout`` is reported to the
supervisor, which stops it as a failed start. ``depends_on`` holds a type back
until every instance of the types it names is ready (README "`keelrun start`:
what it does, exactly").
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterable

from keelrun.loop import Loop
from keelrun.settings import ProcessTypeSettings
from keelrun.supervisor.instance import Instance
from keelrun.supervisor.lifecycle import State

PROBE_INTERVAL = 0.1  # port probe, only while an instance is starting


class Readiness:
    def __init__(
        self,
        loop: Loop,
        on_ready: Callable[[Instance, str], None],
        on_timeout: Callable[[Instance], None],
    ) -> None:
        self.loop = loop
        self.on_ready = on_ready
        self.on_timeout = on_timeout

    def begin(self, inst: Instance) -> None:
        """Right after a spawn: RUNNING without a check, else STARTING until the check passes."""
        ready = inst.ptype.ready
        if ready is None:
            inst.state = State.RUNNING
            return
        inst.state = State.STARTING
        if ready.kind == "log":
            inst.log_ready = re.compile(ready.pattern or "")
        else:
            inst.probe = self.loop.call_later(PROBE_INTERVAL, lambda: self._probe(inst))
        inst.timer = self.loop.call_later(inst.ptype.ready_timeout, lambda: self._timeout(inst))

    def check_lines(self, inst: Instance, block: bytes) -> None:
        """Lines of an instance waiting for a ``log:REGEX`` match (the log path calls this)."""
        pattern = inst.log_ready
        if pattern is None:
            return
        for line in block[:-1].split(b"\n"):
            if pattern.search(line.decode("utf-8", "replace")):
                self._ready(inst, "its log matched")
                return

    def _probe(self, inst: Instance) -> None:
        inst.probe = None
        if inst.state is not State.STARTING:
            return
        try:
            with socket.create_connection(("127.0.0.1", inst.port), timeout=0.05):
                pass
        except OSError:
            inst.probe = self.loop.call_later(PROBE_INTERVAL, lambda: self._probe(inst))
            return
        self._ready(inst, f"port {inst.port} accepts connections")

    def _ready(self, inst: Instance, why: str) -> None:
        inst.log_ready = None
        if inst.state is State.STARTING:
            self.on_ready(inst, why)

    def _timeout(self, inst: Instance) -> None:
        inst.timer = None
        if inst.state is State.STARTING:
            self.on_timeout(inst)


def deps_ready(ptype: ProcessTypeSettings, instances: Iterable[Instance]) -> bool:
    """Whether every instance of every type ``ptype`` depends on is ready for dependents."""
    if not ptype.depends_on:
        return True
    deps = set(ptype.depends_on)
    return all(inst.is_ready_for_dependents() for inst in instances if inst.ptype.name in deps)
