"""Output and lines with a real keelrun: formats, colour, JSON, odd lines."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest
from conftest import make_app
from support import py
from support.runner import base_env

pytestmark = pytest.mark.timeout(30)

TS = r"\d\d:\d\d:\d\d"
MIB = 1024 * 1024


def test_text_lines_are_prefixed_with_time_and_padded_name(tmp_path: Path, keelrun) -> None:
    app = make_app(tmp_path, "web: echo hello web\nbackground_job: echo hello job\n")
    run = keelrun.start("start", "--restart", "never", cwd=app)
    assert run.wait_exit() == 0
    lines = run.text_lines()
    width = len("background_job.1")  # the longest name
    web = [line for line in lines if line.endswith("| hello web")]
    assert len(web) == 1
    assert re.fullmatch(rf"{TS} web\.1 {{{width - 5}}} \| hello web", web[0]), web
    job = [line for line in lines if line.endswith("| hello job")]
    assert re.fullmatch(rf"{TS} background_job\.1 \| hello job", job[0]), job
    # keelrun's own events share the stream and the padding.
    own = [line for line in lines if re.match(rf"{TS} keelrun +\| ", line)]
    assert any("started web.1" in line for line in own), lines
    assert all(line[9 : 9 + width + 3] == "keelrun".ljust(width) + " | " for line in own)


def test_keelrun_name_counts_for_padding(tmp_path: Path, keelrun) -> None:
    app = make_app(tmp_path, "w: echo short\n")
    run = keelrun.start("start", "--no-timestamp", cwd=app)
    assert run.wait_exit() == 0
    lines = run.text_lines()
    assert "w.1     | short" in lines  # padded to len("keelrun") == 7
    assert any(line.startswith("keelrun | started w.1") for line in lines), lines


def test_no_timestamp_and_no_prefix(tmp_path: Path, keelrun) -> None:
    app = make_app(tmp_path, "web: echo hello\n")
    run = keelrun.start("start", "--no-timestamp", cwd=app)
    assert run.wait_exit() == 0
    assert "web.1   | hello" in run.text_lines()

    bare = keelrun.start("start", "--no-prefix", cwd=app)
    assert bare.wait_exit() == 0
    lines = bare.text_lines()
    assert "hello" in lines
    assert not any("| hello" in line for line in lines)


def test_no_colour_when_stdout_is_not_a_terminal(tmp_path: Path, keelrun) -> None:
    app = make_app(tmp_path, "web: echo hello\n")
    run = keelrun.start("start", cwd=app)
    assert run.wait_exit() == 0
    assert not any(b"\x1b" in line for line in run.lines)
    assert any(line.endswith(b"| hello") for line in run.lines)


def test_colour_on_a_terminal(tmp_path: Path, keelrun) -> None:
    app = make_app(tmp_path, "web: echo hello\nworker: echo there\n")
    run = keelrun.start("start", cwd=app, mode="pty")
    assert run.wait_exit() == 0
    web = [line for line in run.lines if line.endswith(b"m" + b"hello")]
    worker = [line for line in run.lines if line.endswith(b"m" + b"there")]
    assert web and worker, run.tail_text()
    colour = re.compile(rb"\x1b\[(\d+)m(web\.1|worker\.1)")
    web_colour, worker_colour = colour.search(web[0]), colour.search(worker[0])
    assert web_colour and worker_colour, (web, worker)
    assert web_colour.group(1) != worker_colour.group(1), "each type has its own colour"
    assert web[0].endswith(b"\x1b[0mhello"), "colour is reset before the text"


@pytest.mark.parametrize("how", ["NO_COLOR", "--no-color"])
def test_colour_turned_off_on_a_terminal(tmp_path: Path, keelrun, how: str) -> None:
    app = make_app(tmp_path, "web: echo hello\n")
    if how == "NO_COLOR":
        run = keelrun.start("start", cwd=app, mode="pty", env=base_env(NO_COLOR="1"))
    else:
        run = keelrun.start("start", how, cwd=app, mode="pty")
    assert run.wait_exit() == 0
    assert any(line.endswith(b"web.1   | hello") for line in run.lines), run.tail_text()
    assert not any(b"\x1b" in line for line in run.lines)


def test_json_lines_and_streams(tmp_path: Path, keelrun) -> None:
    app = make_app(tmp_path, "web: echo out; echo err >&2; echo '\"quoted\" \\ back'\n")
    run = keelrun.start("start", "--log-format", "json", cwd=app)
    assert run.wait_exit() == 0
    mine = [r for r in run.records() if r["proc"] == "web.1"]
    assert {"out", "err", '"quoted" \\ back'} == {r["msg"] for r in mine}
    for r in mine:
        assert list(r) == ["ts", "proc", "stream", "msg"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["ts"])
    streams = {r["msg"]: r["stream"] for r in mine}
    assert streams == {"out": "stdout", "err": "stderr", '"quoted" \\ back': "stdout"}


def test_json_events_of_keelrun(tmp_path: Path, keelrun) -> None:
    go = tmp_path / "go"
    os.mkfifo(go)
    app = make_app(tmp_path, f"web: echo up; read x < {go}; exit 3\n")
    run = keelrun.start("start", "--log-format", "json", "--max-restarts", "0", cwd=app)
    run.wait_for_line(r'"msg": "up"')
    with open(go, "w"):
        pass  # web reads EOF and exits 3
    assert run.wait_exit() == 3
    for r in run.events():
        assert {"ts", "proc", "event", "msg"} <= set(r)
        assert r["proc"] == "keelrun" and isinstance(r["msg"], str) and r["msg"]
    started = run.events("process_started")
    assert len(started) == 1
    assert started[0]["target"] == "web.1" and isinstance(started[0]["pid"], int)
    exited = run.events("process_exited")
    assert len(exited) == 1
    assert exited[0]["target"] == "web.1"
    assert exited[0]["pid"] == started[0]["pid"]
    assert exited[0]["status"] == 3
    assert "3" in exited[0]["msg"]


def test_final_line_without_newline_is_emitted(tmp_path: Path, keelrun) -> None:
    app = make_app(tmp_path, "web: printf 'first\\nno newline'\nerr: printf 'to stderr' >&2\n")
    run = keelrun.start("start", "--no-timestamp", cwd=app)
    assert run.wait_exit() == 0
    lines = run.text_lines()
    assert "web.1   | first" in lines
    assert "web.1   | no newline" in lines
    assert "err.1   | to stderr" in lines

    as_json = keelrun.start("start", "--log-format", "json", cwd=app)
    assert as_json.wait_exit() == 0
    msgs = {(r["proc"], r["msg"]) for r in as_json.records()}
    assert ("web.1", "no newline") in msgs and ("err.1", "to stderr") in msgs


BIG_LINE = """\
import sys
n = int(sys.argv[1])
# Distinct bytes per MiB so that pieces out of order would show.
line = b"".join(bytes([65 + i % 26]) * min(1 << 20, n - (i << 20)) for i in range((n >> 20) + 1))
sys.stdout.buffer.write(line[:n] + b"\\n" + b"after\\n")
"""


@pytest.mark.parametrize("size", [3 * MIB, 3 * MIB + 10, MIB, MIB + 1])
def test_long_line_is_emitted_in_one_mib_pieces(tmp_path: Path, keelrun, size: int) -> None:
    app = make_app(tmp_path, None)
    (app / "big.py").write_text(BIG_LINE)
    (app / "Procfile").write_text(f"web: exec {sys.executable} big.py {size}\n")
    run = keelrun.start("start", "--no-prefix", cwd=app)
    assert run.wait_exit(timeout=20) == 0
    start = next(i for i, line in enumerate(run.lines) if line[:1] == b"A" and len(line) > 1000)
    pieces = run.lines[start : run.lines.index(b"after")]
    expected_sizes = [MIB] * (size // MIB) + ([size % MIB] if size % MIB else [])
    assert [len(p) for p in pieces] == expected_sizes
    for i, piece in enumerate(pieces):
        assert piece == bytes([65 + i % 26]) * len(piece)


def test_long_line_pieces_each_get_the_prefix(tmp_path: Path, keelrun) -> None:
    app = make_app(tmp_path, None)
    (app / "big.py").write_text(BIG_LINE)
    (app / "Procfile").write_text(f"web: exec {sys.executable} big.py {2 * MIB + 5}\n")
    run = keelrun.start("start", "--no-timestamp", cwd=app)
    assert run.wait_exit(timeout=20) == 0
    pieces = [
        line for line in run.lines if line.startswith(b"web.1   | ") and line[10:11] in b"ABC"
    ]
    assert [len(p) - 10 for p in pieces] == [MIB, MIB, 5]


INVALID = b"caf\xe9 \xff\xfe ok \xc3\xa9 \xed\xa0\x80 end"


def test_invalid_utf8_passes_through_in_text(tmp_path: Path, keelrun) -> None:
    app = make_app(tmp_path, None)
    (app / "bytes.bin").write_bytes(INVALID + b"\n" + b"\x80tail-no-newline")
    (app / "Procfile").write_text("web: cat bytes.bin\n")
    run = keelrun.start("start", "--no-timestamp", cwd=app)
    assert run.wait_exit() == 0
    assert b"web.1   | " + INVALID in run.lines
    assert b"web.1   | \x80tail-no-newline" in run.lines


def test_invalid_utf8_becomes_replacement_characters_in_json(tmp_path: Path, keelrun) -> None:
    app = make_app(tmp_path, None)
    (app / "bytes.bin").write_bytes(INVALID + b"\n")
    (app / "Procfile").write_text("web: cat bytes.bin\n")
    run = keelrun.start("start", "--log-format", "json", cwd=app)
    assert run.wait_exit() == 0
    for line in run.lines:
        line.decode("utf-8")  # every output line is valid UTF-8
    msgs = [r["msg"] for r in run.records() if r["proc"] == "web.1"]
    assert msgs == [INVALID.decode("utf-8", "replace")]
    assert "\ufffd" in msgs[0] and "é" in msgs[0]


def test_json_survives_control_characters(tmp_path: Path, keelrun) -> None:
    app = make_app(tmp_path, "web: printf 'tab\\there \\033[1mbold\\033[0m \\001'\n")
    run = keelrun.start("start", "--log-format", "json", cwd=app)
    assert run.wait_exit() == 0
    msgs = [r["msg"] for r in run.records() if r["proc"] == "web.1"]
    assert msgs == ["tab\there \x1b[1mbold\x1b[0m \x01"]


def test_lines_from_a_busy_process_keep_order_against_events(tmp_path: Path, keelrun) -> None:
    # The exit event of a process comes after its last line (its pipes are drained first).
    app = make_app(tmp_path, f"web: {py('flood.py', 'web', '5000', '60')}\n")
    run = keelrun.start("start", "--log-format", "json", cwd=app)
    assert run.wait_exit() == 0
    records = run.records()
    last_line = max(i for i, r in enumerate(records) if r["proc"] == "web.1")
    exited = next(i for i, r in enumerate(records) if r.get("event") == "process_exited")
    assert exited > last_line
    assert sum(1 for r in records if r["proc"] == "web.1") == 5000
    assert json.loads(run.lines[last_line])["msg"].startswith("web o 000004999 ")


def test_started_event_precedes_exit_and_names_the_pid(tmp_path: Path, keelrun) -> None:
    app = make_app(tmp_path, "web: exit 0\n")
    run = keelrun.start("start", "--log-format", "json", "-m", "web=3", cwd=app)
    assert run.wait_exit() == 0
    kinds = [(r.get("event"), r.get("target"), r.get("pid")) for r in run.records()]
    for name in ("web.1", "web.2", "web.3"):
        started = [i for i, k in enumerate(kinds) if k[:2] == ("process_started", name)]
        exited = [i for i, k in enumerate(kinds) if k[:2] == ("process_exited", name)]
        assert len(started) == len(exited) == 1
        assert started[0] < exited[0], f"{name} reported exited before started"
        assert isinstance(kinds[started[0]][2], int)
        assert kinds[started[0]][2] == kinds[exited[0]][2]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_processs_first_line_never_precedes_its_start_event(
    tmp_path: Path, keelrun, fmt: str
) -> None:
    # Ten instances that write at once: each one's "started" comes before its line.
    app = make_app(tmp_path, "build: echo built $PS\n")
    run = keelrun.start("start", "--log-format", fmt, "-m", "build=10", cwd=app)
    assert run.wait_exit() == 0
    lines = run.text_lines()
    for n in range(1, 11):
        name = f"build.{n}"
        started = next(i for i, x in enumerate(lines) if f"started {name} (pid" in x)
        first = next(i for i, x in enumerate(lines) if f"built {name}" in x)
        assert started < first, (name, lines)


def test_json_events_carry_a_level(tmp_path: Path, keelrun) -> None:
    app = make_app(tmp_path, "ok: exit 0\nbad: exit 3\n")
    run = keelrun.start("start", "--log-format", "json", "--max-restarts", "0", cwd=app)
    assert run.wait_exit() == 3
    levels = {(r["event"], r.get("target")): r["level"] for r in run.events()}
    assert levels[("process_started", "ok.1")] == "info"
    assert levels[("process_exited", "ok.1")] == "info"
    assert levels[("process_exited", "bad.1")] == "warning"
    assert levels[("process_failed", "bad.1")] == "error"
    for r in run.events():
        assert list(r)[:5] == ["ts", "proc", "level", "event", "msg"], r
    # App lines keep exactly their keys.
    assert all(
        list(r) == ["ts", "proc", "stream", "msg"] for r in run.records() if r["proc"] != "keelrun"
    )
