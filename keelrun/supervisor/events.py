"""keelrun's own events: structlog processors render them onto the children's stream.

Every event has a level (``info``, ``warning``, ``error``), a snake_case name,
the sentence a person reads (``msg``) and its fields. The processor chain is
structlog's: ``add_log_level``, keelrun's time stamp and key order, then
structlog's ``JSONRenderer`` (JSON mode) or keelrun's text line. Each event is
also kept in a bounded history and handed to followers, so that ``keelrun logs``
shows it under the name ``keelrun`` (README "Commands").

structlog is imported on the first event, after the formation has been
spawned: it must not delay the first child.
"""

from __future__ import annotations

import json
import sys
import time
import types
from collections import deque
from collections.abc import Callable, MutableMapping
from typing import Any

from keelrun.logformat import SYSTEM_NAME, LogFormatter

HISTORY = 1000  # events kept for `keelrun logs`, as many as lines per instance

Record = dict[str, Any]
Follower = Callable[[Record], None]


# Optional packages structlog uses when they are installed, for what keelrun does not
# use of it: pretty consoles (40-100 ms; textual brings rich), twisted's and
# greenlet's integrations. Hidden during the import, structlog takes its fallbacks.
_HIDDEN = ("rich", "colorama", "better_exceptions", "twisted", "greenlet")

# Modules that structlog, or the standard modules it needs, import at the top but
# use only inside functions that keelrun never calls. Each is bound to a stand-in
# that imports the real module on first use, if any (test_lazy_imports.py checks
# that a plain start uses none, and that each still works when used).
DEFERRED = (
    "asyncio",  # structlog.stdlib's async methods (20 ms, ssl included)
    "inspect",  # dataclasses: the docstring of a class without one (structlog's have one)
    "uuid",  # structlog.threadlocal.wrap_dict (uuid imports platform)
    "datetime",  # structlog.processors.TimeStamper
    "tokenize",  # linecache: reading a source file to print a traceback
    "textwrap",  # traceback: indenting exception groups
)


def import_structlog() -> Any:
    """structlog, without the cost of what keelrun does not use of it (_HIDDEN, DEFERRED).

    The started events are rendered by structlog before the children's first
    lines are written, so this import is on the path from exec to the first
    line a user sees: the deferred modules took 8-10 ms of it.
    """
    if "structlog" in sys.modules:
        return sys.modules["structlog"]
    hidden = [m for m in _HIDDEN if m not in sys.modules]
    for m in hidden:
        sys.modules[m] = None  # type: ignore[assignment]
    for m in DEFERRED:
        if m not in sys.modules:
            _lazy_module(m)
    try:
        import structlog
    finally:
        for m in hidden:
            if sys.modules.get(m, False) is None:
                del sys.modules[m]
    return structlog


class _Deferred(types.ModuleType):
    """Stands in sys.modules for a module until an attribute of it is first used.

    Then the real module is imported, replaces the stand-in in sys.modules, and
    every later attribute use on the stand-in is forwarded to it. (importlib's
    LazyLoader cannot do this on Python 3.11: the import statement itself reads
    ``__spec__``, which loads the module.)
    """

    def __getattr__(self, attr: str) -> Any:
        import importlib

        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        real = importlib.import_module(self.__name__)
        return getattr(real, attr)


def _lazy_module(name: str) -> None:
    """Put a stand-in for ``name`` in sys.modules that imports it on first use."""
    stand_in = _Deferred(name)
    stand_in.__spec__ = None
    sys.modules[name] = stand_in


class _Sink:
    """The structlog "logger": hands each rendered line to keelrun's output."""

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self._write = write

    def msg(self, line: str | bytes) -> None:
        self._write(line if isinstance(line, bytes) else line.encode() + b"\n")

    info = warning = error = msg


class Events:
    def __init__(self, formatter: LogFormatter, write: Callable[[bytes], None]) -> None:
        self._formatter = formatter
        self._write = write
        self._log: Any = None
        self.history: deque[Record] = deque(maxlen=HISTORY)
        self.followers: list[Follower] = []

    def _logger(self) -> Any:
        if self._log is None:
            structlog = import_structlog()
            render: Any
            if self._formatter.json_mode:
                render = structlog.processors.JSONRenderer(
                    serializer=json.dumps, ensure_ascii=False, default=str
                )
            else:
                render = self._render_text
            self._log = structlog.wrap_logger(
                _Sink(self._write),
                processors=[structlog.processors.add_log_level, self._shape, render],
                cache_logger_on_first_use=True,
            )
        return self._log

    def _shape(self, logger: object, method: str, event_dict: MutableMapping[str, Any]) -> Record:
        """Time stamp and key order (ts, proc, level, event, msg, fields); keep it for `logs`."""
        now = time.time()
        record: Record = {
            "ts": now,
            "proc": SYSTEM_NAME,
            "level": event_dict.pop("level"),
            "event": event_dict.pop("event"),
            "msg": event_dict.pop("msg"),
        }
        record.update(event_dict)
        self.history.append(record)
        for follower in tuple(self.followers):  # a follower may leave meanwhile
            follower(record)
        shown = dict(record)
        shown["ts"] = self._formatter.clock.iso(now)
        return shown

    def _render_text(self, logger: object, method: str, record: MutableMapping[str, Any]) -> bytes:
        return self._formatter.event_text(record.get("level"), str(record["msg"]))

    def info(self, event: str, msg: str, **fields: Any) -> None:
        """One event: a snake_case name, the sentence a person reads, and its fields."""
        self._logger().info(event, msg=msg, **fields)

    def warning(self, event: str, msg: str, **fields: Any) -> None:
        self._logger().warning(event, msg=msg, **fields)

    def error(self, event: str, msg: str, **fields: Any) -> None:
        self._logger().error(event, msg=msg, **fields)
