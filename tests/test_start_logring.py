"""LogRing (keelrun/supervisor/ring.py): the history behind `keelrun logs`."""

from __future__ import annotations

from keelrun.supervisor.ring import RING_LINES, LogRing


def block(start: int, n: int) -> bytes:
    return b"".join(b"line %d\n" % i for i in range(start, start + n))


def add(ring: LogRing, ts: float, stream: str, data: bytes) -> None:
    ring.append(ts, stream, data, data.count(b"\n"))


def test_keeps_at_least_the_last_1000_lines_in_order() -> None:
    ring = LogRing()
    assert RING_LINES >= 1000
    i = 0
    for size in [1, 7, 300, 1, 999, 2, 50] * 20:
        ring.append(float(i), "stdout", block(i, size), size)
        i += size
    tail = ring.tail(1000)
    assert [line for _, _, line in tail] == [b"line %d" % k for k in range(i - 1000, i)]


def test_memory_is_bounded_by_whole_blocks() -> None:
    ring = LogRing(max_lines=100)
    for i in range(0, 100_000, 10):
        ring.append(0.0, "stdout", block(i, 10), 10)
    assert len(ring.tail(10_000)) < 100 + 10


def test_tail_of_n_spans_blocks_and_keeps_streams_and_times() -> None:
    ring = LogRing()
    add(ring, 1.0, "stdout", b"a\nb\n")
    add(ring, 2.0, "stderr", b"c\n")
    add(ring, 3.0, "stdout", b"d\ne\n")
    assert ring.tail(3) == [(2.0, "stderr", b"c"), (3.0, "stdout", b"d"), (3.0, "stdout", b"e")]
    assert ring.tail(0) == []
    assert [line for *_, line in ring.tail(100)] == [b"a", b"b", b"c", b"d", b"e"]


def test_empty_lines_are_lines() -> None:
    ring = LogRing()
    add(ring, 0.0, "stdout", b"\n\nx\n")
    assert [line for *_, line in ring.tail(5)] == [b"", b"", b"x"]
