"""The pure log path: the one formatter (keelrun/logformat.py) and framing (framing.py)."""

from __future__ import annotations

import json
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keelrun.logformat import LogFormatter
from keelrun.supervisor import framing as output
from keelrun.supervisor.framing import MAX_LINE, LineFramer, split_long_lines

MIB = 1024 * 1024


def fmt(**kw: bool) -> LogFormatter:
    opts = {"json_mode": False, "color": False, "timestamp": False, "prefix": True, **kw}
    return LogFormatter(**opts)


def render(f: LogFormatter, name: str, stream: str, data: bytes) -> bytes:
    """The bytes a block becomes, whatever buffers the formatter hands out."""
    out = f.block(name, stream, data)
    if isinstance(out, tuple):
        return b"".join(bytes(part) for part in out[0])
    return bytes(out)


# ------------------------------------------------------------------ Formatter
def test_text_prefix_padded_to_keelrun_by_default() -> None:
    assert render(fmt(), "web.1", "stdout", b"a\nb\n") == b"web.1   | a\nweb.1   | b\n"


def test_text_prefix_padded_to_the_longest_name() -> None:
    f = fmt()
    f.set_names(["web.1", "background.12"])
    assert render(f, "web.1", "stdout", b"x\n") == b"web.1         | x\n"
    assert f.event_text("info", "hello") == b"keelrun       | hello\n"


def test_empty_lines_and_block_line_count() -> None:
    out = fmt().block("web.1", "stdout", b"\n\nz\n")
    if isinstance(out, tuple):
        assert out[1] == 3
    assert render(fmt(), "web.1", "stdout", b"\n\nz\n") == (
        b"web.1   | \nweb.1   | \nweb.1   | z\n"
    )


def test_timestamp() -> None:
    out = render(fmt(timestamp=True), "web.1", "stdout", b"a\nb\n").decode()
    assert re.fullmatch(r"(\d\d:\d\d:\d\d web\.1   \| [ab]\n){2}", out)


def test_no_prefix_leaves_lines_untouched() -> None:
    data = b"a\n\xff\xfe\n"
    assert render(fmt(prefix=False, timestamp=True), "web.1", "stdout", data) == data


def test_colour_per_type_and_bold_keelrun() -> None:
    f = fmt(color=True)
    f.set_types(["web", "worker"])
    web = render(f, "web.2", "stdout", b"x\n")
    worker = render(f, "worker.1", "stdout", b"y\n")
    code = re.compile(rb"^\x1b\[(\d+)m")
    assert code.match(web).group(1) != code.match(worker).group(1)
    assert web.endswith(b"\x1b[0mx\n") and worker.endswith(b"\x1b[0my\n")
    assert f.event_text("info", "hi").startswith(b"\x1b[1mkeelrun")
    assert f.event_text("error", "bad").endswith(b"\x1b[31mbad\x1b[0m\n")


def test_json_block() -> None:
    f = fmt(json_mode=True)
    out = render(f, "web.1", "stderr", b'plain\n"q" \\ \t\x01\n\xff ok \xc3\xa9\n\n')
    records = [json.loads(line) for line in out.decode().splitlines()]
    assert [r["msg"] for r in records] == ["plain", '"q" \\ \t\x01', "\ufffd ok é", ""]
    for r in records:
        assert list(r) == ["ts", "proc", "stream", "msg"]
        assert r["proc"] == "web.1" and r["stream"] == "stderr"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["ts"])


def test_json_name_is_escaped_and_events_are_records() -> None:
    f = fmt(json_mode=True)
    out = render(f, 'we"b.1', "stdout", b"x\n")
    assert json.loads(out)["proc"] == 'we"b.1'
    record = {"ts": 0.5, "proc": "keelrun", "level": "info", "event": "e", "msg": "m é", "pid": 3}
    shown = json.loads(f.event(record))
    assert shown == {**record, "ts": "1970-01-01T00:00:00.500Z"}


def test_a_history_line_renders_as_a_live_one() -> None:
    """`keelrun logs` (line) and `keelrun start` (block) give the same bytes, colours included."""
    for opts in ({"color": True, "timestamp": True}, {"timestamp": False}, {"prefix": False}):
        f = fmt(**opts)
        f.set_types(["web", "worker", "clock"])
        f.set_names(["worker.10"])
        ts = time.time()
        f.clock.text(ts)  # the clock's "now" second is ts's
        assert f.line(ts, "worker.2", "stdout", b"hello") == render(
            f, "worker.2", "stdout", b"hello\n"
        )


def test_a_history_line_in_json() -> None:
    line = fmt(json_mode=True).line(1_700_000_000.25, "worker.2", "stderr", b"h\xffi")
    assert json.loads(line) == {
        "ts": "2023-11-14T22:13:20.250Z",
        "proc": "worker.2",
        "stream": "stderr",
        "msg": "h\ufffdi",
    }


def test_colours_follow_procfile_order() -> None:
    a, b = fmt(color=True), fmt(color=True)
    a.set_types(["web", "worker"])
    b.set_types(["web", "worker"])
    b.set_types(["worker"])  # seen again later: keeps its colour
    assert a.color_of("worker.3") == b.color_of("worker.1") != a.color_of("web.1")


@given(st.lists(st.binary(max_size=20).filter(lambda b: b"\n" not in b), min_size=1, max_size=8))
def test_json_round_trips_any_bytes(lines: list[bytes]) -> None:
    data = b"\n".join(lines) + b"\n"
    out = render(fmt(json_mode=True), "w.1", "stdout", data)
    msgs = [json.loads(line)["msg"] for line in out.split(b"\n")[:-1]]
    assert msgs == [line.decode("utf-8", "replace") for line in lines]


# ----------------------------------------------------------------- LineFramer
def test_partial_lines_are_joined() -> None:
    fr = LineFramer()
    assert fr.feed(b"ab") == b""
    assert fr.feed(b"c\nde") == b"abc\n"
    assert fr.feed(b"f\ng\n") == b"def\ng\n"
    assert fr.finish() == b""


def test_final_partial_line_is_a_line() -> None:
    fr = LineFramer()
    fr.feed(b"x\ntail")
    assert fr.finish() == b"tail\n"
    assert fr.finish() == b""


def test_exactly_one_mib_line_whose_newline_comes_in_the_next_read() -> None:
    fr = LineFramer()
    assert fr.feed(b"a" * MIB) == b""
    assert fr.feed(b"\nnext") == b"a" * MIB + b"\n"
    assert fr.finish() == b"next\n"


def test_one_mib_plus_one_is_cut_as_soon_as_it_is_known() -> None:
    fr = LineFramer()
    assert fr.feed(b"a" * (MIB + 1)) == b"a" * MIB + b"\n"
    assert fr.feed(b"\n") == b"a\n"


def test_three_mib_line_in_small_reads_gives_exact_pieces() -> None:
    fr = LineFramer()
    line = bytes(range(11, 256)) * (3 * MIB // 245) + b"x" * (3 * MIB % 245) + b"xyz"
    out = b""
    for i in range(0, len(line), 65536):
        out += fr.feed(line[i : i + 65536])
    out += fr.feed(b"\n") + fr.finish()
    pieces = out.split(b"\n")[:-1]
    assert [len(p) for p in pieces] == [MIB, MIB, MIB, 3]
    assert b"".join(pieces) == line


def test_two_mib_line_in_one_read() -> None:
    fr = LineFramer()
    out = fr.feed(b"s\n" + b"b" * (2 * MIB) + b"\nt\n")
    assert [len(p) for p in out.split(b"\n")[:-1]] == [1, MIB, MIB, 1]


def test_split_long_lines() -> None:
    block = b"short\n" + b"x" * (2 * MIB + 3) + b"\n\n" + b"y" * MIB + b"\n"
    lines = split_long_lines(block).split(b"\n")
    assert [len(x) for x in lines] == [5, MIB, MIB, 3, 0, MIB, 0]


def reference(stream: bytes, limit: int) -> list[bytes]:
    """Lines of stream (a final partial one included), each cut into limit-sized pieces."""
    lines = stream.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    out = []
    for line in lines:
        while len(line) > limit:
            out.append(line[:limit])
            line = line[limit:]
        out.append(line)
    return out


@settings(max_examples=300)
@given(
    st.binary(max_size=200).map(lambda b: b.replace(b"\x00", b"\n")),
    st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=50),
)
def test_any_chunking_gives_the_same_lines(stream: bytes, cuts: list[int]) -> None:
    limit = 8
    with pytest.MonkeyPatch.context() as mp:  # small pieces so short examples reach them
        mp.setattr(output, "MAX_LINE", limit)
        fr = LineFramer()
        out, i, k = b"", 0, 0
        while i < len(stream):
            size = cuts[k % len(cuts)]
            out += fr.feed(stream[i : i + size])
            i, k = i + size, k + 1
        out += fr.finish()
    assert out == b"".join(line + b"\n" for line in reference(stream, limit))


def test_max_line_is_one_mib() -> None:
    assert MAX_LINE == MIB


def _reference_json(name: str, stream: str, data: bytes, ts: str) -> bytes:
    """One json.dumps per line: what the block formatting must equal, byte for byte."""
    out = b""
    for line in data[:-1].split(b"\n"):
        record = {"ts": ts, "proc": name, "stream": stream, "msg": line.decode("utf-8", "replace")}
        out += json.dumps(record, ensure_ascii=False).encode() + b"\n"
    return out


@given(
    st.lists(
        st.one_of(
            st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7F), max_size=30),
            st.text(max_size=20),
        ).map(lambda t: t.replace("\n", "").encode("utf-8", "surrogatepass")),
        min_size=1,
        max_size=8,
    )
)
def test_json_fast_and_escaping_paths_give_the_same_bytes(lines: list[bytes]) -> None:
    f = fmt(json_mode=True)
    data = b"\n".join(lines) + b"\n"
    out = render(f, "web.1", "stdout", data)
    ts = json.loads(out.split(b"\n")[0])["ts"]  # the clock may have ticked since
    assert out == _reference_json("web.1", "stdout", data, ts)


def test_the_name_column_never_narrows() -> None:
    """After the release phase (`release.1`) or a scale-down the lines do not shift."""
    f = fmt(timestamp=False)
    f.set_names(["release.1"])
    f.set_names(["web.1"])
    assert render(f, "web.1", "stdout", b"up\n") == b"web.1     | up\n"
    f.set_names(["background.12"])
    assert render(f, "web.1", "stdout", b"up\n") == b"web.1         | up\n"
