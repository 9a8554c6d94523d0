"""Removing terminal escape sequences from the lines of tty instances.

Used in JSON mode and when keelrun's stdout is not a terminal (README,
"Terminals"). Only sequences introduced by ESC (0x1b) are removed: the 8-bit
C1 forms (0x9b for CSI...) are not, because those bytes are continuation
bytes of ordinary UTF-8 text.

The log path hands over whole lines (blocks cut at a newline), and no pattern
below can cross a newline, so stripping a block equals stripping its lines
one by one: a sequence split across two reads of the pty is joined by the
framer before it gets here. A sequence that is still open at the end of a
line (never produced by real programs) ends there: what was read of it is
removed, the next line is plain text again.
"""

from __future__ import annotations

import re

_ANSI = re.compile(
    rb"\x1b(?:"
    # CSI: parameters 0x30-0x3f, intermediates 0x20-0x2f, final 0x40-0x7e.
    rb"\[[0-?]*[ -/]*[@-~]?"
    # OSC, DCS, SOS, PM, APC strings, ended by BEL or ST (ESC \).
    rb"|[\]PX^_][^\x07\x1b\n]*(?:\x07|\x1b\\)?"
    # Any other escape: intermediates, then a final byte 0x30-0x7e.
    rb"|[ -/]*[0-~]?"
    rb")"
)
_sub = _ANSI.sub


def strip_ansi(data: bytes) -> bytes:
    """``data`` without escape sequences (the same object when it holds none)."""
    if b"\x1b" not in data:  # memchr: the common case costs next to nothing
        return data
    return _sub(b"", data)
