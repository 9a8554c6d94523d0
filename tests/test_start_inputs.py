"""What `keelrun start` says about its inputs: did-you-mean, types that run nothing,
ports two types share, ports another process holds (issue 9 items 9, 13, 15)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from conftest import make_app
from support.ports import free_base, listening

pytestmark = pytest.mark.timeout(40)

# stderr joins stdout, so that a warning is a line to wait for like any other.
MERGED = ["sh", "-c", 'exec "$@" 2>&1', "sh"]
IDLE = "exec sleep 60"


def stop(run) -> None:
    run.send(signal.SIGTERM)
    assert run.wait_exit() == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["wbe"], 'keelrun: TYPE: no process type "wbe" in the Procfile; did you mean "web"?'),
        (
            ["-m", "wbe=2"],
            'keelrun: --formation: no process type "wbe" in the Procfile; did you mean "web"?',
        ),
        (
            ["wrker", "-m", "web=1", "-m", "nope=2"],
            'keelrun: --formation: no process type "nope" in the Procfile (types: web, worker)',
        ),
    ],
)
def test_unknown_type_suggests_the_closest(tmp_path: Path, keelrun, args, message) -> None:
    app = make_app(tmp_path, f"web: {IDLE}\nworker: {IDLE}\n")
    run = keelrun.start("start", *args, cwd=app)
    assert run.wait_exit() == 2
    assert message in run.stderr.splitlines()
    assert run.lines == []


@pytest.mark.parametrize(
    ("args", "source"),
    [
        (["worker"], "keelrun.toml: processes.worker.count"),
        (["worker", "-m", "worker=0"], "--formation"),
        (["web", "worker", "-m", "all=0", "-m", "web=1"], "--formation"),
    ],
)
def test_a_named_type_with_count_0_says_why_nothing_runs(
    tmp_path: Path, keelrun, args: list[str], source: str
) -> None:
    app = make_app(
        tmp_path,
        f"web: echo web up; {IDLE}\nworker: {IDLE}\n",
        keelrun_toml="[processes.worker]\ncount = 0\n",
    )
    run = keelrun.start("start", "-p", str(free_base(2)), *args, cwd=app, wrapper=MERGED)
    run.wait_for_line(
        rf"^keelrun: warning: worker has a count of 0 \({source}\), so no instance of it "
        r"runs; `keelrun scale worker=1` starts one$"
    )
    stop(run)


def test_a_formation_of_nothing_says_so(tmp_path: Path, keelrun) -> None:
    app = make_app(tmp_path, f"web: {IDLE}\nworker: {IDLE}\n")
    run = keelrun.start("start", "-m", "all=0", cwd=app, wrapper=MERGED)
    run.wait_for_line(
        r"^keelrun: warning: every type has a count of 0: nothing runs until `keelrun scale"
    )
    stop(run)


def test_start_warns_when_two_types_share_ports(tmp_path: Path, keelrun) -> None:
    base = free_base(2)
    app = make_app(tmp_path, f"web: {IDLE}\nworker: echo worker up; {IDLE}\n")
    run = keelrun.start("start", "-p", str(base), "-m", "web=102", cwd=app, wrapper=MERGED)
    run.wait_for_line(
        rf"^keelrun: warning: web\.101 and worker\.1 both get port {base + 100}: "
        r"type k's ports start at base \+ 100·k"
    )
    run.wait_for_line(r"worker\.1 +\| worker up")
    stop(run)


@pytest.mark.parametrize("address", ["127.0.0.1", "0.0.0.0", "::"])
def test_start_warns_when_another_process_has_the_port(
    tmp_path: Path, keelrun, address: str
) -> None:
    base = free_base(2)
    shown = f"[{address}]" if ":" in address else address
    app = make_app(tmp_path, f"web: {IDLE}\nworker: echo worker up; {IDLE}\n")
    with listening(address, base + 100):
        run = keelrun.start("start", "-p", str(base), cwd=app, wrapper=MERGED)
        run.wait_for_line(
            rf"^keelrun: warning: port {base + 100} of worker\.1 is already in use "
            rf"\(another process listens on {shown}:{base + 100}\)$".replace("[", r"\[")
        )
        run.wait_for_line(r"worker\.1 +\| worker up")  # a warning, not an error
        stop(run)
    assert f"port {base} " not in run.stderr + "\n".join(run.text_lines())
