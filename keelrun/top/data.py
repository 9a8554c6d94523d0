"""What `keelrun top` shows, as plain functions of `ps` rows and log records."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from keelrun.control.client import dash, duration, size, state_cell
from keelrun.supervisor.ansi import strip_ansi

# (column key, header) of the table, in order.
COLUMNS = (
    ("name", "NAME"),
    ("state", "STATE"),
    ("pid", "PID"),
    ("uptime", "UPTIME"),
    ("restarts", "RESTARTS"),
    ("cpu", "CPU%"),
    ("rss", "RSS"),
    ("port", "PORT"),
)

Row = dict[str, Any]


def cells(row: Row) -> tuple[str, ...]:
    """One table row, in the order of COLUMNS."""
    return (
        str(row.get("name", "?")),
        state_cell(row),  # as `keelrun ps` shows it
        dash(row.get("pid")),
        duration(row.get("uptime_s")),
        dash(row.get("restarts")),
        dash(row.get("cpu_percent")),
        size(row.get("rss_bytes")),
        dash(row.get("port")),
    )


def visible(rows: Sequence[Row], needle: str) -> list[Row]:
    """The rows whose name contains ``needle`` (any case); all of them for ""."""
    needle = needle.strip().lower()
    return [r for r in rows if needle in str(r.get("name", "")).lower()]


def toggle(row: Row) -> tuple[str, dict[str, Any]]:
    """The request behind `s`: a stopped instance is started again, any other stopped."""
    names = [row["name"]]
    if row.get("state") == "stopped":
        return "restart", {"names": names}
    return "stop", {"names": names}


def render_line(rec: dict[str, Any]) -> str:
    """One `logs` record as top shows it: `HH:MM:SS web.1 | text`, terminal escapes removed.

    The one place top formats a line: it moves to keelrun's shared log formatter.
    """
    ts = time.strftime("%H:%M:%S", time.localtime(float(rec.get("ts", 0))))
    raw = strip_ansi(str(rec.get("msg", "")).encode("utf-8", "surrogateescape"))
    return f"{ts} {rec.get('proc', '?')} | {raw.decode('utf-8', 'replace')}"
