"""`keelrun export supervisord`: a config that a real supervisord runs and stops (issue 5)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import REPO, clean_environ, make_app, run_keelrun

# Each instance writes what it got into <PS>.info in the app root, then keeps running.
PROCFILE = (
    'web: echo "$PORT $PS $DYNO $SECRET $OTHER $$ 100% ;#" > "$PS.info"; exec sleep 1000 # c\n'
    'worker: sleep 1000 & echo "$PORT $PS $$ $!" > "$PS.info"; wait\n'
    "idle: echo started > idle.info\n"
)
IGNORED = shutil.ignore_patterns("__pycache__", ".env", ".keelrun.sock")
PYPROJECT = """
[tool.keelrun.processes.worker]
grace = 3
stop_signal = "TERM"
"""


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes; its parent has not reaped it yet.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z"):
            return False
    return True


@contextlib.contextmanager
def supervisord(
    config: Path, env: dict[str, str], output: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A real supervisord on ``config`` (its stdout, the programs' output, into
    ``output``); killed in the end with whatever it started."""
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(output.open("ab")) if output else subprocess.DEVNULL
        proc = subprocess.Popen(
            [sys.executable, "-m", "supervisor.supervisord", "-c", str(config)],
            env=env,
            stdout=out,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        started: list[int] = []
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            for info in config.parent.parent.glob("app/*.info"):
                words = info.read_text().split()
                started += [int(w) for w in words if w.isdigit() and int(w) > 5999]
            for pid in started:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def supervisorctl(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=20,
    )


@pytest.fixture
def app(tmp_path: Path) -> Path:
    return make_app(
        tmp_path / "app", PROCFILE, env="SECRET=s3cret\nOTHER=from-dotenv\n", pyproject=PYPROJECT
    )


def export(app: Path, *args: str, **environ: str) -> Path:
    out = app.parent / "conf"
    env = clean_environ(**environ)
    r = run_keelrun("export", "supervisord", str(out), "-p", "7000", *args, cwd=app, env=env)
    assert r.returncode == 0, r.stderr
    return out / "app.conf"


def test_real_supervisord_runs_and_stops_the_formation(app: Path) -> None:
    config = export(app, "-m", "web=2,idle=0", "--include-env")
    env = clean_environ(OTHER="from-environment")
    infos = [app / "web.1.info", app / "web.2.info", app / "worker.1.info"]
    with supervisord(config, env) as proc:
        wait_for(lambda: all(p.exists() and p.read_text().endswith("\n") for p in infos), 20, "3")
        web1, web2, worker = (p.read_text().split() for p in infos)
        # PORT per instance by keelrun's scheme; .env values from the --include-env file,
        # the environment winning over .env (the default precedence).
        assert web1[:5] == ["7000", "web.1", "web.1", "s3cret", "from-environment"]
        assert web1[6:] == ["100%", ";#"]
        assert web2[:3] == ["7001", "web.2", "web.2"]
        assert worker[:2] == ["7100", "worker.1"]
        assert not (app / "idle.info").exists()  # scaled to 0: not started

        def all_running() -> bool:
            lines = supervisorctl(config, "status").stdout.splitlines()
            return sorted(line.split()[:2] for line in lines) == [
                ["app:idle.1", "STOPPED"],
                ["app:web.1", "RUNNING"],
                ["app:web.2", "RUNNING"],
                ["app:worker.1", "RUNNING"],
            ]

        wait_for(all_running, 20, "supervisorctl status to show the formation running")
        pids = [int(web1[5]), int(web2[5]), int(worker[2]), int(worker[3])]
        assert all(alive(pid) for pid in pids)

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        # stopasgroup: the worker's background sleep (a grandchild) is gone too.
        wait_for(lambda: not any(alive(pid) for pid in pids), 10, "every instance to end")


def test_without_include_env_the_environment_is_supervisords(app: Path) -> None:
    config = export(app, "-m", "worker=0,idle=0")
    assert "s3cret" not in config.read_text()
    assert not (config.parent / "app.env.sh").exists()
    with supervisord(config, clean_environ(OTHER="given")) as proc:
        info = app / "web.1.info"
        wait_for(lambda: info.exists() and info.read_text().endswith("\n"), 20, "web.1")
        assert info.read_text().split()[3] == "given"  # $SECRET empty: not passed on
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0


def test_config_maps_stop_and_restart_settings(app: Path) -> None:
    policy = {"KEELRUN_RESTART": "always", "KEELRUN_MAX_RESTARTS": "3"}
    text = export(app, "-t", "2.5", **policy).read_text()
    sections = text.split("\n[")
    web = next(s for s in sections if s.startswith("program:web]"))
    worker = next(s for s in sections if s.startswith("program:worker]"))
    for line in (
        "numprocs=1",
        "numprocs_start=1",
        "process_name=%(program_name)s.%(process_num)d",
        "stopasgroup=true",
        "killasgroup=true",
        "stopsignal=TERM",
        "stopwaitsecs=3",  # 2.5 s rounded up: supervisord takes whole seconds
        "autorestart=true",
        "startretries=3",
        f"directory={app}",
    ):
        assert line in web.splitlines()
    assert "stopwaitsecs=3" in worker.splitlines()
    assert "[group:app]\nprograms=web,worker,idle" in text


def test_the_program_is_the_app_and_a_stop_lets_the_demo_worker_finish(tmp_path: Path) -> None:
    """supervisord's pid is the worker's own, so its stop signal reaches the worker."""
    app = shutil.copytree(REPO / "examples", tmp_path / "app", ignore=IGNORED)
    env = clean_environ(PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    r = run_keelrun(
        "export", "supervisord", str(tmp_path / "conf"), "-m", "web=0,clock=0,worker=1",
        cwd=app, env=env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    config, log = tmp_path / "conf" / "app.conf", tmp_path / "supervisord.out"
    pid = 0
    with supervisord(config, env, log) as proc:
        try:
            wait_for(lambda: b"worker.1 handled job 1" in log.read_bytes(), 20, "the first job")
            pid = int(supervisorctl(config, "pid", "app:worker.1").stdout)
            assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[1:3] == [
                b"worker.py",
                b"",
            ], "the program's process is the worker, not a shell"
            stop = supervisorctl(config, "stop", "app:worker.1")
            assert "stopped" in stop.stdout, stop.stdout
            assert b"worker.1 finished its last job; exiting" in log.read_bytes()
            assert not alive(pid)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
        finally:
            if pid and alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_include_env_never_takes_values_from_the_exporting_shell(tmp_path: Path) -> None:
    env = 'APP=demo\nGREETING="hi ${HOME}"\nFULL=${APP}-x\nDEF=${NOPE:-fall back}\n'
    show = (
        'echo $$ > pid.info; printf "%s|" "$APP" "$GREETING" "$FULL" "$DEF" > shown.info;'
        " exec sleep 1000"
    )
    app = make_app(tmp_path / "app", f"web: {show}\n", env=env)
    shell = clean_environ(HOME="/home/exporter", NOPE="from-shell", APP="from-shell")
    r = run_keelrun(
        "export", "supervisord", str(tmp_path / "conf"), "--include-env", cwd=app, env=shell
    )
    assert r.returncode == 0, r.stderr
    assert "/home/exporter" not in (tmp_path / "conf" / "app.env.sh").read_text()
    # Where it runs, HOME is the server's: the app still sees the reference as written.
    with supervisord(tmp_path / "conf" / "app.conf", clean_environ(HOME="/srv")) as proc:
        shown = app / "shown.info"
        wait_for(lambda: shown.exists() and shown.read_text().endswith("|"), 20, "web.1")
        assert shown.read_text().split("|")[:4] == [
            "demo",
            "hi ${HOME}",
            "demo-x",
            "${NOPE:-fall back}",
        ]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
