"""`keelrun logs` against a real `keelrun start`: history, filters, formats, follow."""

from __future__ import annotations

import itertools
import json
import re
import signal
import threading

import pytest
from support.control import TRAPPING, Keelrun, Runner, lines_of, wait_in

pytestmark = pytest.mark.timeout(60)

# burst writes 1500 numbered lines, then waits to be stopped.
BURST = "seq -f 'line %g' 1 1500; exec sleep 600"
PROCFILE = f"burst: {BURST}\nchat: {TRAPPING}\n"
TIME = r"\d\d:\d\d:\d\d"


def _start(runner: Runner) -> Keelrun:
    k = runner.start(runner.app(PROCFILE), "-m", "chat=2")
    k.wait_for_line(r"burst\.1\s+\| line 1500$")
    k.wait_ready("chat.1", "chat.2")
    return k


def _logs(k: Keelrun, *args: str) -> list[str]:
    r = k.client("logs", *args)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def test_logs_history_ring_filters_and_formats(runner: Runner) -> None:
    k = _start(runner)

    # -n 5: the last five lines, prefixed like keelrun start's own output.
    last5 = _logs(k, "-n", "5", "burst")
    assert len(last5) == 5
    for n, line in zip(range(1496, 1501), last5, strict=True):
        assert re.fullmatch(rf"{TIME} burst\.1\s+\| line {n}", line), line

    # The ring keeps at least 1000 lines per instance: exactly 501..1500.
    ring = _logs(k, "-n", "1000", "--no-prefix", "burst.1")
    assert ring == [f"line {n}" for n in range(501, 1501)]

    # NAME by type: both chat instances and nothing else; by instance: that one.
    by_type = _logs(k, "--no-prefix", "chat")
    assert sorted(by_type) == ["chat.1 up port=5100", "chat.2 up port=5101"]
    by_instance = _logs(k, "--no-timestamp", "chat.2")
    assert len(by_instance) == 1
    assert re.fullmatch(r"chat\.2\s+\| chat\.2 up port=5101", by_instance[0])
    mixed = _logs(k, "--no-prefix", "-n", "2000", "chat.1", "burst")
    assert "chat.1 up port=5100" in mixed and "line 1500" in mixed
    assert not any(x.startswith("chat.2") for x in mixed)

    # JSON, one object a line, in the format of `keelrun start --log-format json`.
    records = [json.loads(line) for line in _logs(k, "-n", "3", "--log-format", "json", "burst")]
    assert [r["msg"] for r in records] == ["line 1498", "line 1499", "line 1500"]
    for r in records:
        assert set(r) == {"ts", "proc", "stream", "msg"}
        assert r["proc"] == "burst.1" and r["stream"] == "stdout"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["ts"]), r["ts"]

    # No NAME: every instance, and -n 0 gives nothing.
    everything = _logs(k, "-n", "2000", "--no-prefix")
    burst = [x for x in everything if x.startswith("line ")]
    first = int(burst[0].split()[1])
    assert first <= 501 and burst == [f"line {n}" for n in range(first, 1501)]
    rest = sorted(set(everything) - set(burst))
    assert [x for x in rest if not x.startswith("started ")] == [
        "chat.1 up port=5100",
        "chat.2 up port=5101",
    ]
    # keelrun's own events are part of the history, in time order.
    assert [x.split(" (")[0] for x in rest if x.startswith("started ")] == [
        "started burst.1",
        "started chat.1",
        "started chat.2",
    ]
    assert _logs(k, "-n", "0") == []


def test_logs_show_keelruns_own_events(runner: Runner) -> None:
    """A crash loop is visible from the second terminal: exits, back-off, giving up."""
    crash = "echo crashing; exit 3"
    k = runner.start(runner.app(f"web: {TRAPPING}\ncrash: {crash}\n"), "--max-restarts", "1")
    k.wait_ready("web.1")
    follower = runner.popen(k, "logs", "-f", "-n", "100", "--no-timestamp", "keelrun")
    lines: list[str] = []
    cond = threading.Condition()
    lines_of(follower.stdout, lines, cond)
    k.wait_for_line(r"crash\.1 failed 2 starts in a row: giving up", 15)
    assert k.wait_exit(15) == 3
    assert follower.wait(10) == 0
    # Only keelrun's events (no app lines): the history, then live ones until the end.
    assert lines and all(re.match(r"keelrun\s+\| ", x) for x in lines), lines
    text = "\n".join(lines)
    for event in ("exited with status 3", "restarting crash.1 in 1s", "giving up", "stopping"):
        assert event in text, (event, text)


def test_logs_history_of_events_with_levels_in_json(runner: Runner) -> None:
    k = runner.start(
        runner.app(f"web: {TRAPPING}\nbrief: echo once; exit 4\n"), "--restart", "never"
    )
    k.wait_ready("web.1")
    k.wait_for_line(r"brief\.1 \(pid \d+\) exited with status 4")
    events = [json.loads(x) for x in _logs(k, "--log-format", "json", "keelrun")]
    assert {e["proc"] for e in events} == {"keelrun"}
    by_event = {e["event"]: e for e in events}
    assert by_event["process_started"]["level"] == "info"
    exited = by_event["process_exited"]
    assert exited["level"] == "warning" and exited["status"] == 4 and exited["target"] == "brief.1"
    for e in events:
        assert list(e)[:5] == ["ts", "proc", "level", "event", "msg"], e
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["ts"]), e["ts"]
    # `keelrun logs keelrun` is not an unknown NAME; text mode gives the sentences.
    text = _logs(k, "--no-timestamp", "keelrun")
    assert any(
        re.fullmatch(r"keelrun\s+\| brief\.1 \(pid \d+\) exited with status 4", x) for x in text
    )


def test_logs_bad_count_is_an_input_error(runner: Runner) -> None:
    k = _start(runner)
    for bad in ("-1", "x", "1.5"):
        r = k.client("logs", "-n", bad)
        assert r.returncode == 2 and "Traceback" not in r.stderr, (bad, r.stderr)
    r = k.client("logs", "--log-format", "yaml")
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_logs_follow_prints_new_lines_until_interrupted(runner: Runner) -> None:
    k = _start(runner)
    follower = runner.popen(k, "logs", "-f", "-n", "1", "--no-timestamp", "chat.1")
    lines: list[str] = []
    cond = threading.Condition()
    lines_of(follower.stdout, lines, cond)
    # The history line proves the follower is subscribed before we make new lines.
    wait_in(lines, cond, r"^chat\.1\s+\| chat\.1 up port=5100$", 10)

    assert k.client("signal", "USR1", "chat").returncode == 0
    wait_in(lines, cond, r"^chat\.1\s+\| chat\.1 got USR1$", 10)
    assert k.client("signal", "USR1", "chat.1").returncode == 0
    k.wait_for_line(r"chat\.2\s+\| chat\.2 got USR1$")
    with cond:
        cond.wait_for(lambda: sum("got USR1" in x for x in lines) == 2, 10)
        assert sum("got USR1" in x for x in lines) == 2
        assert not any("chat.2" in x or "burst" in x for x in lines), lines

    follower.send_signal(signal.SIGINT)
    assert follower.wait(10) == 0
    # keelrun dropped the follower and carries on.
    assert k.ps()["chat.1"]["state"] == "running"
    assert _logs(k, "-n", "1", "--no-prefix", "chat.1") == ["chat.1 got USR1"]


def test_logs_follow_ends_when_keelrun_stops(runner: Runner) -> None:
    k = _start(runner)
    follower = runner.popen(k, "logs", "-f", "-n", "1", "--no-prefix", "burst")
    lines: list[str] = []
    cond = threading.Condition()
    lines_of(follower.stdout, lines, cond)
    wait_in(lines, cond, r"^line 1500$", 10)
    assert k.client("stop").returncode == 0
    assert k.wait_exit(15) == 0
    assert follower.wait(10) == 0


def test_logs_follow_by_type_includes_instances_scaled_up_later(runner: Runner) -> None:
    k = _start(runner)
    follower = runner.popen(k, "logs", "-f", "-n", "1", "--no-prefix", "chat")
    lines: list[str] = []
    cond = threading.Condition()
    lines_of(follower.stdout, lines, cond)
    wait_in(lines, cond, r"^chat\.2 up port=5101$", 10)  # subscribed
    assert k.client("scale", "chat=3").returncode == 0
    wait_in(lines, cond, r"^chat\.3 up port=5102$", 10)
    follower.send_signal(signal.SIGINT)
    assert follower.wait(10) == 0
    assert not any(x.startswith("line ") for x in lines)


def test_logs_colours_each_type_as_start_does(runner: Runner) -> None:
    # Types named in another order than the Procfile's, and one with no instance yet:
    # colours still follow the Procfile, in start's output and in logs alike.
    procfile = f"web: {TRAPPING}\nidle: {TRAPPING}\nworker: {TRAPPING}\n"
    k = runner.start(
        runner.app(procfile), "--color", "--no-timestamp", "-m", "idle=0", "worker", wait=None
    )
    k.wait_for_line(r"worker\.1 up port=")
    assert k.client("scale", "web=1").returncode == 0
    k.wait_for_line(r"web\.1 up port=")
    live = {
        x
        for x in k.output().splitlines()
        if x.endswith(("web.1 up port=5000", "worker.1 up port=5200"))
    }
    history = set(_logs(k, "--color", "--no-timestamp", "web", "worker"))
    assert len(live) == 2 and live == history, (live, history)
    codes = {re.match(r"\x1b\[(\d+)m(\w+)", x).groups()[::-1] for x in history}  # type: ignore[union-attr]
    assert codes == {("web", "36"), ("worker", "32")}  # 1st and 3rd colours: Procfile order


def test_a_follower_leaving_costs_the_others_no_line(runner: Runner) -> None:
    ticker = "i=0; while :; do echo $i; i=$((i+1)); sleep 0.01; done"
    k = runner.start(runner.app(f"ticker: {ticker}\n"))
    followers = []
    for _ in range(2):  # the first to subscribe is the first written to
        p = runner.popen(k, "logs", "-f", "-n", "0", "--no-prefix", "ticker.1")
        lines: list[str] = []
        cond = threading.Condition()
        lines_of(p.stdout, lines, cond)
        wait_in(lines, cond, r"^\d+$", 10)  # subscribed
        followers.append((p, lines, cond))
    (first, _, _), (second, lines, cond) = followers
    first.kill()  # keelrun finds out on a write to it, in the middle of a block's delivery
    first.wait(10)
    with cond:
        start = len(lines)
        assert cond.wait_for(lambda: len(lines) > start + 100, 20), "the second follower stalled"
        numbers = [int(x) for x in lines]
    gaps = [(a, b) for a, b in itertools.pairwise(numbers) if b != a + 1]
    assert gaps == [], gaps
    second.send_signal(signal.SIGINT)
    assert second.wait(10) == 0
