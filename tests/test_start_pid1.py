"""keelrun as PID 1 of a pid namespace and as a child subreaper
reaps every zombie, orphans included, and ends daemons that left their group."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path

import pytest
from conftest import make_app
from support import alive, cmdline, host_pid, ppid_of, py, tree, wait_gone, wait_until, zombies_in

pytestmark = pytest.mark.timeout(40)

UNSHARE = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"]


def unshare_works() -> bool:
    import subprocess

    if shutil.which("unshare") is None:
        return False
    done = subprocess.run([*UNSHARE, "true"], capture_output=True, timeout=10)
    return done.returncode == 0


needs_unshare = pytest.mark.skipif(
    not unshare_works(), reason="unshare --pid --mount-proc needs root (or user namespaces)"
)


def orphan_app(tmp_path: Path) -> tuple[Path, Path, int]:
    """App whose processes leave zombies, an orphan and a setsid daemon; returns
    (app, daemon report file, write end of the trigger that releases them)."""
    trigger = tmp_path / "trigger"
    os.mkfifo(trigger)
    # Opened read-write before keelrun starts: readers never block in open(), and
    # closing this (not inherited) fd is what releases them.
    hold = os.open(trigger, os.O_RDWR | os.O_CLOEXEC)
    report = tmp_path / "daemon.report"
    app = make_app(
        tmp_path / "app",
        f"maker: exec {py('zmaker.py', str(trigger), '3')}\n"
        f"daemon: {py('daemon.py', str(report))}\n"
        'web: echo "ppid=$PPID"; exec sleep 1000\n',
    )
    return app, report, hold


def wait_ready(run) -> dict[str, int]:
    """Pids (as keelrun's children see them) of the orphan, the daemon and the zombies."""
    zombies = run.wait_for_match(r"maker ready zombies=([\d,]+)").group(1)
    return {
        "orphan": int(run.wait_for_match(r"orphan ready pid=(\d+)").group(1)),
        "daemon": int(run.wait_for_match(r"daemon ready pid=(\d+)").group(1)),
        "zombies": len(zombies.split(",")),
    }


def check_reaping(run, keelrun_pid: int, orphan_pid: int, hold: int) -> None:
    # Positive control: the maker's unreaped children are zombies we can see.
    maker = [p for p in tree(keelrun_pid) if "zmaker.py" in cmdline(p) and alive(p)]
    assert len(maker) == 2, "the maker and its orphan"
    assert len([z for z in zombies_in(keelrun_pid) if ppid_of(z) in maker]) >= 3
    # The orphan's parent exited: it was reparented to keelrun. If keelrun did not
    # reap, nobody else could, and it would stay a zombie child of keelrun.
    assert ppid_of(orphan_pid) == keelrun_pid
    os.close(hold)  # the maker and the orphan exit; the maker's zombies are orphaned
    run.wait_for_line(r"maker done")
    run.wait_for_line(r"orphan done")
    run.wait_for_line(r"maker\.1 .*exited with status 0")
    wait_until(lambda: not zombies_in(keelrun_pid), 3.0, "no zombie left under keelrun")


@needs_unshare
def test_as_pid_1_reaps_orphans_and_stops_daemons(tmp_path: Path, keelrun) -> None:
    app, report, hold = orphan_app(tmp_path)
    run = keelrun.start("start", "-t", "2", cwd=app, wrapper=UNSHARE)
    run.wait_for_line(r"web\.1 +\| ppid=1$")  # keelrun is PID 1 of the namespace
    inner = wait_ready(run)
    (kpid,) = [p for p in tree(run.pid) if "keelrun" in cmdline(p) and ppid_of(p) == run.pid]
    orphan = host_pid(kpid, inner["orphan"])
    daemon = host_pid(kpid, inner["daemon"])
    check_reaping(run, kpid, orphan, hold)

    os.kill(kpid, signal.SIGTERM)  # PID 1 ignores signals it has no handler for
    assert run.wait_exit() == 0
    assert report.read_text() == "got SIGTERM\n", "keelrun stopped the daemon itself"
    assert not alive(daemon)


def test_as_subreaper_reaps_orphans_and_stops_daemons(tmp_path: Path, keelrun) -> None:
    app, report, hold = orphan_app(tmp_path)
    run = keelrun.start("start", "-t", "2", cwd=app)
    pids = wait_ready(run)
    check_reaping(run, run.pid, pids["orphan"], hold)
    # The daemon left keelrun's session and groups, but is still its descendant.
    assert run.pid in _ancestors(pids["daemon"])
    run.send(signal.SIGTERM)
    assert run.wait_exit() == 0
    assert report.read_text() == "got SIGTERM\n"
    assert not alive(pids["daemon"])


def test_daemon_ignoring_term_is_killed_after_the_grace(tmp_path: Path, keelrun) -> None:
    report = tmp_path / "daemon.report"
    app = make_app(
        tmp_path / "app",
        f"daemon: {py('daemon.py', str(report), '--ignore-term')}\nweb: echo up; exec sleep 1000\n",
    )
    run = keelrun.start("start", "-t", "1", cwd=app)
    daemon = int(run.wait_for_match(r"daemon ready pid=(\d+)").group(1))
    run.wait_for_line(r"web\.1 +\| up")
    run.send(signal.SIGTERM)
    assert run.wait_exit() == 0
    assert wait_gone([daemon], 1.0) == []
    assert report.read_text() == "got SIGTERM\n"


def test_negative_control_a_subreaper_that_does_not_reap_keeps_zombies(
    tmp_path: Path, keelrun
) -> None:
    # The check used above does see the failure it guards against.
    trigger = tmp_path / "trigger"
    os.mkfifo(trigger)
    hold = os.open(trigger, os.O_RDWR | os.O_CLOEXEC)
    lazy = keelrun.start(
        sys.executable,
        py("zmaker.py", str(trigger), "1").split()[1],
        str(trigger),
        "1",
        cwd=tmp_path,
        program=[sys.executable, py("lazy_subreaper.py").split()[1]],
    )
    orphan = int(lazy.wait_for_match(r"orphan ready pid=(\d+)").group(1))
    lazy.wait_for_line(r"maker ready")
    assert ppid_of(orphan) == lazy.pid
    os.close(hold)
    lazy.wait_for_line(r"orphan done")
    lazy.wait_for_line(r"maker done")
    wait_until(lambda: orphan in zombies_in(lazy.pid), 3.0, "the orphan is a zombie")
    lazy.send(signal.SIGKILL)
    assert lazy.wait_exit() == -signal.SIGKILL


def _ancestors(pid: int) -> list[int]:
    out = []
    while pid > 1:
        parent = ppid_of(pid)
        if parent is None:
            break
        out.append(parent)
        pid = parent
    return out
