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
