"""What each instance gets from `keelrun start`: PORT, PS/DYNO, PYTHONUNBUFFERED,
working directory, stdin, its own session and process group, clean signals."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_app
from support import signal_masks
from support.runner import base_env

pytestmark = pytest.mark.timeout(30)

SHOW = 'echo "PS=$PS DYNO=$DYNO PORT=$PORT"'


def shown(run) -> dict[str, str]:
    """name -> 'PS=.. DYNO=.. PORT=..' from each instance's line."""
    out = {}
    for line in run.text_lines():
        m = re.fullmatch(r"(\S+) +\| (PS=.*)", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def test_ports_follow_the_type_and_instance_scheme(tmp_path: Path, keelrun) -> None:
    app = make_app(tmp_path, f"web: {SHOW}\nworker: {SHOW}\nclock: {SHOW}\n")
    run = keelrun.start("start", "--no-timestamp", "-m", "web=2,clock=3", "-p", "6000", cwd=app)
    assert run.wait_exit() == 0
    assert shown(run) == {
        "web.1": "PS=web.1 DYNO=web.1 PORT=6000",
        "web.2": "PS=web.2 DYNO=web.2 PORT=6001",
        "worker.1": "PS=worker.1 DYNO=worker.1 PORT=6100",
        "clock.1": "PS=clock.1 DYNO=clock.1 PORT=6200",
        "clock.2": "PS=clock.2 DYNO=clock.2 PORT=6201",
        "clock.3": "PS=clock.3 DYNO=clock.3 PORT=6202",
    }


def test_release_type_counts_for_ports_and_port_comes_from_environment(
    tmp_path: Path, keelrun
) -> None:
    app = make_app(tmp_path, f"release: true\nweb: {SHOW}\nworker: {SHOW}\n")
    run = keelrun.start("start", "--no-timestamp", cwd=app, env=base_env(PORT="7000"))
    assert run.wait_exit() == 0
    assert shown(run) == {
        "web.1": "PS=web.1 DYNO=web.1 PORT=7100",
        "worker.1": "PS=worker.1 DYNO=worker.1 PORT=7200",
    }
    default = keelrun.start("start", "--no-timestamp", "web", cwd=app)
    assert default.wait_exit() == 0
    assert shown(default) == {"web.1": "PS=web.1 DYNO=web.1 PORT=5100"}


@pytest.mark.parametrize(("given", "seen"), [(None, "1"), ("0", "0"), ("", "")])
def test_pythonunbuffered_set_unless_already_set(
    tmp_path: Path, keelrun, given: str | None, seen: str
) -> None:
    app = make_app(tmp_path, 'web: echo "PYTHONUNBUFFERED=[${PYTHONUNBUFFERED-unset}]"\n')
    env = base_env() if given is None else base_env(PYTHONUNBUFFERED=given)
    run = keelrun.start("start", "--no-timestamp", cwd=app, env=env)
    assert run.wait_exit() == 0
    assert f"web.1   | PYTHONUNBUFFERED=[{seen}]" in run.text_lines()


def test_pythonunbuffered_from_env_file_counts_as_set(tmp_path: Path, keelrun) -> None:
    app = make_app(
        tmp_path, 'web: echo "PYTHONUNBUFFERED=[$PYTHONUNBUFFERED]"\n', env="PYTHONUNBUFFERED=0\n"
    )
    run = keelrun.start("start", "--no-timestamp", cwd=app)
    assert run.wait_exit() == 0
    assert "web.1   | PYTHONUNBUFFERED=[0]" in run.text_lines()


def test_cwd_is_the_app_root_and_stdin_is_dev_null(tmp_path: Path, keelrun) -> None:
    app = make_app(
        tmp_path / "app",
        'web: echo "cwd=$(pwd -P)"; echo "stdin=$(readlink /proc/self/fd/0)"; cat; echo "cat=$?"\n',
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = keelrun.start("start", "--no-timestamp", "-d", str(app), cwd=elsewhere)
    assert run.wait_exit() == 0
    lines = run.text_lines()
    assert f"web.1   | cwd={app.resolve()}" in lines
    assert "web.1   | stdin=/dev/null" in lines
    assert "web.1   | cat=0" in lines  # cat read EOF at once


def test_each_instance_has_its_own_session_and_group(tmp_path: Path, keelrun) -> None:
    ids = "exec python3 -c \"import os; print('ids', os.getpid(), os.getpgid(0), os.getsid(0))\""
    app = make_app(tmp_path, f"web: {ids}\nworker: {ids}\n")
    run = keelrun.start("start", "--no-timestamp", "-m", "web=2", cwd=app)
    assert run.wait_exit() == 0
    triples = [tuple(map(int, line.split()[-3:])) for line in run.text_lines() if "| ids " in line]
    assert len(triples) == 3
    for pid, pgid, sid in triples:
        assert pid == pgid == sid, "the instance leads its own session and group"
    assert len({pgid for _, pgid, _ in triples}) == 3
    keelrun_pgid, keelrun_sid = os.getpgid(0), os.getsid(0)  # keelrun shares ours
    assert all(pgid != keelrun_pgid and sid != keelrun_sid for _, pgid, sid in triples)


# Ignore and block signals, then exec what follows: as a careless parent would.
WRAPPER = """\
import os, signal, sys
for s in (signal.SIGUSR1, signal.SIGPIPE, signal.SIGTSTP, signal.SIGHUP, signal.SIGINT):
    signal.signal(s, signal.SIG_IGN)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGALRM, signal.SIGUSR2})
os.execvp(sys.argv[1], sys.argv[1:])
"""
STATUS_CMD = "exec grep -E '^Sig(Ign|Blk)' /proc/self/status"


def test_wrapper_really_leaks_ignored_and_blocked_signals(tmp_path: Path) -> None:
    # Control for the test below: without a reset, the exec'd program inherits both.
    out = subprocess.run(
        [sys.executable, "-c", WRAPPER, "sh", "-c", STATUS_CMD],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    masks = signal_masks(out)
    assert masks["SigIgn"] & (1 << (signal.SIGUSR1 - 1))
    assert masks["SigBlk"] & (1 << (signal.SIGTERM - 1))


def test_signal_dispositions_and_mask_are_reset_in_children(tmp_path: Path, keelrun) -> None:
    app = make_app(tmp_path, f"web: {STATUS_CMD}\n")
    run = keelrun.start("start", "--no-timestamp", cwd=app, wrapper=[sys.executable, "-c", WRAPPER])
    assert run.wait_exit() == 0
    masks = child_masks(run)
    assert masks["SigBlk"] == 0
    # glibc's own thread signals 32 and 33 are left aside here (see the next test).
    assert masks["SigIgn"] & ~GLIBC_INTERNAL == 0, hex(masks["SigIgn"])


GLIBC_INTERNAL = (1 << 31) | (1 << 32)  # signals 32 (SIGCANCEL) and 33 (SIGSETXID)


def child_masks(run) -> dict[str, int]:
    text = "\n".join(line.split("| ", 1)[1] for line in run.text_lines() if "| Sig" in line)
    return signal_masks(text)


def test_no_signal_at_all_is_ignored_in_children(tmp_path: Path, keelrun) -> None:
    # A child of a plain fork+exec (e.g. subprocess) starts with SigIgn 0; so must ours.
    app = make_app(tmp_path, f"web: {STATUS_CMD}\n")
    run = keelrun.start("start", "--no-timestamp", cwd=app)
    assert run.wait_exit() == 0
    assert child_masks(run) == {"SigIgn": 0, "SigBlk": 0}
