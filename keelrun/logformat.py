"""The one log formatter: `keelrun start`, `keelrun logs` and `keelrun top` render with it.

Text: ``HH:MM:SS web.1   | text``, names padded to the longest, the name
coloured by its type (colours assigned in Procfile order, so a type has the
same colour in every command), the time dimmed, keelrun's own name in bold.
JSON: one object a line, ``{"ts", "proc", "stream", "msg"}`` for app lines;
keelrun's events are rendered by keelrun.supervisor.events and written as is.

The hot path is ``block``: a whole read of complete lines is formatted with
one ``bytes.replace`` (text) or one ``json.dumps`` (JSON), never per line.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

Buffer = bytes | memoryview

SYSTEM_NAME = "keelrun"
COLORS = (36, 33, 32, 35, 34, 31, 96, 93, 92, 95, 94, 91)
BOLD = 1
UNKNOWN_COLOR = 37
DIM = b"\x1b[2m"
RESET = b"\x1b[0m"
LEVEL_COLORS = {"warning": b"\x1b[33m", "error": b"\x1b[31m"}


def iso_time(ts: float) -> str:
    """``2026-11-26T04:15:00.123Z``: UTC with milliseconds."""
    ms = int(ts * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


# Bytes a JSON string holds as they are: printable ASCII but '"' and '\\', and the
# newline that ends each line. Anything else takes the json.dumps path.
_JSON_PLAIN = bytes(b for b in range(0x20, 0x80) if b not in b'"\\') + b"\n"
_HIGH = bytes(range(0x80, 0x100))


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class Clock:
    """Formatted timestamps, recomputed at most once per second (text) / ms (ISO)."""

    __slots__ = ("_iso", "_iso_ms", "_sec", "_text")

    def __init__(self) -> None:
        self._sec = -1
        self._text = b""
        self._iso_ms = -1
        self._iso = ""

    def text(self, ts: float | None = None) -> bytes:
        sec = int(time.time() if ts is None else ts)
        if sec != self._sec:
            self._sec = sec
            self._text = time.strftime("%H:%M:%S", time.localtime(sec)).encode()
        return self._text

    def iso(self, ts: float | None = None) -> str:
        ms = int((time.time() if ts is None else ts) * 1000)
        if ms != self._iso_ms:
            self._iso_ms = ms
            self._iso = iso_time(ms / 1000)
        return self._iso


class LogFormatter:
    """Renders lines of named processes as text or JSON; see the module docstring."""

    def __init__(
        self,
        *,
        json_mode: bool,
        color: bool,
        timestamp: bool = True,
        prefix: bool = True,
        types: Iterable[str] = (),
    ) -> None:
        self.json_mode = json_mode
        self.color = color and not json_mode
        self.timestamp = timestamp and prefix
        self.prefix = prefix
        self.clock = Clock()
        self._width = len(SYSTEM_NAME)
        self._colors: dict[str, int] = {}
        self._name_cache: dict[str, bytes] = {}
        self.set_types(types)

    # -- layout -------------------------------------------------------------
    def set_types(self, types: Iterable[str]) -> None:
        """Colour each type by its position in the Procfile (new types get the next colours)."""
        for t in types:
            if t not in self._colors:
                self._colors[t] = COLORS[len(self._colors) % len(COLORS)]
        self._name_cache.clear()

    @property
    def types(self) -> list[str]:
        return list(self._colors)

    @property
    def width(self) -> int:
        return self._width

    def set_names(self, names: Iterable[str]) -> None:
        """Pad names to the longest of the run so far (keelrun's own name included):
        the column never narrows, so the end of the release phase or a scale-down
        does not shift the lines that follow."""
        self.set_width(max([self._width, *map(len, names)]))

    def set_width(self, width: int) -> None:
        if width != self._width:
            self._width = width
            self._name_cache.clear()

    def color_of(self, name: str) -> int:
        if name == SYSTEM_NAME:
            return BOLD
        return self._colors.get(name.rsplit(".", 1)[0], UNKNOWN_COLOR)

    def _name_part(self, name: str) -> bytes:
        cached = self._name_cache.get(name)
        if cached is None:
            padded = name.ljust(self._width).encode()
            if self.color:
                cached = b"\x1b[%dm" % self.color_of(name) + padded + b" | " + RESET
            else:
                cached = padded + b" | "
            self._name_cache[name] = cached
        return cached

    def line_prefix(self, name: str, ts: float | None = None) -> bytes:
        """``HH:MM:SS name | `` for a line written now (or at ``ts``)."""
        if not self.prefix:
            return b""
        part = self._name_part(name)
        if self.timestamp:
            stamp = self.clock.text(ts)
            if self.color:
                return DIM + stamp + RESET + b" " + part
            return stamp + b" " + part
        return part

    # -- the hot path ---------------------------------------------------------
    def block(self, name: str, stream: str, data: bytes) -> tuple[list[Buffer], int]:
        """Format complete lines (``data`` ends with a newline): (buffers, line count)."""
        if self.json_mode:
            return self._json_block(name, stream, data)
        prefix = self.line_prefix(name)
        if not prefix:
            return [data], data.count(b"\n")
        # One copy: every newline gains the prefix after it, so the result ends
        # with one prefix too many, which a view leaves out (slicing bytes would
        # copy again); the growth in length counts the lines.
        body = data.replace(b"\n", b"\n" + prefix)
        lines = (len(body) - len(data)) // len(prefix)
        return [prefix, memoryview(body)[: -len(prefix)]], lines

    def _json_block(self, name: str, stream: str, data: bytes) -> tuple[list[Buffer], int]:
        head = '{"ts": "%s", "proc": %s, "stream": "%s", "msg": ' % (
            self.clock.iso(),
            json.dumps(name),
            stream,
        )
        odd = data.translate(None, _JSON_PLAIN)
        if not odd or (not odd.translate(None, _HIGH) and _is_utf8(data)):
            # Nothing to escape (the common case): each line is already the body
            # of its JSON string, so one replace frames every record, as in text.
            opening = head.encode() + b'"'
            body = data.replace(b"\n", b'"}\n' + opening)
            lines = (len(body) - len(data)) // (len(opening) + 2)
            return [opening, memoryview(body)[: -len(opening)]], lines
        # One C-level dumps for the whole block: the item separator closes one
        # record and opens the next, so no Python code runs per line.
        lines = data[:-1].decode("utf-8", "replace").split("\n")
        body = json.dumps(lines, ensure_ascii=False, separators=("}\n" + head, ": ")).encode()
        # The list's brackets are dropped with a view: slicing would copy the block twice.
        return [head.encode(), memoryview(body)[1:-1], b"}\n"], len(lines)

    # -- single records (history, events) -------------------------------------
    def line(self, ts: float, name: str, stream: str, msg: bytes) -> bytes:
        """One line of ``name`` written at ``ts`` (``keelrun logs`` and ``top``)."""
        if self.json_mode:
            record = {
                "ts": self.clock.iso(ts),
                "proc": name,
                "stream": stream,
                "msg": msg.decode("utf-8", "replace"),
            }
            return (json.dumps(record, ensure_ascii=False) + "\n").encode()
        return self.line_prefix(name, ts) + msg + b"\n"

    def event_text(self, level: object, text: str, ts: float | None = None) -> bytes:
        """One of keelrun's own events as a text line; warnings and errors coloured."""
        body = text.encode()
        colour = LEVEL_COLORS.get(str(level)) if self.color else None
        if colour is not None:
            body = colour + body + RESET
        return self.line_prefix(SYSTEM_NAME, ts) + body + b"\n"

    def event(self, record: Mapping[str, Any]) -> bytes:
        """An event record from the history (``ts`` a Unix time), as ``start`` prints it."""
        ts = float(record["ts"])
        if self.json_mode:
            shown = dict(record)
            shown["ts"] = self.clock.iso(ts)
            return (json.dumps(shown, ensure_ascii=False, default=str) + "\n").encode()
        return self.event_text(record.get("level"), str(record.get("msg", "")), ts)
