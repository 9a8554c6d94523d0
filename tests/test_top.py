"""`keelrun top` driven headless by textual's own harness (App.run_test, Pilot)
against a real running keelrun; what it shows is read off the rendered screen,
what its keys do is checked through keelrun's own `ps` and output."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from support.control import TRAPPING, Keelrun, Runner
from support.procs import alive

from keelrun.control.client import Client

pytest.importorskip("textual", reason="keelrun top needs textual (a runtime dependency)")

from textual.pilot import Pilot
from textual.widgets import Log

from keelrun.top.app import TopApp

PROCFILE = f"web: {TRAPPING}\nworker: {TRAPPING}\n"

Scenario = Callable[[TopApp, Pilot[int]], Awaitable[None]]


def run_top(k: Keelrun, scenario: Scenario, size: tuple[int, int] = (110, 30)) -> TopApp:
    """Run top against ``k`` headless, play ``scenario``, return the app once it ended."""
    client = Client(str(k.app), k.socket_flag)
    app = TopApp(client, client.call("ping", {}))

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await scenario(app, pilot)

    asyncio.run(main())
    return app


def screen(app: TopApp) -> str:
    """The text of the screen as a terminal would show it."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def table_lines(app: TopApp) -> dict[str, list[str]]:
    """Rows of the instance table on screen, by name: the cells as words."""
    rows = {}
    for line in screen(app).splitlines():
        words = line.split()
        if words and re.fullmatch(r"(web|worker)\.\d+", words[0]):
            rows.setdefault(words[0], words)
    return rows


def pane(app: TopApp) -> list[str]:
    return list(app.query_one(Log).lines)


async def until(
    pilot: Pilot[int], predicate: Callable[[], Any], what: str, timeout: float = 10.0
) -> Any:
    """Let the app run until ``predicate`` holds (checked every 50 ms), at most ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await pilot.pause(0.05)


async def line_in_output(k: Keelrun, pattern: str, since: int) -> None:
    """Wait for keelrun's own output without blocking textual's loop."""
    await asyncio.to_thread(k.wait_for_line, pattern, 10.0, since)


def start(runner: Runner, *args: str) -> Keelrun:
    k = runner.start(runner.app(PROCFILE), "-m", "worker=2", *args)
    k.wait_ready("web.1", "worker.1", "worker.2")
    return k


def test_table_selection_and_lines_follow(runner: Runner) -> None:
    k = start(runner)
    before = k.ps()

    async def scenario(app: TopApp, pilot: Pilot[int]) -> None:
        rows = await until(pilot, lambda: len(table_lines(app)) == 3 and table_lines(app), "3 rows")
        for name, row in before.items():
            words = rows[name]
            assert words[1] == "running" and words[2] == str(row["pid"])
            assert words[4] == "0" and words[-1] == str(row["port"])
            assert re.fullmatch(r"\d+s", words[3]) and re.fullmatch(r"[\d.]+[BKMG]", words[6])
        assert f"keelrun pid {k.proc.pid}  ·  " in screen(app).splitlines()[0]
        assert "3 instances" in screen(app).splitlines()[0]

        # The first row is selected: its history shows, then new lines as they come.
        await until(pilot, lambda: any("web.1 up port=5000" in x for x in pane(app)), "web.1")
        assert "web.1: latest lines, following" in screen(app)
        await pilot.press("down")
        assert app.selected == "worker.1"
        await until(pilot, lambda: any("worker.1 up port=5100" in x for x in pane(app)), "w1")
        assert not any("web.1" in x for x in pane(app))
        mark = k.mark()
        k.request("signal", {"signal": "USR1", "names": ["worker.1", "web.1"]})
        await until(pilot, lambda: any("worker.1 got USR1" in x for x in pane(app)), "USR1")
        await line_in_output(k, r"web\.1 got USR1$", mark)
        await pilot.pause(0.2)  # time for a line from a stream left open to show
        assert not any("web.1" in x for x in pane(app)), "the old stream still delivers"
        await pilot.press("down", "up", "up")
        assert app.selected == "web.1"
        await until(pilot, lambda: any("web.1 got USR1" in x for x in pane(app)), "web.1 USR1")
        assert "web.1 got USR1" in screen(app)

        # The table is refreshed every second: uptimes move on.
        loop = asyncio.get_running_loop()
        seen, began = app.refreshes, loop.time()
        uptime = int(table_lines(app)["web.1"][3].rstrip("s"))
        await until(pilot, lambda: app.refreshes >= seen + 2, "two refreshes", timeout=4)
        assert loop.time() - began >= 0.9  # not more often than once a second
        assert int(table_lines(app)["web.1"][3].rstrip("s")) > uptime
        await pilot.press("q")

    app = run_top(k, scenario)
    assert app.return_code == 0
    # Opening and quitting top disturbed nothing.
    after = k.ps()
    assert {n: (r["pid"], r["restarts"]) for n, r in after.items()} == {
        n: (r["pid"], r["restarts"]) for n, r in before.items()
    }
    assert k.proc.poll() is None and "error" not in k.output().lower()


def test_keys_restart_stop_start_and_kill(runner: Runner) -> None:
    k = start(runner)
    before = k.ps()

    async def scenario(app: TopApp, pilot: Pilot[int]) -> None:
        await until(pilot, lambda: len(table_lines(app)) == 3, "3 rows")
        await pilot.press("down")  # worker.1
        assert app.selected == "worker.1"

        mark = k.mark()
        await pilot.press("r")
        await line_in_output(k, r"worker\.1 got TERM$", mark)  # gracefully
        await line_in_output(k, r"worker\.1 up port=5100$", mark)
        row = k.ps()["worker.1"]
        assert row["pid"] != before["worker.1"]["pid"] and alive(row["pid"])
        await until(pilot, lambda: table_lines(app)["worker.1"][2] == str(row["pid"]), "new pid")
        assert "restarting worker.1" in screen(app)

        mark = k.mark()
        await pilot.press("s")
        await line_in_output(k, r"worker\.1 got TERM$", mark)
        await until(pilot, lambda: table_lines(app)["worker.1"][1] == "stopped", "stopped")
        assert k.ps()["worker.1"]["state"] == "stopped"
        assert not alive(row["pid"])

        mark = k.mark()
        await pilot.press("s")  # a stopped instance starts again
        await line_in_output(k, r"worker\.1 up port=5100$", mark)
        await until(pilot, lambda: table_lines(app)["worker.1"][1] == "running", "running")
        started = k.ps()["worker.1"]
        assert started["state"] == "running" and alive(started["pid"])

        mark = k.mark()
        await pilot.press("k")
        await line_in_output(k, r"worker\.1 \(pid \d+\) killed by SIGKILL", mark)
        assert "sent KILL to worker.1" in screen(app)
        await line_in_output(k, r"worker\.1 up port=5100$", mark)  # on-failure restarts it
        assert not alive(started["pid"])
        # The others were left alone throughout.
        rows = k.ps()
        for name in ("web.1", "worker.2"):
            assert rows[name]["pid"] == before[name]["pid"]
        await pilot.press("q")

    run_top(k, scenario)


def test_filter_by_name(runner: Runner) -> None:
    k = start(runner)

    async def scenario(app: TopApp, pilot: Pilot[int]) -> None:
        await until(pilot, lambda: len(table_lines(app)) == 3, "3 rows")
        await pilot.press("slash", *"work")
        assert sorted(table_lines(app)) == ["worker.1", "worker.2"]
        assert app.selected == "worker.1"
        assert "2 of 3 instances" in screen(app) and "filter: work" in screen(app)
        # Keys typed into the filter are not commands; Enter closes it, the filter stays.
        await pilot.press("enter")
        await pilot.press("down")
        assert app.selected == "worker.2"
        await until(pilot, lambda: any("worker.2 up" in x for x in pane(app)), "worker.2")
        # The filter survives refreshes.
        seen = app.refreshes
        await until(pilot, lambda: app.refreshes > seen, "a refresh")
        assert sorted(table_lines(app)) == ["worker.1", "worker.2"]
        # A filter nothing matches: no row, nothing selected.
        await pilot.press("slash", *".2x")
        assert table_lines(app) == {} and app.selected is None
        assert "no instance selected" in screen(app)
        await pilot.press(*["backspace"] * 7, "escape")
        assert len(table_lines(app)) == 3
        await pilot.press("q")

    app = run_top(k, scenario)
    assert app.return_code == 0
    assert all(r["state"] == "running" for r in k.ps().values())  # `s` and `k` were typed


def test_keelrun_going_away_is_shown_and_q_exits_0(runner: Runner) -> None:
    k = start(runner)

    async def scenario(app: TopApp, pilot: Pilot[int]) -> None:
        await until(pilot, lambda: len(table_lines(app)) == 3, "3 rows")
        await until(pilot, lambda: any("web.1 up" in x for x in pane(app)), "web.1 lines")
        assert await asyncio.to_thread(k.terminate) == 0
        await until(pilot, lambda: "keelrun is not running" in screen(app), "the notice")
        assert "no keelrun is running on" in screen(app).splitlines()[0]
        await until(pilot, lambda: pane(app)[-1].startswith("-- "), "the end of the stream")
        # Keys still do no harm, and top keeps going until q.
        await pilot.press("r", "down")
        seen = app.refreshes
        await until(pilot, lambda: app.refreshes > seen, "another try")
        assert "keelrun is not running" in screen(app)
        await pilot.press("q")

    app = run_top(k, scenario)
    assert app.return_code == 0


def test_a_cell_that_grows_is_shown_whole(runner: Runner) -> None:
    """`running` then `stopping` (a longer word in a column drawn narrower): never cut."""
    stubborn = "trap '' TERM; echo \"$PS up port=$PORT\"; while :; do sleep 30 & wait $!; done"
    k = runner.start(runner.app(f"web: {TRAPPING}\nworker: {stubborn}\n"), "-t", "5")
    k.wait_ready("web.1", "worker.1")

    async def scenario(app: TopApp, pilot: Pilot[int]) -> None:
        await until(pilot, lambda: len(table_lines(app)) == 2, "2 rows")
        assert table_lines(app)["worker.1"][1] == "running"
        k.request("stop", {"names": ["worker.1"]})
        await until(pilot, lambda: table_lines(app)["worker.1"][1] != "running", "a new state")
        assert table_lines(app)["worker.1"][1] == "stopping", screen(app)
        await pilot.press("q")

    assert run_top(k, scenario).return_code == 0
