"""TtyFramer, the framer of a pty master (keelrun/supervisor/terminal.py): pure logic."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from keelrun.supervisor.terminal import TtyFramer

MIB = 1024 * 1024


def feed_all(fr: TtyFramer, reads: list[bytes]) -> bytes:
    return b"".join(fr.feed(r) for r in reads) + fr.finish()


def test_crlf_and_lf_both_end_a_line() -> None:
    assert feed_all(TtyFramer(), [b"a\r\nb\nc\r\n"]) == b"a\nb\nc\n"


def test_cr_at_the_end_of_one_read_and_lf_at_the_start_of_the_next() -> None:
    fr = TtyFramer()
    assert fr.feed(b"one\r\ntwo\r") == b"one\n"
    assert fr.pending == b"two\r"
    assert fr.feed(b"\nthree") == b"two\n"
    assert fr.pending == b"three"
    assert fr.finish() == b"three\n"


def test_a_lone_cr_keeps_the_last_state_of_the_line() -> None:
    """A progress bar redraws with \\r: only \\r\\n and \\n end lines, and the line
    logged is what the bar shows last."""
    fr = TtyFramer()
    assert fr.feed(b"10%\r") == b""
    assert fr.pending == b"10%\r"  # as read: an attached terminal redraws it itself
    assert fr.feed(b"50%\r100%\r\nnext\r\n") == b"100%\nnext\n"
    assert feed_all(TtyFramer(), [b"bar 9%\r\x1b[Kdone\n"]) == b"\x1b[Kdone\n"
    assert feed_all(TtyFramer(strip=True), [b"bar 9%\r\x1b[Kdone\n"]) == b"done\n"
    assert feed_all(TtyFramer(), [b"a\rb\r", b"c"]) == b"c\n"  # the last line too


def test_cr_cr_lf_is_one_line_end() -> None:
    """An app writing \\r\\n on a terminal (ONLCR) sends \\r\\r\\n: one line end."""
    fr = TtyFramer()
    assert feed_all(fr, [b"x\r\r", b"\n"]) == b"x\n"
    assert feed_all(TtyFramer(), [b"\r\r\n"]) == b"\n"


def test_prompt_stays_pending_until_its_line_ends() -> None:
    fr = TtyFramer()
    assert fr.feed(b"> /app/views.py(12)index()\r\n-> return x\r\n(Pdb) ") == (
        b"> /app/views.py(12)index()\n-> return x\n"
    )
    assert fr.pending == b"(Pdb) "
    assert fr.feed(b"p 1+1\r\n2\r\n(Pdb) ") == b"(Pdb) p 1+1\n2\n"
    assert fr.pending == b"(Pdb) "


def test_raw_reads_reach_the_listener_before_framing() -> None:
    fr = TtyFramer(strip=True)
    seen: list[bytes] = []
    fr.on_raw = seen.append
    fr.feed(b"\x1b[1mhi\x1b[0m\r\n(Pdb")
    fr.feed(b") ")
    assert seen == [b"\x1b[1mhi\x1b[0m\r\n(Pdb", b") "]
    assert fr.pending == b"(Pdb) "


def test_strip_applies_to_lines_and_the_final_one() -> None:
    fr = TtyFramer(strip=True)
    assert fr.feed(b"\x1b[32mok\x1b[0m\r\n\x1b[") == b"ok\n"
    assert fr.feed(b"31mred") == b""
    assert fr.finish() == b"red\n"


def test_end_is_reported_once() -> None:
    fr = TtyFramer()
    ends: list[int] = []
    fr.on_end = lambda: ends.append(1)
    fr.feed(b"x")
    assert fr.finish() == b"x\n"
    assert fr.finish() == b""
    assert ends == [1]


def test_long_lines_are_cut_as_on_a_pipe() -> None:
    fr = TtyFramer()
    out = fr.feed(b"a" * (MIB + 5) + b"\r\n")
    assert [len(x) for x in out.split(b"\n")[:-1]] == [MIB, 5]


# Few distinct bytes, so that \r comes up often, next to line ends too.
_line = st.lists(st.sampled_from([b"a", b"\r", b"\xc3", b"\x1b", b"\xff"]), max_size=12).map(
    b"".join
)


def _shown(text: bytes) -> bytes:
    """A line as a terminal leaves it: its last piece between carriage returns."""
    return next((p for p in reversed(text.split(b"\r")) if p), b"")


def _ending(text: bytes, end: bytes) -> tuple[bytes, bytes]:
    # A text ending in \r followed by \n *is* a \r\n line end, as on any terminal.
    return (text.rstrip(b"\r") if end == b"\n" else text), end


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.builds(_ending, _line, st.sampled_from([b"\r\n", b"\n"])), max_size=20),
    _line,
    st.lists(st.integers(min_value=1, max_value=17), min_size=1, max_size=30),
)
def test_any_reads_give_the_lines(
    lines: list[tuple[bytes, bytes]], last: bytes, sizes: list[int]
) -> None:
    """However the kernel cuts the output into reads, the lines come out the same."""
    stream = b"".join(text + end for text, end in lines) + last
    reads, i, k = [], 0, 0
    while i < len(stream):
        reads.append(stream[i : i + sizes[k % len(sizes)]])
        i, k = i + sizes[k % len(sizes)], k + 1
    expected = b"".join(_shown(text) + b"\n" for text, _ in lines)
    expected += _shown(last) + b"\n" if last else b""
    assert feed_all(TtyFramer(), reads) == expected
