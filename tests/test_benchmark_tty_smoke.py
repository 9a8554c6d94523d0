"""benchmarks/tty.py runs end to end (a tiny flood under keelrun start, on pipes and on a
pty) and loses no line on either path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_tty_benchmark_runs(tmp_path: Path) -> None:
    results = tmp_path / "tty.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "tty.py"),
            "--quick",
            "--lines",
            "30000",
            "--json",
            str(results),
        ],
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(results.read_text())
    for row in ("writes, drain consumer", "print, drain consumer"):
        assert set(figures[row]) == {"pipe", "pipe raw", "tty", "tty raw"}
        assert all(rate > 0 for rate in figures[row].values())
    assert set(figures["spawn_us"]) == {"pipes", "pty", "pty, preexec_fn"}
    assert "tty/pipe" in proc.stdout
