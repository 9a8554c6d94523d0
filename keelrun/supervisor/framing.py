"""Cutting a child's byte stream into whole lines (the log path's framing step).

Per read, never per line: a block is cut at its last newline and the rest is
kept for the next read. Lines longer than MAX_LINE come out in MAX_LINE pieces,
so memory stays bounded whatever a child writes.
"""

from __future__ import annotations

MAX_LINE = 1024 * 1024  # longer lines are emitted in pieces of this size


class LineFramer:
    """Keeps the unfinished tail of a stream and yields blocks of whole lines."""

    __slots__ = ("partial",)

    def __init__(self) -> None:
        self.partial = b""

    def feed(self, data: bytes) -> bytes:
        """Return the complete lines (ending in b"\\n") now available, maybe b""."""
        if self.partial:
            data = self.partial + data
        cut = data.rfind(b"\n") + 1
        if cut == len(data):
            self.partial = b""
            complete = data
        else:
            self.partial = data[cut:]
            complete = data[:cut]
            if len(self.partial) > MAX_LINE:
                complete += self._pieces()
        if len(complete) > MAX_LINE:
            complete = split_long_lines(complete)
        return complete

    def _pieces(self) -> bytes:
        # Only a tail strictly longer than MAX_LINE is surely a piece of a longer
        # line: a tail of exactly MAX_LINE may still be followed by its newline.
        out = []
        tail = self.partial
        while len(tail) > MAX_LINE:
            out.append(tail[:MAX_LINE] + b"\n")
            tail = tail[MAX_LINE:]
        self.partial = tail
        return b"".join(out)

    def finish(self) -> bytes:
        """At EOF: the final line without a newline is still a line."""
        tail, self.partial = self.partial, b""
        return tail + b"\n" if tail else b""


def split_long_lines(block: bytes) -> bytes:
    """Cut lines longer than MAX_LINE into MAX_LINE pieces (rare path)."""
    out = []
    for line in block[:-1].split(b"\n"):
        while len(line) > MAX_LINE:
            out.append(line[:MAX_LINE])
            line = line[MAX_LINE:]
        out.append(line)
    return b"\n".join(out) + b"\n"
