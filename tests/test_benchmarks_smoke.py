"""The benchmark harness runs end to end against keelrun (a tiny flood, a few seconds)."""

from __future__ import annotations

from pathlib import Path

from support.benchrun import run_benchmark


def test_throughput_benchmark_runs_and_keelrun_loses_nothing(tmp_path: Path) -> None:
    args = ["--quick", "--only", "throughput", "--supervisors", "keelrun", "--lines", "3000"]
    proc, results = run_benchmark("run.py", *args, results=tmp_path / "results.json")
    assert "Log throughput" in proc.stdout
    figures = {(f["workload"], f["subject"]): f for f in results["figures"]}
    for key in [
        ("flood-parse", "raw"),
        ("flood-parse", "keelrun"),
        ("flood-drain", "raw"),
        ("flood-drain", "keelrun"),
        ("flood-drain", "keelrun-json"),
    ]:
        figure = figures[key]
        assert figure["error"] is None, key
        assert figure["value"] > 0, key
        assert figure["details"]["lost"] == 0, key
        assert figure["details"]["N"] == 3000, key
    assert figures[("flood-parse", "keelrun")]["details"]["mangled"] == 0


def test_scale_benchmark_runs(tmp_path: Path) -> None:
    _, figures = run_benchmark(
        "scale.py", "--counts", "3,6", "--repeat", "1", results=tmp_path / "scale.json"
    )
    assert set(figures) == {"3", "6"}
    for row in figures.values():
        for key in ("start_s", "scale_s", "ps_s", "stop_s", "self_start_s"):
            assert 0 < row[key] < 30, (key, row)
        assert row["fds"] > 0 and row["rss_kib"] > 0


def test_conditions_benchmark_runs() -> None:
    args = ["--seconds", "0.05", "--repeat", "1", "--only", "2"]
    proc, _ = run_benchmark("conditions.py", *args)
    rows = [line for line in proc.stdout.splitlines() if line.startswith(("as run.py", "read 64"))]
    assert len(rows) == 2
    for row in rows:
        ratios = [float(cell[:-1]) for cell in row.split() if cell.endswith("x")]
        assert len(ratios) == 2 and all(0 < r < 5 for r in ratios), row
