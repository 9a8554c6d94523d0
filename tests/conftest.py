"""Shared fixtures: a throwaway app folder and a real `python -m keelrun` run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def clean_environ(**extra: str) -> dict[str, str]:
    """os.environ without anything that would steer keelrun, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("KEELRUN_") and k not in ("PORT", "PS", "DYNO", "NO_COLOR")
    }
    # The package under test, whether or not it is installed.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def make_app(
    root: Path,
    procfile: str | None = "web: echo web\n",
    env: str | None = None,
    pyproject: str | None = None,
    keelrun_toml: str | None = None,
) -> Path:
    """Write an app folder: each text given becomes its file; returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for name, text in (
        ("Procfile", procfile),
        (".env", env),
        ("pyproject.toml", pyproject),
        ("keelrun.toml", keelrun_toml),
    ):
        if text is not None:
            (root / name).write_text(text)
    return root


def run_keelrun(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    input: str | None = None,
    timeout: float = 30,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m keelrun ARGS`` to completion (bounded by ``timeout``)."""
    return subprocess.run(
        [sys.executable, "-m", "keelrun", *args],
        cwd=cwd,
        env=clean_environ() if env is None else env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """An app root with a one-type Procfile."""
    return make_app(tmp_path / "app")


@pytest.fixture
def keelrun():
    """Start `python -m keelrun ...` in the background (tests/support/runner.py).

    At teardown every run is killed if still running, and the test fails if any
    process carrying the run's marker is left behind.
    """
    from support.runner import Keelrun, RunSet

    launcher = RunSet(Keelrun)
    yield launcher
    problems = launcher.finish()
    assert not problems, "; ".join(problems)


@pytest.fixture
def runner(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Background `keelrun start`s for the control-socket tests (tests/support/control.py).

    Teardown stops them and fails the test if any process they started is left.
    """
    from support.control import Runner

    r = Runner(tmp_path)
    yield r
    leftovers = r.close()
    assert not leftovers, f"processes left behind: {leftovers}"


@pytest.fixture
def fault_runs():
    """Background keelruns for the fault, limit and chaos tests (tests/support/faults.py).

    Teardown SIGKILLs what is left and fails the test if any marked process remained.
    """
    from support.faults import Run
    from support.runner import RunSet

    factory = RunSet(Run)
    yield factory
    problems = factory.finish()
    assert not problems, "; ".join(problems)


@pytest.fixture
def kit():  # type: ignore[no-untyped-def]
    """A loop with a reaper of the supervisor's shape, for probes and notify
    (tests/support/loopkit.py); teardown fails the test on processes left behind."""
    from support.loopkit import Kit

    k = Kit()
    yield k
    left = k.close()
    assert not left, f"processes left behind: {left}"


@pytest.fixture
def make(tmp_path: Path):  # type: ignore[no-untyped-def]
    """``make(procfile, pyproject=None, **options)``: a supervisor in this process on a
    fake kernel and clock (tests/support/fakes.py); closed at teardown."""
    from support.fakes import Harness

    made: list[Harness] = []

    def build(procfile: str, pyproject: str | None = None, **opts: str) -> Harness:
        h = Harness(tmp_path / f"app{len(made)}", procfile, pyproject=pyproject, **opts)
        made.append(h)
        return h

    yield build
    for h in made:
        h.close()
