"""What `keelrun top` shows (keelrun/top/data.py): pure functions of ps rows and log records."""

from __future__ import annotations

import time

from keelrun.control.client import state_cell
from keelrun.top.data import cells, render_line, toggle, visible

ROW = {
    "name": "web.1",
    "type": "web",
    "pid": 4242,
    "state": "ready",
    "uptime_s": 3725.4,
    "restarts": 2,
    "exit_status": None,
    "cpu_percent": 1.5,
    "rss_bytes": 25 * 1024 * 1024,
    "port": 5000,
    "command": "python web.py",
}


def test_cells_in_column_order() -> None:
    assert cells(ROW) == ("web.1", "ready", "4242", "1h02m", "2", "1.5", "25.0M", "5000")


def test_a_stopped_instance_shows_dashes() -> None:
    row = {**ROW, "state": "stopped", "pid": None, "uptime_s": None}
    row.update(cpu_percent=None, rss_bytes=None)
    assert cells(row) == ("web.1", "stopped", "-", "-", "2", "-", "-", "5000")


def test_health_joins_the_state_as_in_ps() -> None:
    assert state_cell(ROW) == "ready"  # no health key: a keelrun without checks
    assert state_cell({**ROW, "health": None}) == "ready"
    assert state_cell({**ROW, "health": "ok", "health_failures": 0}) == "ready"
    assert state_cell({**ROW, "health": "failing"}) == "ready (failing)"  # no counts
    failing = {**ROW, "health": "failing", "health_failures": 2, "health_retries": 3}
    assert state_cell(failing) == "ready (failing 2/3)"
    assert cells(failing)[1] == "ready (failing 2/3)"  # top's cell is ps' cell


def test_filter_by_name_any_case() -> None:
    rows = [{"name": n} for n in ("web.1", "worker.1", "worker.2", "clock.1")]
    assert [r["name"] for r in visible(rows, "WORK")] == ["worker.1", "worker.2"]
    assert [r["name"] for r in visible(rows, ".1")] == ["web.1", "worker.1", "clock.1"]
    assert visible(rows, "") == rows
    assert visible(rows, "nope") == []


def test_s_stops_or_starts_again() -> None:
    assert toggle(ROW) == ("stop", {"names": ["web.1"]})
    assert toggle({**ROW, "state": "backoff"}) == ("stop", {"names": ["web.1"]})
    assert toggle({**ROW, "state": "stopped"}) == ("restart", {"names": ["web.1"]})


def test_render_line() -> None:
    ts = time.mktime((2026, 11, 26, 4, 15, 7, 0, 0, -1)) + 0.25
    rec = {"ts": ts, "proc": "web.1", "stream": "stdout", "msg": "hello"}
    assert render_line(rec) == "04:15:07 web.1 | hello"


def test_render_line_drops_terminal_escapes_and_shows_bad_bytes() -> None:
    rec = {"ts": 0, "proc": "web.1", "msg": "\x1b[31mred\x1b[0m \x1b]0;title\x07ok \udcff"}
    assert render_line(rec).split(" | ", 1)[1] == "red ok \ufffd"
