"""The exec probe: /bin/sh -c COMMAND in its own group, reaped by the one reaper, killed whole."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from support.loopkit import Kit
from support.procs import wait_gone

from keelrun.supervisor.probeapi import ProbeResult
from keelrun.supervisor.probes import ExecProbe, ProbeTarget

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def kit():
    k = Kit()
    yield k
    left = k.close()
    assert not left, f"processes left behind: {left}"


def make(
    kit: Kit, command: str, root: Path | str = "/", timeout: float = 5.0, **env: str
) -> ExecProbe:
    target = ProbeTarget(kit.loop, os.getpid(), 5555, root, kit.env(**env), timeout, kit.routes)
    return ExecProbe(target, command)


def run(kit: Kit, probe: ExecProbe) -> ProbeResult:
    results: list[ProbeResult] = []
    probe.start(results.append)
    assert not results
    kit.run_until(lambda: results, 15, "the exec probe's result")
    return results[0]


def test_exit_status_decides(kit: Kit) -> None:
    assert run(kit, make(kit, "exit 0")) == ProbeResult(True, "exit status 0")
    assert run(kit, make(kit, "exit 3")) == ProbeResult(False, "exit status 3")


def test_failure_detail_has_the_last_output_line(kit: Kit) -> None:
    result = run(kit, make(kit, "echo first; echo 'no \x1b[31mdb' >&2; exit 1"))
    assert result == ProbeResult(False, "exit status 1: no \\x1b[31mdb")


def test_runs_in_the_app_root_with_the_instance_environment(kit: Kit, tmp_path: Path) -> None:
    check = f'test "$(pwd)" = "{tmp_path}" && test "$PORT" = 7001 && test "$PS" = web.1'
    assert run(kit, make(kit, check, tmp_path, PORT="7001", PS="web.1")).ok
    assert not run(kit, make(kit, check, tmp_path, PORT="7002", PS="web.1")).ok


def test_own_session_and_group_and_reaped_by_the_reaper(kit: Kit, tmp_path: Path) -> None:
    out = tmp_path / "ids"
    probe = make(kit, f"echo $$ $(ps -o pgid= -p $$) $(ps -o sid= -p $$) > {out}")
    results: list[ProbeResult] = []
    probe.start(results.append)
    pid = probe.pid
    assert pid is not None and pid in kit.routes
    kit.run_until(lambda: results, 15, "the result")
    assert results == [ProbeResult(True, "exit status 0")]
    shell, pgid, sid = map(int, out.read_text().split())
    assert shell == pid == pgid == sid
    assert pid not in kit.routes and pid not in kit.unknown


def test_timeout_kills_the_whole_group(kit: Kit, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    probe = make(kit, f"sleep 60 & echo $! > {pids}; sleep 60", timeout=0.5)
    started = time.monotonic()
    result = run(kit, probe)
    assert result == ProbeResult(False, "still running after 0.5s: killed")
    assert 0.45 <= time.monotonic() - started < 5
    kit.run_until(lambda: not kit.routes, 5, "the killed probe reaped")
    background = int(pids.read_text())
    assert wait_gone([background], 5) == [], "the probe's background child is gone"


def test_background_child_left_by_a_finished_probe_is_killed(kit: Kit, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    result = run(kit, make(kit, f"sleep 60 & echo $! > {pids}; exit 0"))
    assert result.ok
    background = int(pids.read_text())
    assert wait_gone([background], 5) == [], "the probe's background child is gone"


def test_flooding_probe_never_blocks(kit: Kit) -> None:
    result = run(
        kit, make(kit, "head -c 5000000 /dev/zero | tr '\\0' x; echo; echo tail-line; exit 2")
    )
    assert result == ProbeResult(False, "exit status 2: tail-line")


def test_cancel_kills_and_the_reaper_still_collects(kit: Kit) -> None:
    results: list[ProbeResult] = []
    probe = make(kit, "sleep 60")
    probe.start(results.append)
    pid = probe.pid
    kit.run_for(0.1)
    probe.cancel()
    kit.run_until(lambda: pid not in kit.routes, 5, "the cancelled probe reaped")
    kit.run_for(0.1)
    assert results == [] and not probe.running


def test_a_command_that_cannot_start(kit: Kit, tmp_path: Path) -> None:
    result = run(kit, make(kit, "true", tmp_path / "no-such-dir"))
    assert not result.ok and result.detail.startswith("cannot start the probe:")


def test_tries_one_after_another(kit: Kit) -> None:
    probe = make(kit, "exit 0")
    for _ in range(3):
        assert run(kit, probe).ok
    assert not kit.routes
