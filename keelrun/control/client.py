"""The client side of the control socket: one function per `keelrun` client command."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from keelrun.control.address import owner_name
from keelrun.control.locate import locate
from keelrun.control.protocol import VERSION, peer_uid
from keelrun.errors import InputError, InputErrors, RuntimeFailure

CONNECT_TIMEOUT = 5.0
REPLY_TIMEOUT = 30.0


class Client:
    def __init__(self, app_root: str | None, socket_path: str | None) -> None:
        self.target = locate(app_root, socket_path)
        self.path: Path = self.target.path
        self.address: Path | None = None  # where the last connect found keelrun

    def request(self, cmd: str, args: dict[str, Any], follow: bool = False) -> Iterator[dict]:
        """Send one request; yield every reply line as a dict."""
        sock = self.connect()
        try:
            request = {"v": VERSION, "cmd": cmd, "args": args}
            buf = b""
            try:
                sock.sendall((json.dumps(request) + "\n").encode())
                sock.settimeout(None if follow else REPLY_TIMEOUT)
                while data := sock.recv(65536):
                    buf += data
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        if line:
                            yield self._parse(line)
            except TimeoutError:
                raise RuntimeFailure(f"no reply from keelrun on {self.path}") from None
            except OSError as e:
                # A keelrun that went away mid-request: one line, not a traceback.
                why = e.strerror or str(e)
                raise RuntimeFailure(f"keelrun on {self.path} dropped the request: {why}") from None
        finally:
            sock.close()

    def _parse(self, line: bytes) -> dict:
        try:
            reply = json.loads(line)
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            raise RuntimeFailure(f"keelrun on {self.path} sent a malformed reply")
        return reply

    def connect(self) -> socket.socket:
        """A connection to the first address that a keelrun serves, its server's uid
        checked (own or root's) before anything is sent; for `attach` and requests."""
        for address in self.target.addresses():
            sock = self._connect_to(address)
            if sock is not None:
                _check_server(sock, address)
                self.address = address
                return sock
        raise RuntimeFailure(self._nobody_message())

    def _connect_to(self, address: Path) -> socket.socket | None:
        """A connected socket, or None when nobody serves ``address``."""
        deadline = time.monotonic() + CONNECT_TIMEOUT
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(CONNECT_TIMEOUT)
            try:
                sock.connect(str(address))
                return sock
            except FileNotFoundError:
                sock.close()
                return None
            except ConnectionRefusedError:
                sock.close()
                if os.path.isdir(address):
                    where = self.target.where or str(address)
                    raise InputError(where, f'"{address}" is a directory, not a socket') from None
                return None  # a socket left by a killed keelrun, or not a socket at all
            except BlockingIOError:
                # The listen backlog is full (many clients at once): try again shortly.
                sock.close()
                if time.monotonic() >= deadline:
                    raise RuntimeFailure(f"keelrun on {address} is too busy") from None
                time.sleep(0.01)
            except OSError as e:
                sock.close()
                reason = e.strerror or str(e)
                if isinstance(e, PermissionError):
                    reason += _owned_by(address)
                raise RuntimeFailure(f"cannot connect to {address}: {reason}") from None

    def _nobody_message(self) -> str:
        if self.target.searched is not None:
            return (
                f"no keelrun is running in {self.target.searched} or its parents (no "
                f"{self.path.name} found); start one there with `keelrun start`, "
                "or point at one with -d DIR or --socket PATH"
            )
        if self.target.where:
            return f"no keelrun is running on {self.path} (named by {self.target.where})"
        return f"no keelrun is running on {self.path}; start one with `keelrun start`"

    def call(self, cmd: str, args: dict[str, Any]) -> Any:
        """A request with one reply; an error reply becomes the matching exception."""
        for reply in self.request(cmd, args):
            return _result(reply)
        raise RuntimeFailure(f"keelrun on {self.path} closed the connection without a reply")


def _check_server(sock: socket.socket, address: Path) -> None:
    """Talk only to a keelrun of our own uid or root's: a socket planted by another
    user (in a shared directory, or a parent the search walks through) gets nothing."""
    uid = peer_uid(sock)
    if uid is None or uid not in (os.getuid(), 0):
        sock.close()
        owner = "an unknown uid" if uid is None else owner_name(uid)
        me = os.getuid()
        trusted = "root (you)" if me == 0 else f"you ({owner_name(me)}) or root"
        raise RuntimeFailure(
            f"refusing {address}: it is served by {owner}, not by {trusted}; "
            "another user may have put it there"
        )


def _owned_by(address: Path) -> str:
    try:
        return f" (the socket belongs to {owner_name(os.stat(address).st_uid)})"
    except OSError:
        return ""


def _result(reply: dict) -> Any:
    if reply.get("ok"):
        return reply.get("result")
    message = str(reply.get("error", "request failed"))
    if reply.get("kind") == "input":
        lines = reply.get("errors")
        if isinstance(lines, list) and len(lines) > 1:
            raise InputErrors([InputError("", str(line)) for line in lines])
        raise InputError("", message)
    raise RuntimeFailure(message)


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


# ------------------------------------------------------------------ commands
def scale_command(app_root: str | None, sock: str | None, changes: list[str]) -> int:
    from keelrun.formation import parse_scale

    parse_scale(changes, "scale")  # bad arguments: exit 2 before connecting
    result = Client(app_root, sock).call("scale", {"changes": changes})
    for name, change in result.items():
        clamped = " (clamped: a type cannot have fewer than 0)" if change.get("clamped") else ""
        _say(f"{name}: {change['from']} -> {change['to']}{clamped}")
    return 0


def ps_command(app_root: str | None, sock: str | None, as_json: bool) -> int:
    # --json prints the records as they are; the table also wants the health counts.
    rows = Client(app_root, sock).call("ps", {} if as_json else PS_TABLE_ARGS)
    if as_json:
        _say(json.dumps(rows))
        return 0
    _say(format_ps(rows))
    return 0


PS_TABLE_ARGS = {"health_counts": True}


def state_cell(row: dict[str, Any]) -> str:
    """The STATE cell of `ps` and `top`: the state, and the health while checks fail
    (`ready (failing 2/3)`; the counts come with ``PS_TABLE_ARGS``)."""
    state = str(row.get("state", "?"))
    if row.get("health") != "failing":
        return state
    failures, retries = row.get("health_failures"), row.get("health_retries")
    if isinstance(failures, int) and isinstance(retries, int) and failures:
        return f"{state} (failing {failures}/{retries})"
    return f"{state} (failing)"


def format_ps(rows: list[dict[str, Any]]) -> str:
    header = (
        "NAME",
        "PID",
        "STATE",
        "UPTIME",
        "RESTARTS",
        "EXIT",
        "CPU%",
        "RSS",
        "PORT",
        "COMMAND",
    )
    table = [header]
    for r in rows:
        table.append(
            (
                r["name"],
                dash(r["pid"]),
                state_cell(r),
                duration(r["uptime_s"]),
                str(r["restarts"]),
                dash(r["exit_status"]),
                dash(r["cpu_percent"]),
                size(r["rss_bytes"]),
                str(r["port"]),
                r["command"],
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        for row in table
    )


def dash(value: object) -> str:
    return "-" if value is None else str(value)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "K", "M", "G"):
        if n < 1024 or unit == "G":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def stop_command(app_root: str | None, sock: str | None, names: list[str]) -> int:
    result = Client(app_root, sock).call("stop", {"names": names})
    if names:
        _say(f"stopping {', '.join(result['stopping']) or 'nothing'}")
    else:
        _say("stopping keelrun")
    return 0


def restart_command(app_root: str | None, sock: str | None, names: list[str]) -> int:
    result = Client(app_root, sock).call("restart", {"names": names})
    _say(f"restarting {', '.join(result['restarting']) or 'nothing'}")
    return 0


def signal_command(app_root: str | None, sock: str | None, sig: str, names: list[str]) -> int:
    from keelrun.signals import parse_signal

    parse_signal(sig, "SIG")
    result = Client(app_root, sock).call("signal", {"signal": sig, "names": names})
    _say(f"sent {result['signal']} to {', '.join(result['sent']) or 'nothing'}")
    return 0


def reload_command(app_root: str | None, sock: str | None) -> int:
    result = Client(app_root, sock).call("reload", {})
    parts = []
    for key, value in result.items():
        if value:  # names, or {type: count} for "scaled"
            items = [f"{n}={c}" for n, c in value.items()] if isinstance(value, dict) else value
            parts.append(f"{key}: {', '.join(items)}")
    _say("reloaded" + (" (" + "; ".join(parts) + ")" if parts else ": nothing changed"))
    return 0


def logs_command(
    *,
    names: list[str],
    follow: bool,
    count: str,
    log_format: str | None,
    color: bool | None,
    no_timestamp: bool,
    no_prefix: bool,
    app_root: str | None,
    socket: str | None,
) -> int:
    from keelrun.logformat import LogFormatter

    if not (count.isascii() and count.isdigit()) or len(count) > 6:
        raise InputError("--lines", f'expected a number of lines, got "{count}"')
    fmt = log_format or os.environ.get("KEELRUN_LOG_FORMAT") or "text"
    if fmt not in ("text", "json"):
        raise InputError("--log-format", f'expected text or json, got "{fmt}"')
    if color is None:
        color = os.isatty(1) and not os.environ.get("NO_COLOR")
    formatter = LogFormatter(
        json_mode=fmt == "json", color=color, timestamp=not no_timestamp, prefix=not no_prefix
    )
    client = Client(app_root, socket)
    args = {"names": names, "lines": int(count), "follow": follow}
    out = sys.stdout.buffer
    try:
        for reply in client.request("logs", args, follow=follow):
            if "log" in reply:
                rec = reply["log"]
                msg = rec["msg"].encode("utf-8", "surrogateescape")
                out.write(formatter.line(float(rec["ts"]), rec["proc"], rec["stream"], msg))
            elif "event" in reply:
                out.write(formatter.event(reply["event"]))
            elif reply.get("end"):
                break
            else:
                result = _result(reply)
                # The same colours and padding as `keelrun start`.
                formatter.set_types(result.get("types", []))
                formatter.set_width(int(result.get("width", formatter.width)))
                continue
            if follow:
                out.flush()
    except KeyboardInterrupt:
        pass
    out.flush()
    return 0
