"""`keelrun stop`, `restart` and `signal` against a real `keelrun start`."""

from __future__ import annotations

import os
import re
import signal

import pytest
from support.control import TRAPPING, Keelrun, Runner
from support.procs import alive

pytestmark = pytest.mark.timeout(60)

PROCFILE = f"web: {TRAPPING}\nworker: {TRAPPING}\n"


def _start(runner: Runner, *args: str) -> Keelrun:
    k = runner.start(runner.app(PROCFILE), *args)
    return k


def _got(k: Keelrun, name: str, what: str, since: int) -> None:
    k.wait_for_line(rf"{re.escape(name)}\s+\| {re.escape(name)} {what}$", 10, since)


def _ended(k: Keelrun, name: str, since: int) -> None:
    k.wait_for_line(rf"keelrun\s+\| {re.escape(name)} \(pid \d+\) ", 10, since)


def _input_error(r) -> str:  # type: ignore[no-untyped-def]
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("keelrun: "), r.stderr
    return lines[0]


def test_stop_name_keeps_it_stopped_and_restart_starts_it(runner: Runner) -> None:
    k = _start(runner, "-m", "worker=2")
    k.wait_ready("web.1", "worker.1", "worker.2")
    before = k.ps()

    mark = k.mark()
    r = k.client("stop", "worker.2")
    assert r.returncode == 0, r.stderr
    assert "worker.2" in r.stdout
    _got(k, "worker.2", "got TERM", mark)
    _ended(k, "worker.2", mark)
    rows = k.ps()
    assert rows["worker.2"]["state"] == "stopped" and rows["worker.2"]["pid"] is None
    assert not alive(before["worker.2"]["pid"])
    assert rows["worker.1"]["pid"] == before["worker.1"]["pid"]

    # Something else happens (a restart of web); worker.2 is still stopped.
    mark = k.mark()
    assert k.client("restart", "web").returncode == 0
    _ended(k, "web.1", mark)
    _got(k, "web.1", "up port=5000", mark)
    rows = k.ps()
    assert rows["worker.2"]["state"] == "stopped" and rows["worker.2"]["pid"] is None

    # restart of a stopped instance starts it.
    mark = k.mark()
    r = k.client("restart", "worker.2")
    assert r.returncode == 0, r.stderr
    _got(k, "worker.2", "up port=5101", mark)
    row = k.ps()["worker.2"]
    assert row["state"] == "running" and alive(row["pid"])
    assert row["pid"] != before["worker.2"]["pid"]
    assert row["restarts"] == before["worker.2"]["restarts"] + 1


def test_stop_a_type_stops_all_its_instances(runner: Runner) -> None:
    k = _start(runner, "-m", "worker=2")
    k.wait_ready("web.1", "worker.1", "worker.2")
    mark = k.mark()
    assert k.client("stop", "worker").returncode == 0
    for name in ("worker.1", "worker.2"):
        _ended(k, name, mark)
    rows = k.ps()
    assert [rows[n]["state"] for n in ("web.1", "worker.1", "worker.2")] == [
        "running",
        "stopped",
        "stopped",
    ]


def test_restart_name_gives_a_new_pid_and_counts(runner: Runner) -> None:
    k = _start(runner)
    k.wait_ready("web.1", "worker.1")
    before = k.ps()
    mark = k.mark()
    r = k.client("restart", "web.1")
    assert r.returncode == 0, r.stderr
    assert "web.1" in r.stdout
    _got(k, "web.1", "got TERM", mark)  # gracefully: the trap ran
    _got(k, "web.1", "up port=5000", mark)
    after = k.ps()
    assert after["web.1"]["pid"] != before["web.1"]["pid"]
    assert alive(after["web.1"]["pid"]) and not alive(before["web.1"]["pid"])
    assert after["web.1"]["restarts"] == 1
    assert after["worker.1"]["pid"] == before["worker.1"]["pid"]
    assert after["worker.1"]["restarts"] == 0


def test_restart_without_name_restarts_every_instance(runner: Runner) -> None:
    k = _start(runner, "-m", "worker=2")
    k.wait_ready("web.1", "worker.1", "worker.2")
    before = k.ps()
    mark = k.mark()
    assert k.client("restart").returncode == 0
    for name in before:
        _ended(k, name, mark)
        k.wait_for_line(rf"{re.escape(name)}\s+\| {re.escape(name)} up ", 10, mark)
    after = k.ps()
    for name, row in before.items():
        assert after[name]["pid"] != row["pid"] and alive(after[name]["pid"]), name
        assert after[name]["restarts"] == 1


def test_signal_by_name_and_number_reaches_the_group(runner: Runner) -> None:
    k = _start(runner, "-m", "worker=2")
    k.wait_ready("web.1", "worker.1", "worker.2")
    before = k.ps()

    mark = k.mark()
    r = k.client("signal", "USR1", "web")
    assert r.returncode == 0, r.stderr
    _got(k, "web.1", "got USR1", mark)

    mark = k.mark()
    r = k.client("signal", str(int(signal.SIGUSR1)), "worker.2")
    assert r.returncode == 0, r.stderr
    _got(k, "worker.2", "got USR1", mark)

    mark = k.mark()
    assert k.client("signal", "SIGUSR1", "worker").returncode == 0
    _got(k, "worker.1", "got USR1", mark)
    _got(k, "worker.2", "got USR1", mark)

    # Trapped: nobody was stopped or restarted.
    assert {n: r["pid"] for n, r in k.ps().items()} == {n: r["pid"] for n, r in before.items()}


def test_unknown_names_and_signals_are_input_errors(runner: Runner) -> None:
    k = _start(runner)
    k.wait_ready("web.1", "worker.1")
    before = k.ps()
    for args in (
        ("stop", "nosuch"),
        ("stop", "web.7"),
        ("restart", "nosuch"),
        ("signal", "USR1", "nosuch"),
        ("signal", "BOGUS", "web"),
        ("signal", "999", "web"),
        ("logs", "nosuch"),
    ):
        line = _input_error(k.client(*args))
        assert re.search(r"nosuch|web\.7|BOGUS|999", line), (args, line)
    # A mix of a known and an unknown name does nothing at all.
    _input_error(k.client("stop", "web", "nosuch"))
    after = k.ps()
    assert {n: (r["pid"], r["state"]) for n, r in after.items()} == {
        n: (r["pid"], r["state"]) for n, r in before.items()
    }


def test_signal_with_a_unicode_digit_is_an_input_error(runner: Runner) -> None:
    k = _start(runner)
    k.wait_ready("web.1")
    _input_error(k.client("signal", "²", "web"))


def test_stop_without_name_stops_keelrun(runner: Runner) -> None:
    k = _start(runner, "-m", "worker=2")
    k.wait_ready("web.1", "worker.1", "worker.2")
    sock = k.socket_path()
    assert os.path.exists(sock)
    pids = [r["pid"] for r in k.ps().values()]
    r = k.client("stop")
    assert r.returncode == 0, r.stderr
    assert k.wait_exit(15) == 0
    for name in ("web.1", "worker.1", "worker.2"):
        k.wait_for_line(rf"{re.escape(name)}\s+\| {re.escape(name)} got TERM$", 1)
    assert not os.path.exists(sock)
    assert not any(alive(p) for p in pids)
    # And afterwards a client says nothing runs.
    r = k.client("ps")
    assert r.returncode == 1 and "no keelrun is running" in r.stderr


# Ignores SIGTERM, so that keelrun's stop lasts its whole grace.
STUBBORN = 'trap \'echo "$PS ignores TERM"\' TERM; echo "$PS up port=$PORT"; ' + (
    "while :; do sleep 30 & wait $!; done"
)


def test_scale_while_keelrun_stops_starts_nothing(runner: Runner) -> None:
    k = runner.start(runner.app(f"worker: {STUBBORN}\n"), "-t", "2")
    k.wait_ready("worker.1")
    mark = k.mark()
    assert k.client("stop").returncode == 0
    k.wait_for_line(r"worker\.1\s+\| worker\.1 ignores TERM$", 10, mark)
    r = k.client("scale", "worker=3")
    restart = k.client("restart", "worker.1")
    assert restart.returncode == 1 and "stopping" in restart.stderr
    assert k.wait_exit(15) == 0
    # Like restart, scale is refused once keelrun is stopping, and starts nothing.
    assert r.returncode == 1 and "stopping" in r.stderr, (r.stdout, r.stderr)
    assert not any(re.search(r"started worker\.[23]", x) for x in k.lines[mark:])
