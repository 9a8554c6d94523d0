"""`keelrun export systemd`: units that systemd's own checker accepts (issue 5)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import clean_environ, make_app, run_keelrun
from test_export_units import systemd_unquote

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed (Debian package systemd)"
)

PROCFILE = (
    "web: python3 -m http.server $PORT\n"
    "release: echo migrate\n"
    """worker: printf '%s\\n' "100% ; done" 'it'"'"'s' "$HOME" \\\\ # tricky\n"""
    "clock_2: sleep 1000\n"
)
PYPROJECT = """
[tool.keelrun.processes.worker]
grace = 2.5
stop_signal = "INT"
restart = "always"
[tool.keelrun.processes.clock_2]
restart = "never"
"""


def verify(unit_dir: Path, *units: str) -> subprocess.CompletedProcess[str]:
    """systemd-analyze verify with DIR as the only unit search path (plus the defaults)."""
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", *units],
        env={**os.environ, "SYSTEMD_UNIT_PATH": f"{unit_dir}:"},
        capture_output=True,
        text=True,
        timeout=30,
    )


def directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


@pytest.fixture
def exported(tmp_path: Path) -> Path:
    root = make_app(tmp_path / "shop app", PROCFILE, env="SECRET=s3cret\n", pyproject=PYPROJECT)
    r = run_keelrun("export", "systemd", str(tmp_path / "units"), "-m", "web=2", cwd=root)
    assert r.returncode == 0, r.stderr
    return tmp_path / "units"


def test_files_written_for_every_type_but_release(exported: Path) -> None:
    assert sorted(p.name for p in exported.iterdir()) == [
        "shop-app-clock_2@.service",
        "shop-app-web@.service",
        "shop-app-worker@.service",
        "shop-app.target",
    ]


@needs_systemd
def test_systemd_analyze_verify_accepts_target_and_instances(exported: Path) -> None:
    r = verify(
        exported,
        "shop-app.target",
        "shop-app-web@1.service",
        "shop-app-web@2.service",
        "shop-app-worker@1.service",
        "shop-app-clock_2@7.service",
    )
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


@needs_systemd
def test_verify_rejects_a_broken_unit_negative_control(exported: Path) -> None:
    unit = exported / "shop-app-web@.service"
    unit.write_text(unit.read_text().replace('ExecStart=/bin/sh -c "', "ExecStart=/bin/sh -c '"))
    r = verify(exported, "shop-app-web@1.service")
    assert r.returncode != 0
    assert "quoting" in r.stderr.lower()


def test_target_wants_the_formation(exported: Path) -> None:
    target = directives((exported / "shop-app.target").read_text())
    assert target["Wants"] == [
        "shop-app-web@1.service shop-app-web@2.service shop-app-worker@1.service"
        " shop-app-clock_2@1.service"
    ]
    assert target["WantedBy"] == ["multi-user.target"]


def test_service_maps_keelrun_settings(exported: Path, tmp_path: Path) -> None:
    web = directives((exported / "shop-app-web@.service").read_text())
    worker = directives((exported / "shop-app-worker@.service").read_text())
    clock = directives((exported / "shop-app-clock_2@.service").read_text())
    root = tmp_path / "shop app"
    assert web["WorkingDirectory"] == [str(root)]
    assert web["EnvironmentFile"] == [str(root / ".env")]
    assert web["KillMode"] == ["control-group"]
    assert (web["KillSignal"], web["TimeoutStopSec"], web["Restart"]) == (
        ["SIGTERM"],
        ["5s"],
        ["on-failure"],
    )
    assert (worker["KillSignal"], worker["TimeoutStopSec"], worker["Restart"]) == (
        ["SIGINT"],
        ["2500ms"],
        ["always"],
    )
    assert clock["Restart"] == ["no"] and "StartLimitBurst" not in clock
    assert web["StartLimitBurst"] == ["6"]
    assert web["PartOf"] == ["shop-app.target"] and web["WantedBy"] == ["shop-app.target"]
    assert "$$((5000 + %i - 1))" in web["ExecStart"][0]
    assert "$$((5200 + %i - 1))" in worker["ExecStart"][0]  # release is type 1


def test_env_values_stay_out_without_include_env(exported: Path) -> None:
    for path in exported.iterdir():
        assert "s3cret" not in path.read_text()


@needs_systemd
def test_include_env_writes_a_private_environment_file(tmp_path: Path) -> None:
    env = 'SECRET="it\'s $$ \\"q\\""\nPLAIN=a b\nEXPANDED=${PLAIN}!\n'
    root = make_app(tmp_path / "app", "web: sleep 1\n", env=env)
    out = tmp_path / "units"
    r = run_keelrun("export", "systemd", str(out), "--include-env", "--app", "site", cwd=root)
    assert r.returncode == 0, r.stderr
    env_file = out / "site.env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert env_file.read_text().splitlines()[1:] == [
        'SECRET="it\'s \\$\\$ \\"q\\""',
        "PLAIN='a b'",
        "EXPANDED='a b!'",
    ]
    unit = directives((out / "site-web@.service").read_text())
    assert unit["EnvironmentFile"] == [str(env_file)]
    assert verify(out, "site.target", "site-web@1.service").returncode == 0


def test_env_syntax_systemd_reads_differently_is_warned_about(tmp_path: Path) -> None:
    env = (
        'export A=1\nB=${A}x\nC=abc # one\nD="quoted"# two\nE="a # b"\nF=a#b\n'
        "G=it's # three\nH= #kept\n"
    )
    root = make_app(tmp_path / "app", "web: sleep 1\n", env=env)
    r = run_keelrun("export", "systemd", str(tmp_path / "units"), cwd=root)
    assert r.returncode == 0
    warnings = [line for line in r.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 5, warnings
    assert "`export` prefix" in warnings[0]
    for warning, line in zip(warnings[1:4], (3, 4, 7), strict=True):
        assert f".env:{line}: systemd keeps a trailing `# comment`" in warning
    assert "expand" in warnings[4]


def test_exec_start_runs_the_app_itself(tmp_path: Path) -> None:
    """The unit's main process is the app, so KillSignal= reaches it first-hand."""
    show = "import os; print(os.getpid(), os.environ['PS'], os.environ['VAR'])"
    root = make_app(tmp_path / "app", f'worker: VAR=x {sys.executable} -c "{show}"\n')
    r = run_keelrun("export", "systemd", str(tmp_path / "units"), "--app", "site", cwd=root)
    assert r.returncode == 0, r.stderr
    exec_start = directives((tmp_path / "units" / "site-worker@.service").read_text())["ExecStart"]
    program, flag, word = exec_start[0].split(" ", 2)
    assert (program, flag) == ("/bin/sh", "-c")
    script = systemd_unquote(word, "3")
    assert script.endswith(shlex.quote(f'VAR=x exec {sys.executable} -c "{show}"'))
    # Run as systemd would run instance 3 (in the app root): the pid it started is the app's.
    main = subprocess.Popen(
        ["/bin/sh", "-c", script], cwd=root, stdout=subprocess.PIPE, text=True, env={}
    )
    out, _ = main.communicate(timeout=20)
    assert out.split() == [str(main.pid), "worker.3", "x"]
    if SYSTEMD_ANALYZE is not None:
        assert verify(tmp_path / "units", "site-worker@3.service").returncode == 0


def test_include_env_never_takes_values_from_the_exporting_shell(tmp_path: Path) -> None:
    env = 'APP=demo\nGREETING="hi ${HOME}"\nFULL=${APP}-x\nDEF=${NOPE:-fall back}\n'
    root = make_app(tmp_path / "app", "web: sleep 1\n", env=env)
    out = tmp_path / "units"
    shell = clean_environ(HOME="/home/exporter", NOPE="from-shell", APP="from-shell")
    r = run_keelrun("export", "systemd", str(out), "--include-env", cwd=root, env=shell)
    assert r.returncode == 0, r.stderr
    assert (out / "app.env").read_text().splitlines()[1:] == [
        "APP='demo'",
        "GREETING='hi ${HOME}'",  # single quotes: systemd keeps it as written too
        "FULL='demo-x'",
        "DEF='${NOPE:-fall back}'",
    ]
    assert "GREETING refers to ${HOME}" in r.stderr


HEALTH = """
[tool.keelrun.processes.web]
ready = "notify"
watchdog = 2.5
ready_timeout = 90
[tool.keelrun.processes.worker]
depends_on = ["web"]
health = "http:/health"
"""


@pytest.fixture
def with_checks(tmp_path: Path) -> Path:
    root = make_app(tmp_path / "shop", "web: gunicorn app\nworker: celery\n", pyproject=HEALTH)
    r = run_keelrun("export", "systemd", str(tmp_path / "units"), "-m", "web=2", cwd=root)
    assert r.returncode == 0, r.stderr
    return tmp_path / "units"


def test_notify_watchdog_and_dependencies_become_unit_settings(with_checks: Path) -> None:
    web = directives((with_checks / "shop-web@.service").read_text())
    worker = directives((with_checks / "shop-worker@.service").read_text())
    assert (web["Type"], web["NotifyAccess"], web["WatchdogSec"]) == (
        ["notify"],
        ["all"],
        ["2500ms"],
    )
    assert web["TimeoutStartSec"] == ["90s"]
    assert worker["Type"] == ["simple"] and "NotifyAccess" not in worker
    instances = "shop-web@1.service shop-web@2.service"
    assert worker["Wants"] == [instances] and worker["After"] == ["network.target", instances]
    assert "Wants" not in web


@needs_systemd
def test_systemd_analyze_verify_accepts_the_checks(with_checks: Path) -> None:
    r = verify(with_checks, "shop.target", "shop-web@1.service", "shop-worker@1.service")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
