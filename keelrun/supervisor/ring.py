"""Per-instance history for `keelrun logs`: blocks of lines, trimmed by line count.

Stored per block, not per line, so the hot path pays one append and one
bytes.count per read.
"""

from __future__ import annotations

from collections import deque

RING_LINES = 1000
# ...unless they weigh more than this: a thousand 1 MiB lines would hold a
# gigabyte per instance. The newest block is always kept.
RING_BYTES = 4 * 1024 * 1024


class LogRing:
    __slots__ = ("_blocks", "_bytes", "_lines", "max_bytes", "max_lines")

    def __init__(self, max_lines: int = RING_LINES, max_bytes: int = RING_BYTES) -> None:
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self._bytes = 0
        # (ts, stream, data, lines): data holds complete lines, each ending in b"\n"
        self._blocks: deque[tuple[float, str, bytes, int]] = deque()
        self._lines = 0

    def append(self, ts: float, stream: str, data: bytes, lines: int) -> None:
        blocks = self._blocks
        blocks.append((ts, stream, data, lines))
        total = self._lines + lines
        size = self._bytes + len(data)
        # Drop whole blocks while the newer ones still hold max_lines, or while
        # the ring is over its byte budget.
        while len(blocks) > 1 and (total - blocks[0][3] >= self.max_lines or size > self.max_bytes):
            _, _, old, n = blocks.popleft()
            total -= n
            size -= len(old)
        self._lines = total
        self._bytes = size

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
