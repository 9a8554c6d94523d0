"""Every control action, in one place: socket requests and signals both land here.

SIGTERM and `keelrun stop`, SIGHUP and `keelrun reload`, SIGUSR1 and
`keelrun signal USR1 ...` call the same methods, so they cannot behave
differently (the shape of circus' commands and gunicorn's arbiter).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from keelrun.control.server import Connection
from keelrun.errors import InputError, RequestError
from keelrun.settings import MAX_COUNT
from keelrun.supervisor.instance import Instance

if TYPE_CHECKING:
    from keelrun.config import Overrides
    from keelrun.supervisor.supervisor import Supervisor

MAX_LOG_LINES = 100_000


class Commands:
    def __init__(self, sup: Supervisor, overrides: Overrides | None) -> None:
        self.sup = sup
        self.overrides = overrides  # to re-read the inputs on reload

    def handlers(self) -> dict[str, Callable[[dict[str, Any], Connection], Any]]:
        return {
            "ping": self.ping,
            "ps": self.ps,
            "scale": self.scale,
            "stop": self.stop,
            "restart": self.restart,
            "signal": self.signal,
            "logs": self.logs,
            "reload": self.reload,
        }

    # ------------------------------------------------------------- helpers
    def _names(self, args: dict[str, Any]) -> list[str]:
        names = args.get("names", [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise RequestError("names must be a list of strings")
        return names

    def resolve(self, names: list[str]) -> list[Instance]:
        """NAME is a type (all its instances) or an instance (`web.2`)."""
        sup = self.sup
        found: list[Instance] = []
        for name in names:
            if name in sup.instances:
                inst = sup.instances[name]
                if inst not in found:
                    found.append(inst)
            elif sup.settings.type_named(name) is not None:
                found.extend(
                    i for i in sup.instances.values() if i.ptype.name == name and i not in found
                )
            else:
                raise RequestError(f'unknown process or type "{name}"')
        return found

    # ------------------------------------------------------------ commands
    def ping(self, args: dict[str, Any], conn: Connection | None = None) -> dict[str, Any]:
        import os

        from keelrun import __version__

        return {"ok": True, "result": {"pid": os.getpid(), "version": __version__}}

    def ps(self, args: dict[str, Any], conn: Connection | None = None) -> dict[str, Any]:
        from keelrun.supervisor.procscan import process_tree
        from keelrun.supervisor.stats import group_stats

        tree = process_tree()
        rows = []
        for inst in self.sup.instances.values():
            row = inst.describe()
            cpu, rss = group_stats(inst.pid, tree) if inst.pid is not None else (None, None)
            row["cpu_percent"] = cpu
            row["rss_bytes"] = rss
            rows.append(row)
        return {"ok": True, "result": rows}

    def scale(self, args: dict[str, Any], conn: Connection | None = None) -> dict[str, Any]:
        from keelrun.formation import parse_scale

        changes = args.get("changes")
        if not isinstance(changes, list) or not all(isinstance(c, str) for c in changes):
            raise RequestError("changes must be a list of strings like web=2")
        try:
            parsed = parse_scale(changes, "scale")
        except InputError as e:
            lines = e.lines() if hasattr(e, "lines") else [str(e)]
            raise RequestError("; ".join(lines)) from None
        sup = self.sup
        if sup.shutting_down:
            raise RequestError("keelrun is stopping", "runtime")
        for name, _op, _n in parsed:
            if sup.settings.type_named(name) is None:
                raise RequestError(f'unknown process type "{name}"')
        result = {}
        for name, op, n in parsed:
            current = sup.count_of(name)
            target = n if op == "=" else current + n if op == "+" else max(0, current - n)
            if target > MAX_COUNT:
                raise RequestError(f"{name}: at most {MAX_COUNT} instances, got {target}")
            sup.scale_type(name, target)
            result[name] = {"from": current, "to": target}
        return {"ok": True, "result": result}

    def stop(self, args: dict[str, Any], conn: Connection | None = None) -> dict[str, Any]:
        names = self._names(args)
        if not names:
            self.sup.request_stop(0, reason="keelrun stop")
            return {"ok": True, "result": {"stopping": "keelrun"}}
        targets = self.resolve(names)
        for inst in targets:
            self.sup.stop_instance(inst)
        return {"ok": True, "result": {"stopping": [i.name for i in targets]}}

    def restart(self, args: dict[str, Any], conn: Connection | None = None) -> dict[str, Any]:
        names = self._names(args)
        targets = self.resolve(names) if names else list(self.sup.instances.values())
        if self.sup.shutting_down:
            raise RequestError("keelrun is stopping", "runtime")
        for inst in targets:
            self.sup.restart_instance(inst)
        return {"ok": True, "result": {"restarting": [i.name for i in targets]}}

    def signal(self, args: dict[str, Any], conn: Connection | None = None) -> dict[str, Any]:
        from keelrun.signals import parse_signal

        names = self._names(args)
        if not names:
            raise RequestError("signal needs at least one NAME")
        raw = args.get("signal")
        if not isinstance(raw, (str, int)) or isinstance(raw, bool):
            raise RequestError("signal must be a name or a number")
        try:
            sig = parse_signal(raw, "signal")
        except InputError as e:
            raise RequestError(str(e)) from None
        targets = self.resolve(names)
        sent = [i.name for i in targets if self.sup.forward_signal(sig, [i])]
        self.sup.events.emit(
            "signalled", f"sent {sig.name} to {', '.join(sent) or 'nothing'}", targets=sent
        )
        return {"ok": True, "result": {"signal": sig.name, "sent": sent}}

    def logs(self, args: dict[str, Any], conn: Connection | None = None) -> dict[str, Any] | None:
        names = self._names(args)
        count = args.get("lines", 100)
        follow = args.get("follow", False)
        if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= MAX_LOG_LINES:
            raise RequestError(f"lines must be an integer from 0 to {MAX_LOG_LINES}")
        if not isinstance(follow, bool):
            raise RequestError("follow must be true or false")
        targets = self.resolve(names) if names else list(self.sup.instances.values())
        wanted = {i.name for i in targets}
        wanted_types = {n for n in names if n not in self.sup.instances}
        width = max([7, *(len(n) for n in self.sup.instances)])
        history: list[tuple[float, int, str, str, bytes]] = []
        for order, inst in enumerate(targets):
            for ts, stream, line in inst.ring.tail(count):
                history.append((ts, order, inst.name, stream, line))
        history.sort(key=lambda r: (r[0], r[1]))
        assert conn is not None
        conn.send({"ok": True, "result": {"width": width, "follow": follow}})
        for ts, _, name, stream, line in history[-count:] if count else []:
            conn.send_raw(_log_line(ts, name, stream, line))
        if not follow:
            conn.finish({"ok": True, "end": True})
            return None

        def listener(inst: Instance, stream: str, ts: float, block: bytes) -> None:
            if inst.name in wanted or inst.ptype.name in wanted_types or not names:
                for line in block[:-1].split(b"\n"):
                    conn.send_raw(_log_line(ts, inst.name, stream, line))

        self.sup.pipes.listeners.append(listener)
        conn.on_close = lambda: self.sup.pipes.listeners.remove(listener)
        return None

    def reload(self, args: dict[str, Any], conn: Connection | None = None) -> dict[str, Any]:
        from keelrun.config import load_settings

        if self.overrides is None:
            raise RequestError("this keelrun cannot reload", "runtime")
        if self.sup.shutting_down:
            raise RequestError("keelrun is stopping", "runtime")
        try:
            settings = load_settings(self.overrides)
        except InputError as e:
            lines = e.lines() if hasattr(e, "lines") else [str(e)]
            self.sup.events.emit(
                "reload_failed", f"reload failed, nothing changed: {lines[0]}", errors=lines
            )
            raise RequestError("; ".join(lines)) from None
        summary = self.sup.apply_settings(settings, self.overrides.only_types)
        return {"ok": True, "result": summary}


def _log_line(ts: float, name: str, stream: str, line: bytes) -> bytes:
    # surrogateescape + ensure_ascii keeps bytes that are not UTF-8 exact: the
    # client turns the \\udcXX escapes back into the original bytes.
    record = {
        "log": {
            "ts": round(ts, 3),
            "proc": name,
            "stream": stream,
            "msg": line.decode("utf-8", "surrogateescape"),
        }
    }
    return (json.dumps(record, ensure_ascii=True) + "\n").encode()
