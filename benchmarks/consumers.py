"""The two readers of a supervisor's stdout in the throughput workload.

Both read a pipe with ``poll`` + large reads, stop at a bounded idle timeout
(so a supervisor that loses lines cannot hang the run), and time from the
first byte to the moment every producer line has arrived.

- ``parse``: a Python log processor. It splits lines and checks every one:
  producer id, 12-digit sequence number (per producer, complete and in
  order), payload and length. This per-line Python work is the bottleneck
  (~2 M lines/s), so a good supervisor should be invisible behind it.
- ``drain``: reads 1 MiB at a time into one buffer and counts, in C, the
  newlines and the intact payloads. It shows the supervisor's own ceiling.
  It cannot tell a lost line from a mangled one (both count as lost), and
  a duplicated line would hide a lost one: it counts, it does not sequence.
"""

from __future__ import annotations

import os
import select
import time
from dataclasses import dataclass, field

from benchmarks.producer import LINE_BYTES, PAYLOAD

READ_BYTES = 1 << 20
CONTENT_TAIL = b" " + PAYLOAD
CONTENT_BYTES = LINE_BYTES - 1  # without the newline
PAYLOAD_HEAD = PAYLOAD[:10]


@dataclass
class FloodStats:
    producers: int
    lines_per_producer: int
    good: int = 0  # lines received intact, each ahead of the previous one of its producer
    mangled: int = 0  # a producer line whose content is damaged or mixed
    disorder: int = 0  # intact, but behind its producer's sequence (a duplicate or reorder)
    other: int = 0  # the supervisor's own lines (events, banners)
    done: int = 0  # producers whose DONE line arrived
    first: float | None = None
    last: float | None = None  # when the last producer line arrived
    complete: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def expected(self) -> int:
        return self.producers * self.lines_per_producer

    @property
    def lost(self) -> int:
        """Lines that never arrived, not counting those that arrived mangled."""
        return max(0, self.expected - self.good - self.mangled)

    @property
    def rate(self) -> float | None:
        if self.first is None or self.last is None or self.last <= self.first:
            return None
        return self.good / (self.last - self.first)


def _wait_readable(poller: select.poll, idle_timeout: float) -> bool:
    return bool(poller.poll(idle_timeout * 1000))


def parse(fd: int, producers: int, lines_per_producer: int, idle_timeout: float) -> FloodStats:
    stats = FloodStats(producers, lines_per_producer)
    expected = [0] * producers
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    carry = b""
    while stats.done < producers:
        if not _wait_readable(poller, idle_timeout):
            stats.notes.append(f"no output for {idle_timeout:g} s")
            break
        chunk = os.read(fd, READ_BYTES)
        if not chunk:
            stats.notes.append("supervisor closed its stdout early")
            break
        if stats.first is None:
            stats.first = time.perf_counter()
        lines = (carry + chunk).split(b"\n") if carry else chunk.split(b"\n")
        carry = lines.pop()
        for raw in lines:
            bar = raw.find(b"| ")
            line = raw[bar + 2 :] if bar >= 0 else raw
            if len(line) == CONTENT_BYTES and line.endswith(CONTENT_TAIL) and line[0] == 112:
                producer = line[1] - 48
                try:
                    seq = int(line[3:15])
                except ValueError:
                    stats.mangled += 1
                    continue
                if not 0 <= producer < producers:
                    stats.mangled += 1
                elif seq >= expected[producer]:  # a gap is lost lines: count them once, resync
                    expected[producer] = seq + 1
                    stats.good += 1
                else:
                    stats.disorder += 1
            elif line.endswith(b" DONE") and line[0] == 112:
                stats.done += 1
                stats.last = time.perf_counter()
            elif PAYLOAD_HEAD in raw or (line[:1] == b"p" and line[2:3] == b" "):
                stats.mangled += 1
            else:
                stats.other += 1
    stats.complete = stats.done == producers
    if not stats.complete and stats.last is None and stats.good:
        stats.last = time.perf_counter()
    return stats


def drain(fd: int, producers: int, lines_per_producer: int, idle_timeout: float) -> FloodStats:
    stats = FloodStats(producers, lines_per_producer)
    target = stats.expected
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    buf = bytearray(READ_BYTES)
    view = memoryview(buf)
    overlap = len(PAYLOAD) - 1
    tail = b""
    intact = 0
    while intact < target:
        if not _wait_readable(poller, idle_timeout):
            stats.notes.append(f"no output for {idle_timeout:g} s")
            break
        n = os.readv(fd, [buf])
        if n == 0:
            stats.notes.append("supervisor closed its stdout early")
            break
        now = time.perf_counter()
        if stats.first is None:
            stats.first = now
        found = buf.count(PAYLOAD, 0, n)
        if tail:  # a payload split across two reads
            found += (tail + bytes(view[: min(n, overlap)])).count(PAYLOAD)
        tail = bytes(view[max(0, n - overlap) : n])
        if found:
            intact += found
            stats.last = now
    stats.good = min(intact, target)
    stats.complete = intact >= target
    return stats
