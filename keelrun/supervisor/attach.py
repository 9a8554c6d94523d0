"""The server side of one `keelrun attach`: a client joined to a tty instance's pty.

The protocol after the request line (README, "Control socket protocol"):

    -> {"v": 1, "cmd": "attach", "args": {"name": "web.1", "rows": 40, "cols": 120,
                                          "tty": "/dev/pts/3"}}
    <- {"ok": true, "result": {"name": "web.1", "pid": 4242, "detach": "ctrl-]"}}

or an error reply, and the connection is closed. From then on:

- server -> client: raw terminal bytes. First the last ``rows - 1`` lines of
  the instance's history, each ending in \\r\\n, and the pending line (a
  `(Pdb) ` prompt); then every read of the pty as it came. When the session
  ends from keelrun's side, a last notice (`\\r\\n[keelrun: web.1 exited]\\r\\n`)
  and the connection is closed.
- client -> server: newline-delimited JSON, one object a line:
  `{"in": "keys"}` (bytes that are not UTF-8 travel as \\udcXX escapes, as in
  `logs`) and `{"resize": [rows, cols]}`. The client detaches by closing
  the connection.

Nothing here blocks the loop: output is queued on the connection, which drops
a client that falls too far behind (as it does a `logs -f` follower), and
keystrokes the app does not read yet make the session stop reading the client
until they have drained. The instance's lines keep flowing through the log
path (keelrun's output and history) whatever happens to the client.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from keelrun.errors import RequestError, one_line
from keelrun.supervisor.terminal import DEFAULT_COLS, DEFAULT_ROWS, MAX_SIZE, Terminal

MAX_MESSAGE = 64 * 1024  # one client message (a pasted block of keystrokes)
MAX_HISTORY = 256 * 1024  # bytes of history sent on attach: a screenful needs far less
DETACH_KEY = "ctrl-]"


class Peer(Protocol):
    """What the control connection must offer an attach session."""

    on_data: Callable[[bytes], None] | None  # bytes received after the request line
    on_close: Callable[[], None] | None  # the connection is gone, whichever side ended it

    def send_raw(self, data: bytes) -> None:
        """Queue bytes; never block; close the connection when too much is queued."""

    def finish_raw(self, data: bytes) -> None:
        """Queue the last bytes and close once they are written."""

    def set_reading(self, on: bool) -> None:
        """Stop or resume reading from the client (back-pressure on keystrokes)."""


@dataclass(frozen=True, slots=True)
class AttachRequest:
    name: str
    rows: int
    cols: int
    tty: str  # the client's terminal, to name it in a refusal ("" when not given)


def parse_attach_args(args: dict[str, Any]) -> AttachRequest:
    """The `attach` request's arguments, checked (RequestError for bad input)."""
    name = args.get("name")
    if not isinstance(name, str) or not name:
        raise RequestError("attach needs the name of one instance")
    rows = _dimension(args.get("rows", DEFAULT_ROWS), "rows")
    cols = _dimension(args.get("cols", DEFAULT_COLS), "cols")
    tty = args.get("tty", "")
    if not isinstance(tty, str) or len(tty) > 256:
        raise RequestError("tty must be a terminal name")
    return AttachRequest(name, rows, cols, one_line(tty))


def _dimension(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIZE:
        raise RequestError(f"{key} must be an integer from 1 to {MAX_SIZE}")
    return value


def choose_instance(name: str, matches: list[tuple[str, bool]]) -> str:
    """The one instance to attach to, from what NAME resolved to: (instance, on a tty).

    A type may be named when it has one instance; an instance not on a
    terminal is an input error that says how to put it on one.
    """
    if not matches:
        raise RequestError(f'"{name}" has no instance to attach to', "runtime")
    if len(matches) > 1:
        names = ", ".join(inst for inst, _ in matches)
        raise RequestError(f'"{name}" has {len(matches)} instances: attach to one of {names}')
    inst, tty = matches[0]
    if not tty:
        kind = inst.rsplit(".", 1)[0]
        raise RequestError(
            f"{inst} does not run on a terminal: set tty = true for process type"
            f' "{kind}" (or start keelrun with --tty {kind})'
        )
    return inst


def describe_client(pid: int | None, tty: str) -> str:
    """How a refusal names the attached client: "pid 4242 on /dev/pts/3"."""
    who = f"pid {pid}" if pid is not None else "a client"
    return f"{who} on {tty}" if tty else who


def attach(
    terminal: Terminal,
    peer: Peer,
    request: AttachRequest,
    *,
    name: str,
    pid: int | None,
    client: str,
    history: list[bytes],
) -> AttachSession:
    """Join ``peer`` to the instance's terminal, or refuse (RequestError, runtime)."""
    if terminal.ended:
        raise RequestError(f"{name} is not running", "runtime")
    first = terminal.session
    if isinstance(first, AttachSession):
        since = time.strftime("%H:%M:%S", time.localtime(first.since))
        raise RequestError(
            f"{name} is already attached by {first.client} since {since}"
            f" (detach there with Ctrl-])",
            "runtime",
        )
    if first is not None:
        raise RequestError(f"{name} is already attached", "runtime")
    session = AttachSession(terminal, peer, name, client)
    session.start(request, pid, history)
    return session


class AttachSession:
    def __init__(self, terminal: Terminal, peer: Peer, name: str, client: str) -> None:
        self.terminal = terminal
        self.peer = peer
        self.name = name
        self.client = client
        self.since = time.time()
        self.closed = False
        self.on_detached: Callable[[AttachSession], None] | None = None  # for an event
        self._inbuf = b""
        self._paused = False

    def start(self, request: AttachRequest, pid: int | None, history: list[bytes]) -> None:
        term = self.terminal
        term.session = self
        term.framer.on_raw = self.peer.send_raw
        term.on_input_drained = self._input_drained
        self.peer.on_close = self._detach
        self.peer.on_data = self._received
        reply = {"ok": True, "result": {"name": self.name, "pid": pid, "detach": DETACH_KEY}}
        self.peer.send_raw((json.dumps(reply) + "\n").encode())
        screen = b"".join(line + b"\r\n" for line in history) + term.framer.pending
        if screen and not self.closed:
            self.peer.send_raw(screen[-MAX_HISTORY:])
        if not self.closed:
            term.resize(request.rows, request.cols)

    # -- client -> instance ------------------------------------------------
    def _received(self, data: bytes) -> None:
        buf = self._inbuf + data
        if b"\n" not in data:
            self._inbuf = buf
            if len(buf) > MAX_MESSAGE:
                self.end(f"detached: a message longer than {MAX_MESSAGE} bytes")
            return
        *messages, self._inbuf = buf.split(b"\n")
        for line in messages:
            if self.closed:
                return
            if line:
                self._message(line)

    def _message(self, line: bytes) -> None:
        try:
            msg = json.loads(line)
        except (ValueError, RecursionError):
            msg = None
        if isinstance(msg, dict) and isinstance(msg.get("in"), str):
            try:
                keys = msg["in"].encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                self.end("detached: keystrokes that are not text or \\udcXX escapes")
                return
            if not self.terminal.write(keys) and not self._paused:
                self._paused = True
                self.peer.set_reading(False)
            return
        size = msg.get("resize") if isinstance(msg, dict) else None
        if isinstance(size, list) and len(size) == 2:
            try:
                rows, cols = (_dimension(v, "resize") for v in size)
            except RequestError:
                pass
            else:
                self.terminal.resize(rows, cols)
                return
        self.end('detached: a message that is neither {"in": ...} nor {"resize": [rows, cols]}')

    def _input_drained(self) -> None:
        if self._paused and not self.closed:
            self._paused = False
            self.peer.set_reading(True)

    # -- the end -------------------------------------------------------------
    def end(self, why: str) -> None:
        """keelrun ends the session (the instance exited, a bad message): notice, close."""
        if self.closed:
            return
        self._detach()
        self.peer.finish_raw(f"\r\n[keelrun: {self.name} {why}]\r\n".encode())

    def _detach(self) -> None:
        """The client is gone or let go: the instance runs on, its terminal is free."""
        if self.closed:
            return
        self.closed = True
        term = self.terminal
        if term.session is self:
            term.session = None
            term.framer.on_raw = None
            term.on_input_drained = None
        if self.on_detached is not None:
            self.on_detached(self)
