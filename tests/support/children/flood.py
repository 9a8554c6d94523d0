"""Writes numbered lines of a fixed length, fast, in big writes.

usage: flood.py NAME COUNT LENGTH [--stderr-every K]
Line i goes to stderr when K > 0 and i % K == 0, else to stdout. Each line is
"NAME STREAM SEQ " padded with a pattern to LENGTH bytes (newline excluded),
SEQ counting per stream, so a reader can check order and integrity per stream.
"""

import sys

name, count, length = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
every = int(sys.argv[5]) if len(sys.argv) > 5 else 0
out, err = sys.stdout.buffer, sys.stderr.buffer
seq = {"o": 0, "e": 0}
bufs: dict[str, list[bytes]] = {"o": [], "e": []}
PAD = b"abcdefghijklmnopqrstuvwxyz0123456789" * (length // 36 + 2)


def flush() -> None:
    for stream, f in (("o", out), ("e", err)):
        if bufs[stream]:
            f.write(b"".join(bufs[stream]))
            f.flush()
            bufs[stream].clear()


for i in range(count):
    stream = "e" if every and i % every == 0 else "o"
    head = b"%s %s %09d " % (name.encode(), stream.encode(), seq[stream])
    seq[stream] += 1
    bufs[stream].append(head + PAD[: length - len(head)] + b"\n")
    if len(bufs[stream]) >= 512:
        flush()
flush()
