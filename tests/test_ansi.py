"""Escape removal for tty instances' lines (keelrun/supervisor/ansi.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keelrun.supervisor.ansi import strip_ansi

ESC = b"\x1b"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        (b"\x1b[32mgreen\x1b[0m\n", b"green\n"),
        (b"\x1b[1;38;5;208mbold orange\x1b[m\n", b"bold orange\n"),
        (b"\x1b[?25lhidden cursor\x1b[?25h\n", b"hidden cursor\n"),
        (b"\x1b[2J\x1b[Hclear\n", b"clear\n"),
        (b"\x1b]0;window title\x07text\n", b"text\n"),
        (b"\x1b]8;;https://example.com\x1b\\link\x1b]8;;\x1b\\\n", b"link\n"),
        (b"\x1bP1$r0m\x1b\\dcs\n", b"dcs\n"),
        (b"\x1b(Bcharset\x1b7save\x1b8\x1b=keypad\n", b"charsetsavekeypad\n"),
        (b"\x1b[1 qcursor style\n", b"cursor style\n"),  # CSI with an intermediate
    ],
)
def test_known_sequences(raw: bytes, clean: bytes) -> None:
    assert strip_ansi(raw) == clean


def test_utf8_text_is_untouched() -> None:
    # 0x9b is CSI in 8-bit C1 form, and also a UTF-8 continuation byte (in "ě").
    text = "žluťoučký kůň ě → ✓ 🐍\n".encode()
    assert b"\x9b" in text
    assert strip_ansi(text) is text
    assert strip_ansi(b"\x1b[31m" + text) == text


def test_a_sequence_still_open_at_the_line_end_ends_there() -> None:
    assert strip_ansi(b"a\x1b[38;5\nnext\n") == b"a\nnext\n"
    assert strip_ansi(b"a\x1b]0;unterminated title\nnext\n") == b"a\nnext\n"
    assert strip_ansi(b"lone escape\x1b\n") == b"lone escape\n"


def test_non_utf8_bytes_pass() -> None:
    assert strip_ansi(b"\xff\xfe\x1b[0m\x80\n") == b"\xff\xfe\x80\n"


# ---------------------------------------------------------------- hypothesis
_text = st.binary(max_size=40).map(lambda b: b.replace(ESC, b""))
_params = st.text(alphabet="0123456789;:<=>?", max_size=8)
_csi = st.builds(
    lambda p, i, f: b"\x1b[" + p.encode() + i + bytes([f]),
    _params,
    st.sampled_from([b"", b" ", b"!", b"$"]),
    st.integers(0x40, 0x7E),
)
_body = st.binary(max_size=20).map(lambda b: bytes(c for c in b if c not in (0x07, 0x1B, 0x0A)))
_string = st.builds(
    lambda kind, body, end: b"\x1b" + kind + body + end,
    st.sampled_from([b"]", b"P", b"X", b"^", b"_"]),
    _body,
    st.sampled_from([b"\x07", b"\x1b\\"]),
)
# Other escapes: final bytes 0x30-0x7e except the five that open a string and "[".
_other = st.builds(
    lambda i, f: b"\x1b" + i + bytes([f]),
    st.sampled_from([b"", b"(", b"#", b" "]),
    st.integers(0x30, 0x7E).filter(lambda c: c not in b"[]PX^_"),
)
_sequence = st.one_of(_csi, _string, _other)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_text, _sequence), max_size=12), _text)
def test_whole_sequences_between_text_leave_exactly_the_text(
    parts: list[tuple[bytes, bytes]], last: bytes
) -> None:
    raw = b"".join(t + s for t, s in parts) + last
    assert strip_ansi(raw) == b"".join(t for t, _ in parts) + last


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_no_escape_left_and_idempotent(data: bytes) -> None:
    out = strip_ansi(data)
    assert ESC not in out
    assert strip_ansi(out) == out
    assert len(out) <= len(data)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=60), min_size=1, max_size=8))
def test_stripping_a_block_equals_stripping_its_lines(pieces: list[bytes]) -> None:
    """No sequence crosses a newline: per-block stripping of the log path is exact."""
    lines = [p.replace(b"\n", b"") + b"\n" for p in pieces]
    assert strip_ansi(b"".join(lines)) == b"".join(strip_ansi(line) for line in lines)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_text_without_escape_is_returned_as_is(text: str) -> None:
    data = text.replace("\x1b", "").encode()
    assert strip_ansi(data) == data
