"""`LineLog`: a child's output as decoded lines, collected by a thread, waited on by tests."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable


class LineLog:
    """``lines`` grows as a thread reads the stream; ``eof`` once the stream ended."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.eof = False
        self._cond = threading.Condition()

    def _collect(self, stream: Iterable[bytes]) -> threading.Thread:
        def pump() -> None:
            for raw in stream:
                with self._cond:
                    self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                    self._cond.notify_all()
            with self._cond:
                self.eof = True
                self._cond.notify_all()

        t = threading.Thread(target=pump, daemon=True)
        t.start()
        return t

    def mark(self) -> int:
        """Index of the next line: pass as ``start`` to wait only for later lines."""
        with self._cond:
            return len(self.lines)

    def wait_for_line(self, pattern: str, timeout: float = 10.0, start: int = 0) -> re.Match[str]:
        """The first line at or after index ``start`` that matches ``pattern`` (re.search)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        i = start
        with self._cond:
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i])
                    if m:
                        return m
                    i += 1
                left = deadline - time.monotonic()
                if self.eof or left <= 0:
                    tail = "\n".join(self.lines[-30:])
                    why = "EOF" if self.eof else f"{timeout:g}s"
                    raise AssertionError(
                        f"no line matching {pattern!r} ({why}); last lines:\n{tail}"
                    )
                self._cond.wait(left)

    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)
