"""The supervisor's state machine in-process: a fake kernel and a fake clock (milliseconds).

What real processes, pipes and signals do is proven by the test_start_* and
test_control_* suites; these cases pin down the rules: back-off, giving up,
restart during back-off, scale during stop, reload diffs, the end of a run.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from support.fakes import exited, killed

from keelrun.errors import RequestError
from keelrun.supervisor.reconcile import diff_settings

pytestmark = pytest.mark.timeout(10)


def test_backoff_doubles_then_gives_up_with_the_status(make) -> None:
    h = make("web: app\n", max_restarts="3")
    h.start()
    delays = []
    for _ in range(3):
        h.end("web.1", exited(3))
        assert h.state("web.1") == "backoff"
        delays.append(h.sup.instances["web.1"].timer.deadline - h.clock.now)
        h.advance(delays[-1])
        assert h.state("web.1") == "running"
    assert delays == [1.0, 2.0, 4.0]
    assert len(h.kernel.spawned) == 4
    h.end("web.1", exited(3))  # the 4th failed start in a row: 3 restarts were allowed
    assert h.state("web.1") == "failed"
    assert h.sup.shutdown.active and h.sup.shutdown.status == 3
    assert "web.1 failed 4 starts in a row: giving up" in h.events()


def test_backoff_starts_over_after_ten_seconds_up(make) -> None:
    h = make("web: app\n")
    h.start()
    h.end("web.1", exited(1))
    h.advance(1.0)
    h.end("web.1", exited(1))
    assert h.sup.instances["web.1"].timer.deadline - h.clock.now == 2.0
    h.advance(2.0)
    h.advance(10.0)  # stayed up: the next crash is forgiven
    h.end("web.1", exited(1))
    assert h.sup.instances["web.1"].timer.deadline - h.clock.now == 1.0
    assert h.sup.instances["web.1"].tracker.failures == 1


def test_a_death_by_signal_is_a_failure_and_reported_as_shells_do(make) -> None:
    h = make("web: app\n", restart="never")
    h.start()
    h.end("web.1", killed(signal.SIGSEGV))
    assert h.state("web.1") == "exited"
    assert h.sup.instances["web.1"].exit_status == 128 + signal.SIGSEGV
    assert h.sup.shutdown.status == 139  # every instance ended: keelrun exits with it


def test_restart_during_backoff_starts_at_once_and_only_once(make) -> None:
    h = make("web: app\nworker: job\n")
    h.start()
    h.end("worker.1", exited(1))
    assert h.state("worker.1") == "backoff"
    h.commands.restart({"names": ["worker"]})
    assert h.state("worker.1") == "running"
    spawned = len(h.kernel.spawned)
    h.advance(5.0)  # the cancelled back-off timer must not start a second process
    assert len(h.kernel.spawned) == spawned
    assert h.sup.instances["worker.1"].tracker.failures == 0


def test_scale_down_stops_the_highest_numbers_and_removes_them(make) -> None:
    h = make("web: app\nworker: job\n", formation="worker=3")
    h.start()
    reply = h.commands.scale({"changes": ["worker=1"]})
    assert reply["result"] == {"worker": {"from": 3, "to": 1}}
    term = h.kernel.signalled(signal.SIGTERM)
    assert term == [h.sup.instances["worker.3"].pid, h.sup.instances["worker.2"].pid]
    h.obey()
    assert sorted(h.sup.instances) == ["web.1", "worker.1"]
    assert h.sup.count_of("worker") == 1


def test_scaled_back_up_while_stopping_keeps_the_instance(make) -> None:
    h = make("worker: job\n", formation="worker=2")
    h.start()
    h.commands.scale({"changes": ["worker=1"]})
    h.commands.scale({"changes": ["worker=+1"]})
    h.obey()  # worker.2 ends by its SIGTERM and comes back
    assert h.state("worker.2") == "running"
    assert len(h.kernel.spawned) == 3


def test_scale_below_zero_is_clamped_and_says_so(make) -> None:
    h = make("worker: job\n")
    h.start()
    reply = h.commands.scale({"changes": ["worker=-5"]})
    assert reply["result"] == {"worker": {"from": 1, "to": 0, "clamped": True}}


def test_scale_and_restart_during_stop_are_refused(make) -> None:
    h = make("web: app\n")
    h.start()
    h.commands.stop({"names": []})
    for request in (h.commands.scale, h.commands.restart):
        with pytest.raises(RequestError, match="stopping") as info:
            request({"changes": ["web=2"], "names": []})
        assert info.value.kind == "runtime"
    assert len(h.kernel.spawned) == 1


def test_stop_sends_sigterm_then_sigkill_after_the_grace_once(make) -> None:
    h = make("web: app\nworker: job\n", timeout="2")
    h.start()
    h.commands.on_signal(signal.SIGINT)
    assert sorted(h.kernel.signalled(signal.SIGTERM)) == sorted(
        i.pid for i in h.sup.instances.values()
    )
    assert any("press Ctrl-C again to kill them now" in e for e in h.events())
    h.end("web.1", killed(signal.SIGTERM))
    h.advance(2.0)
    assert h.kernel.signalled(signal.SIGKILL) == [h.sup.instances["worker.1"].pid]
    killed_events = [e for e in h.events() if "SIGKILL" in e]
    assert killed_events == ["worker.1 still running after 2s: SIGKILL"]


def test_a_second_interrupt_kills_at_once_announced_once(make) -> None:
    h = make("web: app\n", timeout="30")
    h.start()
    h.commands.on_signal(signal.SIGINT)
    h.commands.on_signal(signal.SIGINT)
    h.commands.on_signal(signal.SIGTERM)  # a third changes nothing
    assert h.kernel.signalled(signal.SIGKILL) == [h.sup.instances["web.1"].pid]
    assert [e for e in h.events() if "SIGKILL" in e] == ["second SIGINT: SIGKILL web.1"]
    h.obey(signal.SIGKILL)
    assert h.sup.shutdown.status == 0  # a requested stop exits 0, forced or not


def test_a_spawn_keelrun_cannot_make_backs_off_without_counting(make) -> None:
    h = make("web: app\n", max_restarts="0")
    h.kernel.spawn_errors = 3
    h.start()
    for delay in (1.0, 2.0, 4.0):
        assert h.state("web.1") == "backoff"
        h.advance(delay)
    assert h.state("web.1") == "running"
    assert not h.sup.shutdown.active  # max-restarts 0, yet nothing failed


def test_depends_on_holds_a_type_until_its_dependency_is_ready(make) -> None:
    pyproject = (
        '[tool.keelrun.processes.web]\nready = "log:listening"\n'
        '[tool.keelrun.processes.worker]\ndepends_on = ["web"]\n'
    )
    h = make("web: app\nworker: job\n", pyproject)
    h.start()
    assert h.state("web.1") == "starting" and h.state("worker.1") == "starting"
    assert len(h.kernel.spawned) == 1
    web = h.sup.instances["web.1"]
    h.sup.checks.check_lines(web, b"booting\n")
    assert len(h.kernel.spawned) == 1
    h.sup.checks.check_lines(web, b"listening on 5000\n")
    assert h.state("web.1") == "ready" and h.state("worker.1") == "running"


def test_a_dependency_without_a_check_started_later_in_the_batch_releases_at_once(make) -> None:
    # web depends on worker, which comes after it and has no ready check: the start
    # spawns worker, then web, and says nothing of waiting.
    h = make("web: app\nworker: job\n", '[tool.keelrun.processes.web]\ndepends_on = ["worker"]\n')
    h.start()
    assert h.state("web.1") == "running" and h.state("worker.1") == "running"
    assert [c.command for c in h.kernel.spawned] == ["job", "app"]
    started = [e for e in h.events() if e.startswith("started")]
    assert [e.split(" (")[0] for e in started] == ["started worker.1", "started web.1"]
    assert not any("waits for" in e for e in h.events())


def test_not_ready_in_time_is_a_failed_start(make) -> None:
    pyproject = '[tool.keelrun.processes.web]\nready = "log:up"\nready_timeout = 3\n'
    h = make("web: app\n", pyproject, max_restarts="0")
    h.start()
    h.advance(3.0)
    assert h.state("web.1") == "stopping"
    h.obey()
    assert h.state("web.1") == "failed"


def test_the_formation_ends_with_the_first_failure(make) -> None:
    h = make("a: x\nb: y\nc: z\n", restart="never")
    h.start()
    h.end("a.1", exited(0))
    h.end("b.1", exited(4))
    assert not h.sup.shutdown.active
    h.end("c.1", exited(5))
    assert h.sup.shutdown.status == 4


def test_stopped_instances_keep_keelrun_running(make) -> None:
    h = make("web: app\n")
    h.start()
    h.commands.stop({"names": ["web.1"]})
    h.obey()
    assert h.state("web.1") == "stopped" and not h.sup.shutdown.active
    h.commands.restart({"names": ["web.1"]})
    assert h.state("web.1") == "running"


def test_a_requested_restart_says_so_before_the_stop(make) -> None:
    h = make("web: app\n")
    h.start()
    h.commands.restart({"names": ["web"]})
    h.obey()
    events = h.events()
    said = events.index("restarting web.1 (requested)")
    assert events[said + 1].startswith("web.1 (pid ") and "started web.1" in events[said + 2]


def test_reload_restarts_only_what_changed(make, tmp_path: Path) -> None:
    h = make("web: app\nworker: job\nclock: tick\n")
    h.start()
    root = Path(h.overrides.app_root)
    (root / "Procfile").write_text("web: app --new\nworker: job\nbeat: b\n")
    reply = h.commands.reload({})
    assert reply["result"] == {
        "restarted": ["web"],
        "added": ["beat"],
        "removed": ["clock"],
        "scaled": {},
    }
    assert h.state("web.1") == "stopping" and h.state("worker.1") == "running"
    assert h.state("clock.1") == "stopping" and h.state("beat.1") == "running"
    h.obey()
    assert h.sup.instances["web.1"].command == "app --new" and h.state("web.1") == "running"
    assert "clock.1" not in h.sup.instances


def test_reload_with_a_broken_procfile_changes_nothing_and_names_every_problem(make) -> None:
    h = make("web: app\n")
    h.start()
    (Path(h.overrides.app_root) / "Procfile").write_text("web: app\nweb: again\n!!\n")
    with pytest.raises(RequestError) as info:
        h.commands.reload({})
    assert info.value.kind == "input" and len(info.value.lines) == 2
    assert all("Procfile:" in line for line in info.value.lines)
    assert h.state("web.1") == "running" and len(h.kernel.spawned) == 1


def test_settings_diff_is_pure(make) -> None:
    a = make("web: app\nworker: job\n").settings
    b = make("web: app\nworker: job\n", formation="worker=4").settings
    c = make("web: app\nworker: job2\n").settings
    assert diff_settings(a, b).summary() == "scaled worker to 4"  # a count alone restarts nothing
    assert diff_settings(a, c).restarted == ["worker"]
    env_changed = a._replace(env={"X": "1"})
    assert diff_settings(a, env_changed).restarted == ["web", "worker"]


@pytest.mark.parametrize(
    ("toml", "restarted"),
    [
        ("grace = 9", []),
        ('stop_signal = "INT"', []),
        ('restart = "never"', []),
        ('ready = "log:up"\nhealth = "port"', []),
        ("success_codes = [0, 3]", []),
        ('watch = ["*.py"]', []),
        ('ready = "notify"', ["worker"]),  # NOTIFY_SOCKET
        ("watchdog = 5", ["worker"]),  # WATCHDOG_USEC
        ("tty = true", ["worker"]),
    ],
)
def test_a_reload_restarts_what_reaches_the_process(make, toml: str, restarted: list[str]) -> None:
    a = make("web: app\nworker: job\n").settings
    b = make("web: app\nworker: job\n", pyproject=f"[tool.keelrun.processes.worker]\n{toml}\n")
    b = b.settings
    assert diff_settings(a, b).restarted == restarted
    moved = make("web: app\nworker: job\n", port="6000").settings
    assert diff_settings(a, moved).restarted == ["web", "worker"]  # PORT changes


def test_usr1_reaches_every_group_through_the_commands(make) -> None:
    h = make("web: app\nworker: job\n")
    h.start()
    h.commands.on_signal(signal.SIGUSR1)
    pids = sorted(i.pid for i in h.sup.instances.values())
    assert sorted(h.kernel.signalled(signal.SIGUSR1)) == pids
    assert any(e.startswith("sent SIGUSR1 to web.1, worker.1") for e in h.events())


def test_started_events_come_before_any_line(make) -> None:
    h = make("web: app\nworker: job\n")
    h.start()
    os.write(h.kernel.spawned[0].out_w, b"first line\n")
    h.sup.pipes.drain(h.sup.instances["web.1"])
    lines = h.out.lines()
    assert lines[0].startswith("keelrun  | started web.1")
    assert lines[1].startswith("keelrun  | started worker.1")
    assert lines[2] == "web.1    | first line"


def test_scaling_past_a_hundred_warns_of_shared_ports(make) -> None:
    h = make("web: app\nworker: job\n")
    h.start()
    h.commands.scale({"changes": ["web=101"]})
    warned = [e for e in h.events() if "both get port" in e]
    assert warned == [
        "web.101 and worker.1 both get port 5100: type k's ports start at base + 100·k, "
        "so more than 100 instances of a type reach the next type's ports"
    ]
    h.commands.scale({"changes": ["worker=2"]})  # still shared: said again for this scale
    assert len([e for e in h.events() if "both get port" in e]) == 2


def test_scale_of_an_unknown_type_suggests_the_closest(make) -> None:
    h = make("web: app\nworker: job\n")
    h.start()
    with pytest.raises(RequestError, match=r'no process type "wroker".*did you mean "worker"'):
        h.commands.scale({"changes": ["wroker=2"]})


DEPENDS = (
    '[tool.keelrun.processes.web]\nready = "port"\n'
    '[tool.keelrun.processes.e2e]\ndepends_on = ["web"]\n'
)


def test_a_dependency_that_ends_for_good_fails_its_waiting_dependents(make) -> None:
    """Without this, `--exit-code-from e2e` would wait for ever for a web that is gone."""
    h = make("web: app\ne2e: tests\n", pyproject=DEPENDS, exit_code_from="e2e")
    h.start()
    assert h.state("e2e.1") == "starting"  # held for web
    h.end("web.1", exited(0))  # exits before it is ready; on-failure does not restart it
    assert h.state("web.1") == "exited" and h.state("e2e.1") == "failed"
    assert "e2e.1 cannot start: web.1, which it waits for, has ended" in h.events()
    assert h.sup.shutdown.active and h.sup.shutdown.status == 1
    assert [s.command for s in h.kernel.spawned] == ["app"]  # the tests never ran


def test_a_dependency_that_gives_up_keeps_its_own_status(make) -> None:
    h = make("web: app\ne2e: tests\n", pyproject=DEPENDS, max_restarts="0")
    h.start()
    h.end("web.1", exited(3))
    assert h.state("web.1") == "failed" and h.state("e2e.1") == "stopped"
    assert "web.1 failed 1 start in a row: giving up" in h.events()
    assert h.sup.shutdown.status == 3


def test_stranding_leaves_abort_on_exit_its_own_status(make) -> None:
    h = make("web: app\ne2e: tests\n", pyproject=DEPENDS, abort_on_exit="true")
    h.start()
    h.end("web.1", exited(0))
    assert h.sup.shutdown.status == 0  # web's status: the first instance that ended
    assert h.state("e2e.1") != "failed"


def test_an_instance_made_after_its_dependency_ended_fails_at_once(make) -> None:
    h = make("web: app\ne2e: tests\nworker: job\n", pyproject=DEPENDS, formation="e2e=0")
    h.start()
    h.end("web.1", exited(0))  # nothing waits for it yet: the others run on
    assert not h.sup.shutdown.active and h.state("worker.1") == "running"
    h.commands.scale({"changes": ["e2e=1"]})
    assert h.state("e2e.1") == "failed"
    assert "e2e.1 cannot start: web.1, which it waits for, has ended" in h.events()
    assert h.sup.shutdown.status == 1


def test_a_reload_that_adds_ready_judges_running_instances_by_their_start(make) -> None:
    h = make("web: app\nworker: job\n")
    h.start()
    root = Path(h.overrides.app_root)
    (root / "keelrun.toml").write_text(
        '[processes.web]\nready = "port"\n[processes.worker]\ndepends_on = ["web"]\ncount = 2\n'
    )
    h.commands.reload({})
    # web.1 was started without a ready check: running is ready enough for worker.2.
    assert h.state("web.1") == "running" and h.state("worker.2") == "running"


def test_a_reload_that_drops_a_dependency_releases_the_held(make) -> None:
    h = make("web: app\nworker: job\n", pyproject=DEPENDS.replace("e2e", "worker"))
    h.start()
    assert h.state("worker.1") == "starting"  # held: web has a port check
    (Path(h.overrides.app_root) / "pyproject.toml").write_text(
        '[tool.keelrun.processes.web]\nready = "port"\n'
    )
    h.commands.reload({})
    assert h.state("worker.1") == "running"


def test_an_unknown_name_suggests_the_closest(make) -> None:
    h = make("web: app\nworker: job\n")
    h.start()
    with pytest.raises(
        RequestError, match=r'unknown process or type "wbe\.1"; did you mean "web\.1"'
    ):
        h.commands.stop({"names": ["wbe.1"]})
    with pytest.raises(
        RequestError, match=r'unknown process or type "wroker"; did you mean "worker"'
    ):
        h.commands.signal({"signal": "TERM", "names": ["wroker"]})
    with pytest.raises(RequestError, match=r'unknown process or type "zzz"$'):
        h.commands.restart({"names": ["zzz"]})
