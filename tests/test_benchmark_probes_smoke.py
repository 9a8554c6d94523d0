"""benchmarks/probes.py runs end to end, and keelrun sleeps between the probes."""

from __future__ import annotations

from pathlib import Path

from support.benchrun import run_benchmark


def test_probe_benchmark_runs_and_the_loop_sleeps_between_probes(tmp_path: Path) -> None:
    argv = ["--instances", "3", "--interval", "1", "--windows", "2"]
    proc, figures = run_benchmark("probes.py", *argv, results=tmp_path / "probes.json")
    assert "CPU outside probes" in proc.stdout and "keelrun's CPU outside" in proc.stdout
    r = figures["machinery"]
    assert r["probes"] >= 6 and r["probes_ok"] == r["probes"] and r["failures"] == []
    assert len(r["windows"]) == 2
    # Between the bursts nothing wakes the loop: no timer, no fd, no polling.
    assert r["outside_wakeups"] == 0
    # A real keelrun start: the same, measured from outside (its schedstat)...
    k = figures["keelrun"]
    assert len(k["windows"]) == 2 and k["probes"] >= 9
    assert k["outside_wakeups"] == 0
    # ...where the measurement does see keelrun work at the probe moments.
    assert k["burst_cpu_ms"] and min(k["burst_cpu_ms"]) > 0
