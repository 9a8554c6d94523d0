"""Stopping and signal forwarding, with real signals to a real keelrun."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest
from conftest import make_app
from support import alive, py, wait_gone

pytestmark = pytest.mark.timeout(30)


def member_pid(run, name: str) -> int:
    return int(run.wait_for_match(rf"\| {name} up pid=(\d+)").group(1))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGQUIT])
def test_stop_signals_stop_everything_and_exit_0(tmp_path: Path, keelrun, sig: int) -> None:
    # worker's sleep is a child of its shell: only a signal to the group reaches it.
    app = make_app(tmp_path, "web: echo up; exec sleep 1000\nworker: echo up; sleep 1000\n")
    run = keelrun.start("start", "-m", "worker=2", cwd=app)
    for name in ("web.1", "worker.1", "worker.2"):
        run.wait_for_line(rf"{re.escape(name)} +\| up")
    run.send(sig)
    assert run.wait_exit() == 0
    assert any(
        f"stopping all processes ({signal.Signals(sig).name})" in line for line in run.text_lines()
    )


PER_TYPE_PROCFILE = (
    # The member takes a moment to shut down, as servers do: still there for any extra signal.
    f"web: {py('trapper.py', 'member', '--slow-exit', '0.5')} & "
    f"exec {py('trapper.py', 'leader')}\n"
    f"worker: exec {py('trapper.py', 'worker')}\n"
)
PER_TYPE_CONFIG = '[tool.keelrun.processes.web]\nstop_signal = "INT"\n'


def signals_seen(tmp_path: Path, keelrun) -> list[str]:
    app = make_app(tmp_path, PER_TYPE_PROCFILE, pyproject=PER_TYPE_CONFIG)
    run = keelrun.start("start", "--no-timestamp", cwd=app)
    for name in ("member", "leader", "worker"):
        run.wait_for_line(rf"\| {name} up")
    run.send(signal.SIGTERM)
    assert run.wait_exit() == 0
    return sorted(line.split("| ", 1)[1] for line in run.text_lines() if " got SIG" in line)


def test_stop_signal_per_type_reaches_the_whole_group(tmp_path: Path, keelrun) -> None:
    got = signals_seen(tmp_path, keelrun)
    assert {"leader got SIGINT", "member got SIGINT", "worker got SIGTERM"} <= set(got)
    assert "leader got SIGTERM" not in got and "worker got SIGINT" not in got


def test_group_members_get_only_their_types_stop_signal(tmp_path: Path, keelrun) -> None:
    got = signals_seen(tmp_path, keelrun)
    assert got == ["leader got SIGINT", "member got SIGINT", "worker got SIGTERM"]


def test_stubborn_child_is_killed_after_the_grace(tmp_path: Path, keelrun) -> None:
    app = make_app(
        tmp_path,
        f"web: exec {py('trapper.py', 'stubborn', '--ignore-term')}\n"
        "worker: echo up; exec sleep 1000\n",
    )
    run = keelrun.start("start", "-t", "1", cwd=app)
    pid = member_pid(run, "stubborn")
    run.wait_for_line(r"worker\.1 +\| up")
    sent = time.monotonic()
    run.send(signal.SIGTERM)
    assert run.wait_exit() == 0, "a requested stop exits 0 even when the grace ran out"
    took = time.monotonic() - sent
    assert took < 1 + 1.5, f"keelrun took {took:.2f}s to stop with a 1s grace"
    assert took >= 0.9, "the stubborn child was given its grace"
    assert not alive(pid)
    lines = run.text_lines()
    assert any("stubborn got SIGTERM" in line for line in lines)
    assert any("SIGKILL" in line and "web.1" in line for line in lines)


@pytest.mark.parametrize(
    ("config", "flags"),
    [
        ("[tool.keelrun]\ntimeout = 20\n[tool.keelrun.processes.web]\ngrace = 0.5\n", []),
        # A flag beats the config file, a type's own table included.
        ("[tool.keelrun.processes.web]\ngrace = 20\n", ["-t", "0.5"]),
    ],
    ids=["type-over-config-timeout", "flag-over-type"],
)
def test_per_type_grace(tmp_path: Path, keelrun, config: str, flags: list[str]) -> None:
    app = make_app(
        tmp_path, f"web: exec {py('trapper.py', 'stubborn', '--ignore-term')}\n", pyproject=config
    )
    run = keelrun.start("start", *flags, cwd=app)
    member_pid(run, "stubborn")
    sent = time.monotonic()
    run.send(signal.SIGTERM)
    assert run.wait_exit() == 0
    assert time.monotonic() - sent < 0.5 + 1.5


@pytest.mark.parametrize("second", [signal.SIGINT, signal.SIGTERM])
def test_second_interrupt_kills_at_once(tmp_path: Path, keelrun, second: int) -> None:
    app = make_app(tmp_path, f"web: exec {py('trapper.py', 'stubborn', '--ignore-term')}\n")
    run = keelrun.start("start", "-t", "30", cwd=app)
    pid = member_pid(run, "stubborn")
    run.send(signal.SIGTERM)
    run.wait_for_line(r"stubborn got SIGTERM")
    sent = time.monotonic()
    run.send(second)
    assert run.wait_exit(timeout=10) == 0
    assert time.monotonic() - sent < 3, "no wait for the 30 s grace"
    assert not alive(pid)
    # The first interrupt says how to force; the forced kill is announced once.
    text = run.text_lines()
    stopping = [x for x in text if "stopping all processes" in x]
    assert len(stopping) == 1
    assert "SIGTERM again kills them now" in stopping[0], stopping
    kills = [x for x in text if ": SIGKILL" in x]
    assert len(kills) == 1 and f"second {signal.Signals(second).name}" in kills[0], kills


def test_first_ctrl_c_says_a_second_one_forces_the_stop(tmp_path: Path, keelrun) -> None:
    app = make_app(tmp_path, f"web: exec {py('trapper.py', 'stubborn', '--ignore-term')}\n")
    run = keelrun.start("start", "-t", "30", cwd=app)
    member_pid(run, "stubborn")
    run.send(signal.SIGINT)
    run.wait_for_line(r"keelrun\s+\| stopping all processes \(SIGINT\); press Ctrl-C again to kill")
    run.send(signal.SIGINT)
    run.wait_for_line(r"keelrun\s+\| second SIGINT: SIGKILL web\.1$")
    assert run.wait_exit(timeout=10) == 0
    assert sum(": SIGKILL" in x for x in run.text_lines()) == 1


def test_group_whose_leader_exited_is_stopped_when_it_ends(tmp_path: Path, keelrun) -> None:
    # web's shell exits at once; its background sleep lives on in web's group.
    app = make_app(tmp_path, 'web: sleep 1000 & echo "member pid=$!"; exit 0\n')
    run = keelrun.start("start", "-t", "1", cwd=app)
    pid = int(run.wait_for_match(r"member pid=(\d+)").group(1))
    assert run.wait_exit() == 0
    assert not alive(pid)


def test_lingering_group_is_stopped_while_keelrun_runs_on(tmp_path: Path, keelrun) -> None:
    # The member ignores SIGTERM from birth (inherited SIG_IGN): only SIGKILL ends it.
    app = make_app(
        tmp_path,
        f"web: trap '' TERM; {py('trapper.py', 'member', '--ignore-term')} & exit 0\n"
        "worker: echo up; exec sleep 1000\n",
    )
    run = keelrun.start("start", "-t", "1", cwd=app)
    pid = member_pid(run, "member")
    run.wait_for_line(r"worker\.1 +\| up")
    assert wait_gone([pid], timeout=1 + 2.0) == [], "the member outlived its group's grace"
    assert run.proc.poll() is None, "keelrun still supervises worker.1"
    run.send(signal.SIGTERM)
    assert run.wait_exit() == 0


def test_lingering_group_member_ignoring_term_is_killed_on_stop(tmp_path: Path, keelrun) -> None:
    app = make_app(
        tmp_path,
        f"web: trap '' TERM; {py('trapper.py', 'member', '--ignore-term')} & "
        f"exec {py('trapper.py', 'leader')}\n",
    )
    run = keelrun.start("start", "-t", "1", cwd=app)
    pid = member_pid(run, "member")
    member_pid(run, "leader")
    sent = time.monotonic()
    run.send(signal.SIGTERM)  # the leader exits at once, the member lingers
    assert run.wait_exit() == 0
    assert time.monotonic() - sent < 1 + 1.5
    assert not alive(pid)
    assert any("leader got SIGTERM" in line for line in run.text_lines())


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGUSR2])
def test_usr_signals_are_forwarded_to_every_group(tmp_path: Path, keelrun, sig: int) -> None:
    procfile = (
        f"web: {py('trapper.py', 'member')} & exec {py('trapper.py', 'leader')}\n"
        f"worker: exec {py('trapper.py', 'worker')}\n"
    )
    app = make_app(tmp_path, procfile)
    run = keelrun.start("start", "--no-timestamp", "-m", "worker=2", cwd=app)
    for name in ("member", "leader", "worker"):
        run.wait_for_line(rf"\| {name} up")
    run.wait_for_line(r"\| worker up", start=run.wait_for_line(r"\| worker up") + 1)
    run.send(sig)
    name = signal.Signals(sig).name
    for who in ("member", "leader", "worker"):
        run.wait_for_line(rf"\| {who} got {name}")
    run.wait_for_line(rf"\| worker got {name}", start=run.wait_for_line(rf"worker got {name}") + 1)
    run.send(signal.SIGTERM)
    assert run.wait_exit() == 0
    got = [line for line in run.text_lines() if f"got {name}" in line]
    assert len(got) == 4, "each process exactly once"
