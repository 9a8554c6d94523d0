"""The demo app (examples/): reachable from outside, healthy by its own check, and its
Dockerfile read for what cannot be built here (no Docker engine on the test machine)."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import psutil
import pytest
from conftest import REPO, run_keelrun
from support.ports import free_port
from support.runner import base_env
from test_export_cli import dockerfile_instructions

EXAMPLES = REPO / "examples"
IGNORED = shutil.ignore_patterns("__pycache__", ".env", ".keelrun.sock")


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    return shutil.copytree(EXAMPLES, tmp_path / "app", ignore=IGNORED)


def python_path() -> dict[str, str]:
    """The test's interpreter first on PATH, as `python3` in the demo's Procfile."""
    return {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.parametrize(("host", "bound"), [(None, "0.0.0.0"), ("127.0.0.1", "127.0.0.1")])
def test_web_listens_on_every_interface_unless_host_says_otherwise(
    demo: Path, host: str | None, bound: str
) -> None:
    port = free_port()
    env = base_env(PORT=str(port), PYTHONUNBUFFERED="1", **({"HOST": host} if host else {}))
    web = subprocess.Popen(
        [sys.executable, "web.py"], cwd=demo, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert web.stdout is not None
        assert select.select([web.stdout], [], [], 20)[0], "web.py printed nothing"
        assert web.stdout.readline() == f"listening on http://{bound}:{port}\n"
        listening = [
            c.laddr
            for c in psutil.Process(web.pid).net_connections("tcp")
            if c.status == psutil.CONN_LISTEN
        ]
        assert [(a.ip, a.port) for a in listening] == [(bound, port)]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
            assert answer.read() == b"ok\n"
        web.send_signal(signal.SIGTERM)
        assert web.wait(10) == 0
        assert web.stdout.read().endswith('"GET /health HTTP/1.1" 200 -\nstopped\n')
    finally:
        web.kill()
        web.wait()


def healthcheck(demo: Path) -> subprocess.CompletedProcess[str]:
    # Run from elsewhere: the check finds the app root from its own path.
    return subprocess.run(
        [sys.executable, str(demo / "healthcheck.py")],
        cwd=demo.parent,
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_demo_runs_under_keelrun_and_passes_its_health_check(demo: Path, keelrun) -> None:
    unhealthy = healthcheck(demo)
    assert unhealthy.returncode == 1
    assert "keelrun" in unhealthy.stdout  # says that no keelrun answers

    port = free_port()
    env = base_env(**python_path())
    run = keelrun.start("start", "--no-timestamp", "-p", str(port), cwd=demo, env=env)
    run.wait_for_line(r"web\.1 +\| listening on http://0\.0\.0\.0:\d+")
    run.wait_for_line(r"worker\.2 +\| worker\.2 handled job 1")
    run.wait_for_line(r"clock\.1 +\| tick 1")
    healthy = healthcheck(demo)
    assert (healthy.returncode, healthy.stdout) == (0, "healthy\n")

    # A web instance that does not answer makes the container unhealthy.
    assert run_keelrun("signal", "STOP", "web.1", cwd=demo, env=env).returncode == 0
    frozen = healthcheck(demo)
    assert frozen.returncode == 1
    assert frozen.stdout.startswith(f"web.1: http://127.0.0.1:{port}/health: ")
    assert run_keelrun("signal", "CONT", "web.1", cwd=demo, env=env).returncode == 0

    run.send(signal.SIGTERM)
    assert run.wait_exit(20) == 0
    lines = run.text_lines()
    assert any(line.endswith("worker.1 finished its last job; exiting") for line in lines)
    assert any(line.endswith("| clock stopped") for line in lines)  # its stop signal: SIGINT
    assert any(line.endswith("| stopped") and line.startswith("web.1") for line in lines)


def test_the_dockerfile_gives_app_its_directory_and_a_health_check() -> None:
    d = dockerfile_instructions()
    run = " && ".join(d["RUN"])
    # /app exists, owned by app, before WORKDIR would create it owned by root.
    assert "install -d -o app -g app -m 0755 /app" in run
    assert d["WORKDIR"] == ["/app"] and d["USER"] == ["app"]
    text = (EXAMPLES / "Dockerfile").read_text()
    assert text.index("install -d -o app") < text.index("WORKDIR /app")
    health = d["HEALTHCHECK"][-1]
    options, _, command = health.partition(" CMD ")
    assert json.loads(command) == ["python3", "/app/healthcheck.py"]  # no curl in slim images
    assert "--start-period=" in options
    # COPY examples/ /app/ puts the check where HEALTHCHECK runs it.
    assert (EXAMPLES / "healthcheck.py").is_file()
