"""`keelrun reload` and SIGHUP: re-read Procfile and .env, restart only what changed."""

from __future__ import annotations

import re
import signal
from collections.abc import Callable

import pytest
from support.control import TRAPPING, Keelrun, Runner
from support.procs import alive, proc_environ

pytestmark = pytest.mark.timeout(60)

PROCFILE = f"web: {TRAPPING}\nworker: {TRAPPING}\n"


def _start(runner: Runner) -> Keelrun:
    k = runner.start(runner.app(PROCFILE, env_file="GREETING=hello\n"))
    k.wait_ready("web.1", "worker.1")
    return k


def _restarted(k: Keelrun, name: str, since: int) -> None:
    k.wait_for_line(rf"{re.escape(name)}\s+\| {re.escape(name)} got TERM$", 10, since)
    k.wait_for_line(rf"{re.escape(name)}\s+\| {re.escape(name)} up ", 10, since)


def _reload_by_client(k: Keelrun) -> None:
    r = k.client("reload")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("reloaded")


def _reload_by_sighup(k: Keelrun) -> None:
    mark = k.mark()
    k.proc.send_signal(signal.SIGHUP)
    k.wait_for_line(r"keelrun\s+\| reload", 10, mark)


RELOADERS: list[Callable[[Keelrun], None]] = [_reload_by_client, _reload_by_sighup]
IDS = ["client", "sighup"]


@pytest.mark.parametrize("reload", RELOADERS, ids=IDS)
def test_changed_command_restarts_only_that_type(
    runner: Runner, reload: Callable[[Keelrun], None]
) -> None:
    k = _start(runner)
    before = k.ps()
    (k.app / "Procfile").write_text(f"web: {TRAPPING}\nworker: {TRAPPING} # v2\n")
    mark = k.mark()
    reload(k)
    _restarted(k, "worker.1", mark)
    k.wait_for_line(r"keelrun\s+\| reloaded: restarted worker$", 10, mark)
    after = k.ps()
    assert after["web.1"]["pid"] == before["web.1"]["pid"]
    assert after["worker.1"]["pid"] != before["worker.1"]["pid"]
    assert alive(after["worker.1"]["pid"])
    assert after["worker.1"]["command"].endswith("# v2")
    assert not any(re.search(r"web\.1\s+\| web\.1 got TERM", x) for x in k.lines[mark:])


@pytest.mark.parametrize("reload", RELOADERS, ids=IDS)
def test_changed_env_restarts_the_types_with_the_new_value(
    runner: Runner, reload: Callable[[Keelrun], None]
) -> None:
    k = _start(runner)
    before = k.ps()
    assert proc_environ(before["web.1"]["pid"])["GREETING"] == "hello"
    (k.app / ".env").write_text("GREETING=bonjour\n")
    mark = k.mark()
    reload(k)
    _restarted(k, "web.1", mark)
    _restarted(k, "worker.1", mark)
    after = k.ps()
    for name in ("web.1", "worker.1"):
        assert after[name]["pid"] != before[name]["pid"]
        assert proc_environ(after[name]["pid"])["GREETING"] == "bonjour"


def test_added_type_starts_and_removed_type_stops(runner: Runner) -> None:
    k = _start(runner)
    before = k.ps()
    (k.app / "Procfile").write_text(f"web: {TRAPPING}\nclock: {TRAPPING}\n")
    mark = k.mark()
    r = k.client("reload")
    assert r.returncode == 0, r.stderr
    assert "added: clock" in r.stdout and "removed: worker" in r.stdout
    k.wait_for_line(r"worker\.1\s+\| worker\.1 got TERM$", 10, mark)
    k.wait_for_line(r"keelrun\s+\| worker\.1 \(pid \d+\) ", 10, mark)
    k.wait_for_line(r"clock\.1\s+\| clock\.1 up port=5100$", 10, mark)
    after = k.ps()
    assert sorted(after) == ["clock.1", "web.1"]
    assert after["web.1"]["pid"] == before["web.1"]["pid"]
    assert not alive(before["worker.1"]["pid"])
    # The removed type is gone for clients too; the added one is known.
    assert k.client("scale", "worker=1").returncode == 2
    assert k.client("scale", "clock=2").returncode == 0
    k.wait_ready("clock.2")


@pytest.mark.parametrize(
    "broken",
    ["web: ok\nthis is not a procfile line\n", "web: a\nweb: b\n", ""],
    ids=["garbage", "duplicate", "empty"],
)
def test_broken_procfile_on_reload_is_reported_and_changes_nothing(
    runner: Runner, broken: str
) -> None:
    k = _start(runner)
    before = k.ps()
    (k.app / "Procfile").write_text(broken)
    mark = k.mark()
    r = k.client("reload")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "Procfile" in r.stderr
    k.wait_for_line(r"keelrun\s+\| reload failed, nothing changed: .*Procfile", 10, mark)
    # SIGHUP with the same broken file: reported on keelrun's stream, nothing changes.
    mark = k.mark()
    k.proc.send_signal(signal.SIGHUP)
    k.wait_for_line(r"keelrun\s+\| reload failed, nothing changed: .*Procfile", 10, mark)
    after = k.ps()
    assert {n: r["pid"] for n, r in after.items()} == {n: r["pid"] for n, r in before.items()}
    assert all(r["state"] == "running" for r in after.values())

    # Fixed again: a reload works.
    (k.app / "Procfile").write_text(PROCFILE)
    r = k.client("reload")
    assert r.returncode == 0 and "nothing changed" in r.stdout, r.stdout


def test_procfile_gone_before_reload_changes_nothing(runner: Runner) -> None:
    k = _start(runner)
    before = k.ps()
    (k.app / "Procfile").unlink()
    r = k.client("reload")
    assert r.returncode == 2 and "Procfile" in r.stderr and "Traceback" not in r.stderr
    assert {n: r["pid"] for n, r in k.ps().items()} == {n: r["pid"] for n, r in before.items()}


def test_settings_apply_in_place_unless_they_reach_the_process(runner: Runner) -> None:
    """Only a change of command or environment restarts (notify adds NOTIFY_SOCKET)."""
    heeds_int = "trap 'echo \"$PS got INT\"; exit 0' INT; " + TRAPPING
    app = runner.app(f"web: {TRAPPING}\nworker: {heeds_int}\n")
    (app / "keelrun.toml").write_text("[processes.worker]\ngrace = 3\n")
    k = runner.start(app)
    k.wait_ready("web.1", "worker.1")
    before = k.ps()
    (app / "keelrun.toml").write_text('[processes.worker]\ngrace = 2\nstop_signal = "INT"\n')
    mark = k.mark()
    r = k.client("reload")
    assert (r.returncode, r.stdout) == (0, "reloaded: nothing changed\n"), r.stderr
    k.wait_for_line(r"keelrun\s+\| reloaded: nothing changed$", 10, mark)
    assert {n: p["pid"] for n, p in k.ps().items()} == {n: p["pid"] for n, p in before.items()}
    # In place: the running instance is stopped with the new signal.
    assert k.client("stop", "worker.1").returncode == 0
    k.wait_for_line(r"worker\.1\s+\| worker\.1 got INT$", 10, mark)
    mark = k.mark()
    assert k.client("restart", "worker.1").returncode == 0
    k.wait_for_line(r"worker\.1\s+\| worker\.1 up ", 10, mark)
    before = k.ps()

    (app / "keelrun.toml").write_text('[processes.worker]\nready = "notify"\n')
    mark = k.mark()
    r = k.client("reload")
    assert (r.returncode, r.stdout) == (0, "reloaded (restarted: worker)\n"), r.stderr
    _restarted(k, "worker.1", mark)
    after = k.ps()
    assert after["web.1"]["pid"] == before["web.1"]["pid"]
    assert "NOTIFY_SOCKET" in proc_environ(after["worker.1"]["pid"])


def test_a_changed_count_scales_the_type(runner: Runner) -> None:
    app = runner.app(PROCFILE)
    k = runner.start(app)
    k.wait_ready("web.1", "worker.1")
    before = k.ps()
    (app / "keelrun.toml").write_text("[processes.worker]\ncount = 3\n")
    mark = k.mark()
    r = k.client("reload")
    assert (r.returncode, r.stdout) == (0, "reloaded (scaled: worker=3)\n"), r.stderr
    k.wait_ready("worker.2", "worker.3")
    k.wait_for_line(r"keelrun\s+\| reloaded: scaled worker to 3$", 10, mark)
    after = k.ps()
    assert sorted(after) == ["web.1", "worker.1", "worker.2", "worker.3"]
    assert after["worker.1"]["pid"] == before["worker.1"]["pid"]


def test_reload_keeps_a_scaled_count(runner: Runner) -> None:
    k = _start(runner)
    assert k.client("scale", "worker=3").returncode == 0
    k.wait_ready("worker.2", "worker.3")
    before = k.ps()
    (k.app / ".env").write_text("GREETING=salut\n")
    mark = k.mark()
    assert k.client("reload").returncode == 0
    for n in (1, 2, 3):
        _restarted(k, f"worker.{n}", mark)
    after = k.ps()
    assert sorted(after) == ["web.1", "worker.1", "worker.2", "worker.3"]
    for name in after:
        assert after[name]["pid"] != before[name]["pid"], name
        assert proc_environ(after[name]["pid"])["GREETING"] == "salut"


def test_reload_errors_are_one_line_per_problem(runner: Runner) -> None:
    k = _start(runner)
    (k.app / "Procfile").write_text("web: ok\nweb: again\n!!\n")
    r = k.client("reload")
    assert r.returncode == 2
    lines = r.stderr.splitlines()
    assert len(lines) == 2, r.stderr
    assert (
        lines[0].startswith("keelrun: Procfile:2: duplicate process type") and "line 1" in lines[0]
    )
    assert lines[1].startswith("keelrun: Procfile:3: ")


def test_reload_after_a_start_with_relative_paths(runner: Runner) -> None:
    """keelrun moves into the app root; `-d app -e app/.env.dev` still mean what they
    meant where it was started."""
    app = runner.app(PROCFILE, env_file="GREETING=hello\n")
    (app / ".env.dev").write_text("GREETING=dev\n")
    k = runner.start(app.parent, "-d", app.name, "-e", f"{app.name}/.env.dev")
    k.wait_ready("web.1", "worker.1")
    (app / ".env.dev").write_text("GREETING=changed\n")
    mark = k.mark()
    r = k.client("reload", "-d", app.name)
    assert (r.returncode, r.stdout) == (0, "reloaded (restarted: web, worker)\n"), r.stderr
    _restarted(k, "web.1", mark)
    k.proc.send_signal(signal.SIGHUP)  # the same reload, by signal
    k.wait_for_line(r"keelrun\s+\| reloaded: nothing changed$", 10, mark)
