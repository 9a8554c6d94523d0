"""Per-instance history for `keelrun logs`: blocks of lines, trimmed by line count.

Stored per block, not per line, so the hot path pays one append and one
bytes.count per read.
"""

from __future__ import annotations

from collections import deque

RING_LINES = 1000


class LogRing:
    __slots__ = ("_blocks", "_lines", "max_lines")

    def __init__(self, max_lines: int = RING_LINES) -> None:
        self.max_lines = max_lines
        # (ts, stream, data, lines): data holds complete lines, each ending in b"\n"
        self._blocks: deque[tuple[float, str, bytes, int]] = deque()
        self._lines = 0

    def append(self, ts: float, stream: str, data: bytes, lines: int) -> None:
        blocks = self._blocks
        blocks.append((ts, stream, data, lines))
        total = self._lines + lines
        # Drop whole blocks while the newer ones still hold max_lines.
        while total - blocks[0][3] >= self.max_lines:
            total -= blocks.popleft()[3]
        self._lines = total

    def tail(self, n: int) -> list[tuple[float, str, bytes]]:
        """The last n lines as (ts, stream, line without newline), oldest first."""
        out: list[tuple[float, str, bytes]] = []
        for ts, stream, data, _ in reversed(self._blocks):
            if len(out) >= n:
                break
            for line in reversed(data[:-1].split(b"\n")):
                out.append((ts, stream, line))
                if len(out) >= n:
                    break
        out.reverse()
        return out
