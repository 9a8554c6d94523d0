"""One builder of a process's environment: `start`, `run` and the exports agree."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from conftest import make_app, run_keelrun
from support.runner import MARK_VAR, base_env
from test_export_supervisord import supervisord, wait_for
from test_export_units import make_type

from keelrun.environment import DEFAULTS, instance_env, oneoff_env, shell_exports
from keelrun.settings import InstanceSpec, Settings


def settings_with(env: dict[str, str], port: int = 5000) -> Settings:
    return Settings(
        app_root=Path("."), procfile=Path("Procfile"), types=(), release=None, env=env, port=port
    )


def test_an_instance_gets_port_name_and_unbuffered_unless_set() -> None:
    spec = InstanceSpec("web.2", "web", 2, 5001, "x")
    env = instance_env(settings_with({"A": "1", "PORT": "1", "PS": "x"}), spec)
    assert env == {"A": "1", "PORT": "5001", "PS": "web.2", "DYNO": "web.2", **DEFAULTS}
    kept = instance_env(settings_with({"PYTHONUNBUFFERED": ""}), spec)
    assert kept["PYTHONUNBUFFERED"] == ""  # set, if empty: left alone


def test_a_oneoff_gets_the_base_port_and_run_1_and_no_defaults() -> None:
    env = oneoff_env(settings_with({"A": "1"}, port=6000))
    assert env == {"A": "1", "PORT": "6000", "PS": "run.1", "DYNO": "run.1"}


def test_the_shell_form_gives_what_instance_env_gives() -> None:
    t = make_type("worker", index=2)
    for given in ({}, {"PYTHONUNBUFFERED": "0"}, {"PYTHONUNBUFFERED": ""}):
        script = f"N=3; {shell_exports(t, '$N')}; exec env"
        out = subprocess.run(
            ["/bin/sh", "-c", script], env=given, capture_output=True, text=True, timeout=10
        ).stdout
        seen = dict(line.split("=", 1) for line in out.splitlines())
        seen.pop("PWD", None)  # the shell's own
        spec = InstanceSpec("worker.3", "worker", 3, t.port_of(3), t.command)
        assert seen == instance_env(settings_with(given), spec)


# ---- start, run and an exported supervisord config, for real -------------------------

SHOW = """\
import json, os, signal, sys, time
with open(sys.argv[1] + ".tmp", "w") as f:
    json.dump(dict(os.environ), f)
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
if "--stay" in sys.argv:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        time.sleep(1)
"""
# The shell form of the command is exec'd: the same program everywhere.
PROCFILE = 'clock: python3 show.py clock.json --stay\nweb: python3 show.py "$PS.json" --stay\n'
DOTENV = "A=from-file\nB=\"${A} and more\"\nREAL=from-file\nexport C='single $quoted'\n"
# What only the platform adds: keelrun's run id (and the test's marker), supervisord's names.
PLATFORM = {"KEELRUN_RUN_ID", MARK_VAR}


def platform_free(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k not in PLATFORM and not k.startswith("SUPERVISOR_")}


def test_start_run_and_the_supervisord_export_give_the_same_environment(
    tmp_path: Path, keelrun
) -> None:
    app = make_app(tmp_path / "app", PROCFILE, env=DOTENV)
    (app / "show.py").write_text(SHOW)
    copy = shutil.copytree(app, tmp_path / "exported")
    env = base_env(REAL="from-environment")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"

    run = keelrun.start("start", "web", "-p", "7300", cwd=app, env=env)
    wait_for(lambda: (app / "web.1.json").exists(), 20, "web.1 under keelrun start")
    run.send(signal.SIGTERM)
    assert run.wait_exit() == 0
    started = json.loads((app / "web.1.json").read_text())

    r = run_keelrun("run", "-p", "7300", "python3", "show.py", "run.json", cwd=app, env=env)
    assert r.returncode == 0, r.stderr
    oneoff = json.loads((app / "run.json").read_text())

    out = tmp_path / "conf"
    r = run_keelrun(
        "export", "supervisord", str(out), "-p", "7300", "-m", "clock=0", "--include-env",
        cwd=copy, env=env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    with supervisord(out / "exported.conf", env) as proc:
        wait_for(lambda: (copy / "web.1.json").exists(), 20, "web.1 under supervisord")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    exported = json.loads((copy / "web.1.json").read_text())

    expected = {
        "A": "from-file",
        "B": "from-file and more",
        "C": "single $quoted",
        "REAL": "from-environment",  # the real environment wins by default
        "PORT": "7400",  # web is the second type: base + 100
        "PS": "web.1",
        "DYNO": "web.1",
        "PYTHONUNBUFFERED": "1",
    }
    assert {k: started.get(k) for k in expected} == expected
    assert started["PWD"] == str(app) and exported["PWD"] == str(copy)  # the app root
    assert platform_free(exported) == {**platform_free(started), "PWD": str(copy)}
    # `run`: the base port, run.1, and no PYTHONUNBUFFERED (it talks to a terminal).
    differences = {"PORT": "7300", "PS": "run.1", "DYNO": "run.1"}
    without_defaults = {k: v for k, v in platform_free(started).items() if k not in DEFAULTS}
    assert platform_free(oneoff) == {**without_defaults, **differences}
