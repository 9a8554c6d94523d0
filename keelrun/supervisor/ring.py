"""Per-instance history for `keelrun logs`: blocks of lines, trimmed by line count.

Stored per block, not per line, so the hot path pays one append and one
bytes.count per read.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

RING_LINES = 1000


class Block(NamedTuple):
    ts: float
    stream: str
    data: bytes  # complete lines, each ending in b"\n"
    lines: int


class LogRing:
    __slots__ = ("_blocks", "_lines", "max_lines")

    def __init__(self, max_lines: int = RING_LINES) -> None:
        self.max_lines = max_lines
        self._blocks: deque[Block] = deque()
        self._lines = 0

    def append(self, ts: float, stream: str, data: bytes) -> None:
        n = data.count(b"\n")
        self._blocks.append(Block(ts, stream, data, n))
        self._lines += n
        blocks = self._blocks
        # Keep whole blocks while the older ones are not needed for max_lines.
        while self._lines - blocks[0].lines >= self.max_lines:
            self._lines -= blocks.popleft().lines

    def tail(self, n: int) -> list[tuple[float, str, bytes]]:
        """The last n lines as (ts, stream, line without newline), oldest first."""
        out: list[tuple[float, str, bytes]] = []
        for block in reversed(self._blocks):
            if len(out) >= n:
                break
            lines = block.data[:-1].split(b"\n")
            for line in reversed(lines):
                out.append((block.ts, block.stream, line))
                if len(out) >= n:
                    break
        out.reverse()
        return out
