"""Log flood producer: writes N numbered 100-byte lines to stdout as fast as it can.

Usage: producer.py ID N [--exit]

Line format (100 bytes with the newline): ``p<ID> <SEQ:012d> <PAYLOAD>\\n``.
After the last line it writes ``p<ID> DONE`` and then waits for a signal
(honcho and foreman stop every process as soon as one exits, which would cut
the other producers short); ``--exit`` exits instead (for the speed check).

Formatting a line per line in Python would make the producer the bottleneck,
so a block of 10 000 lines is built once and only the block-number digits of
the sequence field are rewritten per block, with strided slice assignments
that run in C. Writes are 4000 bytes: below PIPE_BUF, so that four producers
sharing one pipe (the raw baseline) never interleave inside a line.

Standalone on purpose: it imports nothing from the benchmark package.
"""

from __future__ import annotations

import os
import signal
import sys

LINE_BYTES = 100
BLOCK_LINES = 10_000  # a power of ten: the low 4 digits of SEQ are the index in the block
BLOCK_DIGITS = 8  # high digits of the 12-digit SEQ: the block number
SEQ_OFFSET = 3  # "pN " precedes SEQ
WRITE_BYTES = 4000  # 40 lines, <= PIPE_BUF (4096): atomic on a shared pipe
PAYLOAD = b"<" + (b"abcdefghijklmnopqrstuvwxyz" * 4)[:81] + b">"  # 83 bytes, no '|'


def build_block(producer: int) -> bytearray:
    lines = [b"p%d %012d " % (producer, i) + PAYLOAD + b"\n" for i in range(BLOCK_LINES)]
    block = bytearray(b"".join(lines))
    assert len(block) == LINE_BYTES * BLOCK_LINES
    return block


def set_block_number(block: bytearray, number: int, previous: bytes) -> bytes:
    """Rewrite the block-number digits of every line; only digits that changed."""
    digits = b"%0*d" % (BLOCK_DIGITS, number)
    for d in range(BLOCK_DIGITS):
        if digits[d] != previous[d]:
            block[SEQ_OFFSET + d :: LINE_BYTES] = digits[d : d + 1] * BLOCK_LINES
    return digits


def write_all(fd: int, data: memoryview) -> None:
    for off in range(0, len(data), WRITE_BYTES):
        chunk = data[off : off + WRITE_BYTES]
        while chunk:
            chunk = chunk[os.write(fd, chunk) :]


def produce(producer: int, count: int, fd: int = 1) -> None:
    block = build_block(producer)
    view = memoryview(block)
    digits = b"0" * BLOCK_DIGITS
    written = 0
    number = 0
    while written < count:
        digits = set_block_number(block, number, digits)
        lines = min(BLOCK_LINES, count - written)
        write_all(fd, view[: lines * LINE_BYTES])
        written += lines
        number += 1
    write_all(fd, memoryview(b"p%d DONE\n" % producer))


def main(argv: list[str]) -> None:
    # Die quietly, like a C program, when the reader goes away.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    producer, count = int(argv[0]), int(argv[1])
    produce(producer, count)
    if "--exit" in argv:
        return
    while True:
        signal.pause()


if __name__ == "__main__":
    main(sys.argv[1:])
