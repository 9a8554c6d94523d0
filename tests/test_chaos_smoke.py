"""The chaos run, short: its invariants hold (benchmarks/chaos.py; CI runs it, ~12 s)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(90)
def test_chaos_smoke(tmp_path: Path) -> None:
    figures = tmp_path / "chaos.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "chaos.py"), "--seconds", "8",
         "--seed", "20261126", "--json", str(figures)],
        capture_output=True,
        text=True,
        timeout=80,
    )  # fmt: skip
    report = done.stdout + done.stderr
    assert figures.exists(), report
    r = json.loads(figures.read_text())
    assert r["failures"] == [], report
    assert done.returncode == 0, report
    # The run really exercised what it claims to.
    assert r["lines_written"] > 1000 and r["incarnations"] > 10, report
    assert r["lines_written"] == r["lines_delivered_intact"], report
    assert r["lines_corrupt"] == r["lines_out_of_order"] == 0, report
    assert r["zombies_stuck"] == 0 and r["survivors"] == 0, report
    assert r["requests_sent"] == r["requests_answered"] > 20, report
    assert r["exit_status"] == 0, report


def _chaos_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("chaos", REPO / "benchmarks" / "chaos.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["chaos"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _line(name: str, run: str, seq: int, payload: bytes = b"abc") -> bytes:
    import zlib

    return b"%s | C %s %d %08x %s\n" % (
        name.encode(),
        run.encode(),
        seq,
        zlib.crc32(payload),
        payload,
    )


def test_chaos_checker_catches_loss_corruption_and_bad_pieces() -> None:
    """The chaos run's checker is not vacuous: it sees what it must fail on."""
    chaos = _chaos_module()
    c = chaos.Consumer()
    for raw in (
        _line("a.1", "r1", 1),
        _line("a.1", "r1", 3),  # seq 2 lost
        b"a.1 | C r1 4 00000000 abc\n",  # bad checksum, and not the last line of r1
        _line("a.1", "r1", 5),
        b"keelrun | a.1 exited\n",
        _line("b.1", "r2", 1, b"\xff\xfe | x"),  # binary payload passes
    ):
        c.feed(raw)
    records = {"r1": (5, 5, 1), "r2": (1, 1, 1), "r3": (2, 2, 1)}  # r3: never delivered
    r = chaos.account(c, records)
    assert r["lines_out_of_order"] == 2  # 1 -> 3 and 3 -> 5
    assert r["lines_corrupt"] == 1
    assert r["count_mismatch_total"] == 2  # r1 (3 of 5 intact) and r3 (none)
    assert r["lines_written"] == 8 and r["lines_delivered_intact"] == 4
    assert chaos.invariants({**_clean_figures(), **r})

    # A long line must arrive in 1 MiB pieces; a killed run may end in a torn line.
    import zlib

    body = b"z" * (chaos.MAX_LINE + 500)
    total = len(body) + len(b"H r4 1 %d %08x " % (len(body) + 100, 0))  # digits: fixed point
    head = b"H r4 1 %d %08x " % (total, zlib.crc32(body))
    line = head + body
    c2 = chaos.Consumer()
    c2.feed(b"h.1 | " + line[: chaos.MAX_LINE] + b"\n")
    c2.feed(b"h.1 | " + line[chaos.MAX_LINE :] + b"\n")
    c2.feed(_line("k.1", "r5", 1))
    c2.feed(b"k.1 | C r5 2 123")  # torn by SIGKILL: allowed as r5's last line
    r2 = chaos.account(c2, {"r4": (1, 1, 1), "r5": (1, 2, 0)})
    assert r2["lines_corrupt"] == 0 and r2["bad_pieces"] == 0 and r2["count_mismatch_total"] == 0
    assert r2["lines_written"] == r2["lines_delivered_intact"] == 2
    assert chaos.invariants({**_clean_figures(), **r2}) == []


def _clean_figures() -> dict:
    return {
        "zombies_stuck": 0,
        "survivors": 0,
        "requests_sent": 1,
        "requests_answered": 1,
        "exit_status": 0,
        "tracebacks": 0,
        "fds_peak": [10, 10],
        "fd_bound": 100,
        "rss_peak_kib": [1000, 1000],
    }
