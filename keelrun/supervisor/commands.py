"""Every control action, in one place: socket requests and signals both land here.

SIGTERM and `keelrun stop`, SIGHUP and `keelrun reload`, SIGUSR1 and
`keelrun signal USR1 ...` call the same methods, so they cannot behave
differently (the shape of circus' commands and gunicorn's arbiter). A request
handler checks its arguments, calls the supervisor and answers through a
``Reply``, which the control server's connections provide: this module knows
nothing of sockets.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from keelrun.errors import InputError, RequestError
from keelrun.logformat import SYSTEM_NAME
from keelrun.settings import MAX_COUNT
from keelrun.supervisor.instance import Instance
from keelrun.supervisor.lifecycle import State

if TYPE_CHECKING:
    from keelrun.config import Overrides
    from keelrun.settings import Settings
    from keelrun.supervisor.supervisor import Supervisor

MAX_LOG_LINES = 100_000

Result = dict[str, Any]


class Reply(Protocol):
    """How a handler answers: one JSON reply, or a stream of lines (``logs -f``), or
    a session both ways (``attach``: keelrun/supervisor/attach.py's Peer)."""

    on_close: Callable[[], None] | None
    on_data: Callable[[bytes], None] | None  # what the client sends after its request

    def send(self, obj: Result) -> None: ...
    def send_raw(self, data: bytes) -> None: ...
    def finish(self, obj: Result) -> None: ...
    def finish_raw(self, data: bytes) -> None: ...
    def set_reading(self, on: bool) -> None: ...
    @property
    def peer_pid(self) -> int | None: ...


Handler = Callable[[dict[str, Any], Reply], Result | None]


class Commands:
    def __init__(
        self, sup: Supervisor, overrides: Overrides | None, cwd: str | None = None
    ) -> None:
        self.sup = sup
        self.overrides = overrides  # to re-read the inputs on reload
        # Where keelrun was started: its relative -d, -f, -e are relative to it, and
        # keelrun has moved into the app root since.
        self.cwd = cwd
        # Told the new settings after each successful reload (the file watcher follows).
        self.on_reloaded: Callable[[Settings], None] | None = None

    def handlers(self) -> dict[str, Handler]:
        """The socket's request table: each returns a reply, or None when it streams."""
        return {
            "ping": self.ping,
            "ps": self.ps,
            "scale": self.scale,
            "stop": self.stop,
            "restart": self.restart,
            "signal": self.signal,
            "logs": self.logs,
            "reload": self.reload,
            "attach": self.attach,
        }

    # ------------------------------------------------------------ signals
    def on_signal(self, signum: int) -> None:
        """A signal to keelrun, as the loop delivers it."""
        sig = signal.Signals(signum)
        if sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            self.stop_all(sig)
        elif sig is signal.SIGHUP:
            # A failed reload is reported as a reload_failed event; nothing changes.
            with contextlib.suppress(RequestError):
                self.reload({}, None)
        else:  # SIGUSR1, SIGUSR2: forwarded to every process group
            self.send_signal(sig, list(self.sup.instances.values()))

    def stop_all(self, sig: signal.Signals | None) -> None:
        """Stop keelrun (`keelrun stop` or a stop signal); a second SIGINT/SIGTERM kills at once."""
        sup = self.sup
        if sup.shutdown.active:
            if sig in (signal.SIGINT, signal.SIGTERM):
                sup.shutdown.force(f"second {sig.name}")
            return
        if sig is None:
            sup.shutdown.request(0, reason="keelrun stop")
        elif sig is signal.SIGINT:
            sup.shutdown.request(0, reason="SIGINT", hint="press Ctrl-C again to kill them now")
        else:
            hint = "SIGTERM again kills them now" if sig is signal.SIGTERM else ""
            sup.shutdown.request(0, reason=sig.name, hint=hint)

    def send_signal(self, sig: signal.Signals, targets: list[Instance]) -> list[str]:
        sent = [i.name for i in self.sup.signal_instances(sig, targets)]
        self.sup.events.info(
            "signalled", f"sent {sig.name} to {', '.join(sent) or 'nothing'}", targets=sent
        )
        return sent

    def files_changed(self, types: dict[str, tuple[str, ...]], reload: tuple[str, ...]) -> None:
        """The file watcher saw changes (README "The development loop").

        Procfile, .env or config changes reload first (as `keelrun reload`); then
        each type whose files changed restarts gracefully.
        """
        sup = self.sup
        if sup.shutdown.active:
            return
        examples = list(dict.fromkeys([*reload, *(p for ps in types.values() for p in ps)]))[:3]
        restart = sorted(types)
        actions = (["reloading"] if reload else []) + (
            [f"restarting {', '.join(restart)}"] if restart else []
        )
        sup.events.info(
            "files_changed",
            f"files changed ({', '.join(examples)}): {'; '.join(actions)}",
            paths=examples,
            types=restart,
            reload=bool(reload),
        )
        if reload:
            with contextlib.suppress(RequestError):  # reported as reload_failed
                self.reload({}, None)
        for name in restart:
            if sup.settings.type_named(name) is not None:
                sup.restart_changed(name)

    # ------------------------------------------------------------- helpers
    def _names(self, args: dict[str, Any]) -> list[str]:
        names = args.get("names", [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise RequestError("names must be a list of strings")
        return names

    def resolve(self, names: list[str]) -> list[Instance]:
        """NAME is a type (all its instances) or an instance (`web.2`)."""
        sup = self.sup
        found: dict[str, Instance] = {}
        for name in names:
            if name in sup.instances:
                found.setdefault(name, sup.instances[name])
            elif sup.settings.type_named(name) is not None:
                for inst in sup.instances.values():
                    if inst.ptype.name == name:
                        found.setdefault(inst.name, inst)
            else:
                raise RequestError(_unknown_name(name, [*sup.instances, *self._type_names()]))
        return list(found.values())

    def _type_names(self) -> list[str]:
        return [t.name for t in self.sup.settings.types]

    def _not_stopping(self) -> None:
        if self.sup.shutdown.active:
            raise RequestError("keelrun is stopping", "runtime")

    # ------------------------------------------------------------ requests
    def ping(self, args: dict[str, Any], reply: Reply | None = None) -> Result:
        from keelrun import __version__

        result = {"pid": os.getpid(), "version": __version__}
        return {"ok": True, "result": {**result, "stopping": self.sup.shutdown.active}}

    def ps(self, args: dict[str, Any], reply: Reply | None = None) -> Result:
        from keelrun.supervisor.stats import snapshot, tree_stats

        counts = args.get("health_counts", False)
        if not isinstance(counts, bool):
            raise RequestError("health_counts must be true or false")
        snap = snapshot()
        now = self.sup.loop.time()
        rows = []
        for inst in self.sup.instances.values():
            row = inst.describe(now)
            cpu, rss = tree_stats(inst.pid, snap) if inst.pid is not None else (None, None)
            row["cpu_percent"] = cpu
            row["rss_bytes"] = rss
            if counts:  # for the tables of `ps` and `top`: `ready (failing 2/3)`
                health = inst.health
                live = health.liveness if health is not None and health.plan.has_check else None
                row["health_failures"] = live.failures if live is not None else None
                row["health_retries"] = live.retries if live is not None else None
            rows.append(row)
        return {"ok": True, "result": rows}

    def scale(self, args: dict[str, Any], reply: Reply | None = None) -> Result:
        from keelrun.formation import parse_scale

        changes = args.get("changes")
        if not isinstance(changes, list) or not all(isinstance(c, str) for c in changes):
            raise RequestError("changes must be a list of strings like web=2")
        try:
            parsed = parse_scale(changes, "scale")
        except InputError as e:
            raise RequestError.from_input(e) from None
        sup = self.sup
        self._not_stopping()
        for name, _op, _n in parsed:
            if sup.settings.type_named(name) is None:
                from keelrun.formation import unknown_type

                raise RequestError(unknown_type(name, [t.name for t in sup.settings.types]))
        targets: dict[str, tuple[int, int]] = {}
        for name, op, n in parsed:
            current = sup.count_of(name)
            wanted = n if op == "=" else current + n if op == "+" else current - n
            if wanted > MAX_COUNT:
                raise RequestError(f"{name}: at most {MAX_COUNT} instances, got {wanted}")
            targets[name] = (current, wanted)
        result = {}
        for name, (current, wanted) in targets.items():
            target = max(0, wanted)
            sup.scale_type(name, target)
            result[name] = {"from": current, "to": target}
            if wanted < 0:
                result[name]["clamped"] = True  # asked for fewer than none
        self._warn_port_overlaps(list(targets))
        return {"ok": True, "result": result}

    def _warn_port_overlaps(self, scaled: list[str]) -> None:
        """Past 100 instances a type's ports run into the next type's: say so."""
        from keelrun.formation import port_overlaps

        sup = self.sup
        counts = {t.name: sup.count_of(t.name) for t in sup.settings.types}
        for overlap in port_overlaps(sup.settings.types, counts):
            if overlap.lower in scaled or overlap.upper in scaled:
                types = [overlap.lower, overlap.upper]
                sup.events.warning("ports_shared", overlap.message(), types=types)

    def stop(self, args: dict[str, Any], reply: Reply | None = None) -> Result:
        names = self._names(args)
        if not names:
            self.stop_all(None)
            return {"ok": True, "result": {"stopping": "keelrun"}}
        targets = self.resolve(names)
        for inst in targets:
            self.sup.stop_instance(inst)
        return {"ok": True, "result": {"stopping": [i.name for i in targets]}}

    def restart(self, args: dict[str, Any], reply: Reply | None = None) -> Result:
        names = self._names(args)
        targets = self.resolve(names) if names else list(self.sup.instances.values())
        self._not_stopping()
        for inst in targets:
            if inst.state is not State.HELD:  # one waiting for its dependencies keeps waiting
                text = f"restarting {inst.name} (requested)"
                self.sup.events.info("process_restarting", text, target=inst.name, delay_s=0)
            self.sup.restart_instance(inst)
        return {"ok": True, "result": {"restarting": [i.name for i in targets]}}

    def signal(self, args: dict[str, Any], reply: Reply | None = None) -> Result:
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
            raise RequestError.from_input(e) from None
        sent = self.send_signal(sig, self.resolve(names))
        return {"ok": True, "result": {"signal": sig.name, "sent": sent}}

    def logs(self, args: dict[str, Any], reply: Reply | None = None) -> Result | None:
        names = self._names(args)
        count = args.get("lines", 100)
        follow = args.get("follow", False)
        if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= MAX_LOG_LINES:
            raise RequestError(f"lines must be an integer from 0 to {MAX_LOG_LINES}")
        if not isinstance(follow, bool):
            raise RequestError("follow must be true or false")
        assert reply is not None
        sup = self.sup
        with_events = not names or SYSTEM_NAME in names
        others = [n for n in names if n != SYSTEM_NAME]
        targets = self.resolve(others) if names else list(sup.instances.values())
        wanted = {i.name for i in targets}
        wanted_types = {n for n in others if n not in sup.instances}
        history: list[tuple[float, int, bytes]] = []
        for order, inst in enumerate(targets):
            for ts, stream, line in inst.ring.tail(count):
                history.append((ts, order + 1, _log_line(ts, inst.name, stream, line)))
        if with_events:
            records = list(sup.events.history)[-count:] if count else []
            history += [(float(r["ts"]), 0, _event_line(r)) for r in records]
        history.sort(key=lambda r: (r[0], r[1]))
        formatter = sup.pipes.formatter
        reply.send(
            {
                "ok": True,
                "result": {"width": formatter.width, "types": formatter.types, "follow": follow},
            }
        )
        for _, _, data in history[-count:] if count else []:
            reply.send_raw(data)
        if not follow:
            reply.finish({"ok": True, "end": True})
            return None

        def on_lines(inst: Instance, stream: str, ts: float, block: bytes) -> None:
            if not names or inst.name in wanted or inst.ptype.name in wanted_types:
                for line in block[:-1].split(b"\n"):
                    reply.send_raw(_log_line(ts, inst.name, stream, line))

        def on_event(record: dict[str, Any]) -> None:
            reply.send_raw(_event_line(record))

        sup.pipes.listeners.append(on_lines)
        if with_events:
            sup.events.followers.append(on_event)

        def unfollow() -> None:
            sup.pipes.listeners.remove(on_lines)
            if with_events:
                sup.events.followers.remove(on_event)

        reply.on_close = unfollow
        return None

    def attach(self, args: dict[str, Any], reply: Reply | None = None) -> None:
        """Join the client to a tty instance's terminal (README "Terminals")."""
        from keelrun.supervisor import attach

        assert reply is not None
        request = attach.parse_attach_args(args)
        found = self.resolve([request.name])
        name = attach.choose_instance(request.name, [(i.name, i.ptype.tty) for i in found])
        inst = self.sup.instances[name]
        if inst.pid is None or inst.terminal is None or inst.terminal.ended:
            raise RequestError(f"{name} is not running ({inst.state.public})", "runtime")
        client = attach.describe_client(reply.peer_pid, request.tty)
        session = attach.attach(
            inst.terminal,
            reply,
            request,
            name=name,
            pid=inst.pid,
            client=client,
            history=[line for _, _, line in inst.ring.tail(request.rows - 1)],
        )
        events = self.sup.events
        events.info("attached", f"{client} attached to {name}", target=name, client=client)

        def detached(s: attach.AttachSession) -> None:
            events.info("detached", f"{client} detached from {name}", target=name, client=client)

        if session.closed:  # the client was gone before the first bytes were queued
            detached(session)
        else:
            session.on_detached = detached
        return None

    def reload(self, args: dict[str, Any], reply: Reply | None = None) -> Result:
        from pathlib import Path

        from keelrun.config import load_settings

        if self.overrides is None:
            raise RequestError("this keelrun cannot reload", "runtime")
        self._not_stopping()
        try:
            cwd = Path(self.cwd) if self.cwd is not None else None
            settings = load_settings(self.overrides, cwd=cwd)
        except InputError as e:
            error = RequestError.from_input(e)
            self.sup.events.warning(
                "reload_failed",
                f"reload failed, nothing changed: {'; '.join(error.lines)}",
                errors=error.lines,
            )
            raise error from None
        summary = self.sup.apply_settings(settings, self.overrides.only_types)
        if self.on_reloaded is not None:
            self.on_reloaded(settings)
        return {"ok": True, "result": summary}


def _unknown_name(name: str, known: list[str]) -> str:
    from difflib import get_close_matches  # only on this error path

    close = get_close_matches(name, known, n=1)
    hint = f'; did you mean "{close[0]}"?' if close else ""
    return f'unknown process or type "{name}"{hint}'


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


def _event_line(record: dict[str, Any]) -> bytes:
    shown = dict(record)
    shown["ts"] = round(float(shown["ts"]), 3)
    return (json.dumps({"event": shown}, ensure_ascii=True, default=str) + "\n").encode()
