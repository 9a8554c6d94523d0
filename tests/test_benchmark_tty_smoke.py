"""benchmarks/tty.py runs end to end (a tiny flood under keelrun start, on pipes and on a
pty) and loses no line on either path."""

from __future__ import annotations

from pathlib import Path

from support.benchrun import run_benchmark


def test_tty_benchmark_runs(tmp_path: Path) -> None:
    proc, figures = run_benchmark(
        "tty.py", "--quick", "--lines", "30000", results=tmp_path / "tty.json"
    )
    for row in ("writes, drain consumer", "print, drain consumer"):
        assert set(figures[row]) == {"pipe", "pipe raw", "tty", "tty raw"}
        assert all(rate > 0 for rate in figures[row].values())
    assert set(figures["spawn_us"]) == {"pipes", "pty", "pty, preexec_fn"}
    assert "tty/pipe" in proc.stdout
