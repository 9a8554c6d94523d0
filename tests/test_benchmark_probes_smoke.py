"""benchmarks/probes.py runs end to end, and the loop sleeps between the probes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_probe_benchmark_runs_and_the_loop_sleeps_between_probes(tmp_path: Path) -> None:
    out = tmp_path / "probes.json"
    argv = ["--instances", "3", "--interval", "1", "--windows", "2", "--json", str(out)]
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "probes.py"), *argv],
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "CPU outside probes" in proc.stdout
    r = json.loads(out.read_text())
    assert r["probes"] >= 6 and r["probes_ok"] == r["probes"] and r["failures"] == []
    assert len(r["windows"]) == 2
    # Between the bursts nothing wakes the loop: no timer, no fd, no polling.
    assert r["outside_wakeups"] == 0
