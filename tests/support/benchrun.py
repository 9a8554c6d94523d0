"""Run one script of benchmarks/ as a user would, for the smoke tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent.parent


def run_benchmark(
    script: str, *args: str, results: Path | None = None, timeout: float = 50
) -> tuple[subprocess.CompletedProcess[str], Any]:
    """``python benchmarks/SCRIPT ARGS [--json RESULTS]``: the finished run (exit 0
    asserted) and the JSON it wrote, if asked for."""
    argv = [sys.executable, str(REPO / "benchmarks" / script), *args]
    if results is not None:
        argv += ["--json", str(results)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc, json.loads(results.read_text()) if results is not None else None
