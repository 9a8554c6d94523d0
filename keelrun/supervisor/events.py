"""keelrun's own events, through structlog, onto the same output as the children.

structlog is imported on the first event, after the formation has been
spawned: its import (~75 ms) must not delay the first child.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

from keelrun.supervisor.output import SYSTEM_NAME, Formatter


class _Sink:
    """The structlog "logger": hands each rendered line to keelrun's output."""

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self._write = write

    def msg(self, line: bytes) -> None:
        self._write(line)

    info = warning = error = msg


def _import_structlog() -> Any:
    """structlog imports rich, when installed (textual brings it), for tracebacks
    keelrun never prints: that would double the import. It is hidden meanwhile."""
    import sys

    hide = "rich" not in sys.modules
    if hide:
        sys.modules["rich"] = None  # type: ignore[assignment]  # import rich -> ImportError
    try:
        import structlog
    finally:
        if hide:
            del sys.modules["rich"]
    return structlog


class Events:
    def __init__(self, formatter: Formatter, write: Callable[[bytes], None]) -> None:
        self._formatter = formatter
        self._write = write
        self._log: Any = None

    def _logger(self) -> Any:
        if self._log is None:
            structlog = _import_structlog()
            self._log = structlog.wrap_logger(
                _Sink(self._write),
                processors=[self._render],
                cache_logger_on_first_use=True,
            )
        return self._log

    def _render(self, logger: object, method: str, event_dict: MutableMapping[str, Any]) -> bytes:
        event = event_dict.pop("event")
        text = event_dict.pop("msg")
        record: dict[str, Any] = {
            "ts": self._formatter.clock.iso(),
            "proc": SYSTEM_NAME,
            "event": event,
            "msg": text,
        }
        record.update(event_dict)
        return self._formatter.event(text, record)

    def emit(self, event: str, msg: str, **fields: Any) -> None:
        """One event: a snake_case name, the sentence a person reads, and its fields."""
        self._logger().info(event, msg=msg, **fields)
