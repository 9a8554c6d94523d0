"""Exit policies under a real `keelrun start`: success_codes, --exit-code-from (the CI
run of web + worker + an e2e runner) and --abort-on-exit, and their input errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import clean_environ, make_app, run_keelrun
from support import py
from support.ports import free_port

pytestmark = pytest.mark.timeout(60)


def test_success_codes_are_not_failures(tmp_path: Path, keelrun) -> None:
    config = "[tool.keelrun.processes.worker]\nsuccess_codes = [0, 3]\n"
    app = make_app(tmp_path, "worker: echo done; exit 3\nclock: exit 0\n", pyproject=config)
    run = keelrun.start("start", "--log-format", "json", cwd=app)
    assert run.wait_exit() == 0, "3 is a success for worker"
    exits = {e["target"]: e for e in run.events("process_exited")}
    assert exits["worker.1"]["status"] == 3 and exits["worker.1"]["level"] == "info"
    assert not run.events("process_restarting"), "on-failure does not restart a success"
    assert [e["status"] for e in run.events("all_exited")] == [0]


# The CI run: web serves, worker works, e2e waits for web (ready = "port"), talks
# to it, and exits with the tests' status.
E2E = (
    "import os, socket, sys\n"
    "s = socket.create_connection(('127.0.0.1', int(os.environ['WEB_PORT'])))\n"
    "s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n'); answer = s.recv(100)\n"
    "print('e2e got', answer.split(b'\\r\\n')[0].decode(), flush=True)\n"
    "sys.exit(int(sys.argv[1]))\n"
)
CI_CONFIG = (
    '[tool.keelrun.processes.web]\nready = "port"\n'
    '[tool.keelrun.processes.e2e]\ndepends_on = ["web"]\n'
)


@pytest.mark.parametrize("tests_status", [0, 3])
def test_exit_code_from_the_e2e_runner(tmp_path: Path, keelrun, tests_status: int) -> None:
    port = free_port()
    app = make_app(
        tmp_path,
        f"web: exec {py('netserver.py', '$PORT', 'http', '200')}\n"
        "worker: trap 'echo worker finished; exit 0' TERM; while :; do sleep 1 & wait; done\n"
        f"e2e: python3 e2e.py {tests_status}\n",
        pyproject=CI_CONFIG,
    )
    (app / "e2e.py").write_text(E2E)
    env = clean_environ(WEB_PORT=str(port))
    run = keelrun.start(
        "start",
        "--log-format",
        "json",
        "--exit-code-from",
        "e2e",
        "-p",
        str(port),
        cwd=app,
        env=env,
    )
    assert run.wait_exit(30) == tests_status
    said = [r["msg"] for r in run.records() if r["proc"] == "e2e.1"]
    assert said == ["e2e got HTTP/1.0 200 Whatever"]
    [ended] = run.events("type_ended")
    assert ended["status"] == tests_status and "every e2e instance has ended" in ended["msg"]
    stopped = {e["target"] for e in run.events("process_exited")} - {"e2e.1"}
    assert stopped == {"web.1", "worker.1"}, "the others were stopped gracefully"
    assert any(r["msg"] == "worker finished" for r in run.records() if r["proc"] == "worker.1")
    assert not run.events("process_restarting"), "a failed test run is not run again"


def test_exit_code_from_by_variable_and_config(tmp_path: Path, keelrun) -> None:
    app = make_app(
        tmp_path,
        "web: exec sleep 1000\ne2e: exit 5\n",
        keelrun_toml='exit_code_from = "web"\n',
    )
    run = keelrun.start(
        "start", "--log-format", "json", cwd=app, env=clean_environ(KEELRUN_EXIT_CODE_FROM="e2e")
    )
    assert run.wait_exit(20) == 5, "the variable wins over the config file"


def test_a_runner_whose_dependency_is_gone_fails_instead_of_waiting(
    tmp_path: Path, keelrun
) -> None:
    app = make_app(
        tmp_path,
        "web: echo web gave up early\ne2e: echo tests ran\n",
        keelrun_toml='[processes.web]\nready = "port"\n[processes.e2e]\ndepends_on = ["web"]\n',
    )
    run = keelrun.start("start", "--log-format", "json", "--exit-code-from", "e2e", cwd=app)
    assert run.wait_exit(20) == 1
    [failed] = run.events("process_failed")
    assert failed["target"] == "e2e.1" and failed["level"] == "error"
    assert failed["msg"] == "e2e.1 cannot start: web.1, which it waits for, has ended"
    assert not [r for r in run.records() if r["proc"] == "e2e.1"]


def test_abort_on_exit_stops_everything_with_the_first_status(tmp_path: Path, keelrun) -> None:
    app = make_app(
        tmp_path,
        "web: trap 'echo web finished; exit 0' TERM; while :; do sleep 1 & wait; done\n"
        "migrate: echo migrated; exit 7\n",
    )
    run = keelrun.start(
        "start", "--log-format", "json", "--abort-on-exit", "--restart", "never", cwd=app
    )
    assert run.wait_exit(20) == 7
    [aborting] = run.events("aborting")
    assert aborting["target"] == "migrate.1" and aborting["level"] == "warning"
    assert any(r["msg"] == "web finished" for r in run.records() if r["proc"] == "web.1")


def test_abort_on_exit_from_the_environment(tmp_path: Path, keelrun) -> None:
    app = make_app(tmp_path, "web: exec sleep 1000\nonce: true\n")
    env = clean_environ(KEELRUN_ABORT_ON_EXIT="true")
    run = keelrun.start("start", "--log-format", "json", cwd=app, env=env)
    assert run.wait_exit(20) == 0, "once ended with 0 (not restarted under on-failure)"
    assert [e["target"] for e in run.events("aborting")] == ["once.1"]


def test_without_a_policy_the_others_keep_running(tmp_path: Path, runner) -> None:
    app = runner.app("web: exec sleep 1000\nonce: echo once done\n")
    k = runner.start(app, "--no-timestamp")
    k.wait_for_line(r"^keelrun\s+\| once\.1 \(pid \d+\) exited with status 0$", 10)
    ps = k.ps()
    assert ps["once.1"]["state"] == "exited" and ps["web.1"]["state"] == "running"
    assert k.terminate() == 0


@pytest.mark.parametrize(
    ("args", "config", "error"),
    [
        (
            ["--exit-code-from", "e2f"],
            "",
            '--exit-code-from: no process type "e2f" in the Procfile; did you mean "e2e"?',
        ),
        (
            ["--exit-code-from", "e2e", "web"],
            "",
            "--exit-code-from: e2e has no instance in this run, so its exit status can never come",
        ),
        (
            [],
            "[tool.keelrun]\nabort_on_exit = 2\n",
            "pyproject.toml: tool.keelrun.abort_on_exit: expected true or false, got 2",
        ),
        (
            [],
            '[tool.keelrun.processes.web]\nhealth = "log:up"\n',
            'pyproject.toml: tool.keelrun.processes.web.health: "log:up" is a readiness check',
        ),
        (
            [],
            "[tool.keelrun.processes.e2e]\nsuccess_codes = [0, 256]\n",
            "pyproject.toml: tool.keelrun.processes.e2e.success_codes: an exit status is 0-255",
        ),
        (
            [],
            '[tool.keelrun.processes.web]\nready = "http:health"\n',
            'pyproject.toml: tool.keelrun.processes.web.ready: the path of "http:PATH" starts',
        ),
        (
            [],
            "[tool.keelrun.processes.web]\nprobe_timeout = 0\n",
            "pyproject.toml: tool.keelrun.processes.web.probe_timeout: expected a number of "
            "seconds > 0",
        ),
        (
            [],
            "[tool.keelrun.processes.web]\nhealth_retries = 0\n",
            "pyproject.toml: tool.keelrun.processes.web.health_retries: expected an integer",
        ),
        (
            [],
            '[tool.keelrun.processes.web]\nwatchdog = "soon"\n',
            "pyproject.toml: tool.keelrun.processes.web.watchdog: expected a number of seconds, "
            'got "soon"',
        ),
    ],
)
def test_bad_health_and_policy_values_are_input_errors(
    tmp_path: Path, args: list[str], config: str, error: str
) -> None:
    app = make_app(tmp_path, "web: exec sleep 1000\ne2e: true\n", pyproject=config or None)
    r = run_keelrun("start", *args, cwd=app)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith(f"keelrun: {error}"), r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.splitlines()) == 1
