"""The textual application of `keelrun top` (README "`keelrun top`").

Everything runs on textual's event loop: `ps` once a second, the follow
stream of the selected instance, and the requests behind the keys are
coroutines (`conn.py`), so the view never waits on the socket.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Input, Log, Static

from keelrun.control.client import PS_TABLE_ARGS, Client
from keelrun.top.conn import Connection
from keelrun.top.data import COLUMNS, Row, cells, render_line, toggle, visible

REFRESH = 1.0  # seconds between two `ps`
HISTORY = 200  # lines shown when an instance is selected
MAX_LINES = 2000


class TopApp(App[int]):
    TITLE = "keelrun top"
    ENABLE_COMMAND_PALETTE = False
    CSS = """
    #status { height: 1; padding: 0 1; background: $panel; }
    #status.gone { background: $error; color: $text; }
    #ps { height: auto; max-height: 60%; }
    #lines-title { height: 1; padding: 0 1; background: $panel; }
    #lines { height: 1fr; }
    #filter { display: none; }
    #filter.open { display: block; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("r", "restart", "Restart"),
        Binding("s", "stop_start", "Stop/start"),
        Binding("k", "kill", "Kill"),
        Binding("a", "attach", "Attach"),
        Binding("slash", "open_filter", "Filter"),
        Binding("escape", "close_filter", "Close filter", show=False),
    ]

    def __init__(self, client: Client, info: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.conn = Connection(client)
        # Where keelrun answered the ping (the default socket may have moved).
        self.socket = str(client.address or client.path)
        self.info = info or {}
        self.rows: list[Row] = []  # the last `ps`, all of it
        self.shown: list[str] = []  # names in the table, in order
        self.selected: str | None = None
        self.following: str | None = None  # whose stream is open
        self.filter = ""
        self.gone: str | None = None  # why keelrun cannot be reached, while it cannot
        self.message = ""
        self.refreshes = 0  # completed `ps` rounds (tests wait on it)
        self._ps_busy = False

    # -- layout -------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(id="status", markup=False)
        yield Input(placeholder="filter by name (Enter or Esc closes)", id="filter")
        table: DataTable[str] = DataTable(id="ps", cursor_type="row", zebra_stripes=True)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        yield table
        yield Static("no instance selected", id="lines-title", markup=False)
        yield Log(id="lines", max_lines=MAX_LINES, highlight=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()
        self._status()
        self.refresh_ps()
        self.set_interval(REFRESH, self.refresh_ps)

    # -- ps -----------------------------------------------------------------
    def refresh_ps(self) -> None:
        if not self._ps_busy:  # a slow answer is waited for, never stacked up
            self._ps_busy = True
            self.run_worker(self._fetch_ps(), group="ps")

    async def _fetch_ps(self) -> None:
        try:
            rows = await self.conn.call("ps", PS_TABLE_ARGS)
        except Exception as e:  # keelrun gone, refused, or answering nonsense
            self.gone = str(e) or type(e).__name__
            rows = None
        finally:
            self._ps_busy = False
        if rows is not None:
            if self.gone is not None:
                self.gone = None
                self.message = "keelrun is back"
            self.rows = [r for r in rows if isinstance(r, dict) and "name" in r]
            self._show_rows()
        self.refreshes += 1
        self._status()

    def _show_rows(self) -> None:
        table: DataTable[str] = self.query_one(DataTable)
        rows = visible(self.rows, self.filter)
        names = [r["name"] for r in rows]
        if names != self.shown:
            keep = self.selected
            table.clear()
            for r in rows:
                table.add_row(*cells(r), key=r["name"])
            self.shown = names
            if keep in names:
                table.move_cursor(row=names.index(keep), animate=False)
        else:
            for r in rows:
                for (key, _), value in zip(COLUMNS, cells(r), strict=True):
                    if table.get_cell(r["name"], key) != value:
                        table.update_cell(r["name"], key, value, update_width=True)
        self._select_cursor()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        # The event may be stale after a rebuild: the cursor itself is the truth.
        self._select_cursor()

    def _select_cursor(self) -> None:
        table: DataTable[str] = self.query_one(DataTable)
        row = table.cursor_row
        name = self.shown[row] if self.shown and 0 <= row < len(self.shown) else None
        self.selected = name
        if self.following != name and self.gone is None:
            self._follow(name)

    def selected_row(self) -> Row | None:
        return next((r for r in self.rows if r["name"] == self.selected), None)

    # -- the selected instance's lines ----------------------------------------
    def _follow(self, name: str | None) -> None:
        self.following = name
        self.query_one(Log).clear()
        self.query_one("#lines-title", Static).update(
            f"{name}: latest lines, following" if name else "no instance selected"
        )
        if name is None:
            self.workers.cancel_group(self, "follow")
        else:
            self.run_worker(self._stream(name), group="follow", exclusive=True)

    async def _stream(self, name: str) -> None:
        log = self.query_one(Log)
        why = "keelrun closed the stream"
        try:
            async for rec in self.conn.follow(name, HISTORY):
                log.write_line(render_line(rec))
        except Exception as e:
            why = str(e) or type(e).__name__
        log.write_line(f"-- {why}")
        if self.following == name:
            self.following = None  # followed again once `ps` answers

    # -- keys -----------------------------------------------------------------
    def action_restart(self) -> None:
        if self.selected is not None:
            self._request("restart", {"names": [self.selected]})

    def action_stop_start(self) -> None:
        row = self.selected_row()
        if row is not None:
            self._request(*toggle(row))

    def action_kill(self) -> None:
        if self.selected is not None:
            self._request("signal", {"signal": "KILL", "names": [self.selected]})

    def action_attach(self) -> None:
        """`keelrun attach` on the selected instance, with the terminal handed over to it
        (textual's suspend) until it ends; its last word shows in the status line."""
        import subprocess
        import sys

        name = self.selected
        if name is None:
            return
        argv = [sys.executable, "-m", "keelrun", "attach", name, "--socket", self.socket]
        with self.suspend():
            # The client relays stdin and stdout; its own notices come back here.
            done = subprocess.run(argv, stderr=subprocess.PIPE, text=True, errors="replace")
        words = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        self.message = words[-1].removeprefix("keelrun: ") if words else f"{name}: attach ended"
        self._status()
        self.refresh_ps()

    def _request(self, cmd: str, args: dict[str, Any]) -> None:
        self.run_worker(self._send(cmd, args), group="requests")

    async def _send(self, cmd: str, args: dict[str, Any]) -> None:
        try:
            result = await self.conn.call(cmd, args)
        except Exception as e:
            self.message = f"{cmd} failed: {e}"
        else:
            done = result.get("restarting") or result.get("stopping") or result.get("sent")
            verb = {"restart": "restarting", "stop": "stopping", "signal": "sent KILL to"}[cmd]
            self.message = f"{verb} {', '.join(done or []) or 'nothing'}"
        self._status()
        self.refresh_ps()

    def action_open_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("open")
        box.focus()

    def action_close_filter(self) -> None:
        box = self.query_one("#filter", Input)
        if box.has_class("open"):
            box.remove_class("open")
            self.query_one(DataTable).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.filter = event.value
        self._show_rows()
        self._status()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_close_filter()

    # -- status line ------------------------------------------------------------
    def _status(self) -> None:
        status = self.query_one("#status", Static)
        if self.gone is not None:
            status.add_class("gone")
            status.update(f"keelrun is not running: {self.gone} (q quits)")
            return
        status.remove_class("gone")
        pid = self.info.get("pid")
        count = f"{len(self.shown)} of {len(self.rows)}" if self.filter else f"{len(self.rows)}"
        parts = [f"keelrun{f' pid {pid}' if pid else ''}", f"{count} instances"]
        if self.filter:
            parts.append(f"filter: {self.filter}")
        if self.message:
            parts.append(self.message)
        parts.append(self.socket)  # last: long paths are what gets cut off
        status.update("  ·  ".join(parts))
