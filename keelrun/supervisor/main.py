"""`keelrun start` and `keelrun release`: main() as a checklist of steps."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from keelrun.config import Overrides
from keelrun.settings import Settings

if TYPE_CHECKING:
    from keelrun.supervisor.lifeline import Lifeline

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
FORWARDED = (signal.SIGUSR1, signal.SIGUSR2)
OUTPUT_DRAIN = 2.0  # seconds to hand the last lines to a slow consumer at exit


def _counts(settings: Settings, only_types: tuple[str, ...]) -> dict[str, int]:
    from keelrun.formation import expand

    counts: dict[str, int] = {}
    for spec in expand(settings, only_types):
        counts[spec.type] = counts.get(spec.type, 0) + 1
    for t in only_types or [t.name for t in settings.types]:
        counts.setdefault(t, 0)
    return counts


def _use_color(settings: Settings) -> bool:
    if settings.color is not None:
        return settings.color
    if os.environ.get("NO_COLOR"):
        return False
    return os.isatty(1)


def start_command(overrides: Overrides, run_release: bool = False) -> int:
    from keelrun.supervisor.lifeline import Lifeline

    lifeline = Lifeline()
    try:
        from keelrun.config import inspect

        loaded = inspect(overrides)
        settings = loaded.settings
        counts = _counts(settings, overrides.only_types)
        if run_release and settings.release is None:
            from keelrun.errors import InputError

            raise InputError(str(settings.procfile), "--release given but there is no release type")
    except BaseException:
        lifeline.release()
        raise

    def warn() -> None:  # shared or taken ports, types that run nothing (keelrun/preflight.py)
        from keelrun.preflight import warn_at_start

        warn_at_start(settings, counts, overrides.only_types, loaded.count_sources)

    return _supervise(settings, counts, lifeline, run_release, overrides, after_spawn=warn)


def release_command(overrides: Overrides) -> int:
    from keelrun.supervisor.lifeline import Lifeline

    lifeline = Lifeline()
    try:
        from keelrun.config import load_settings
        from keelrun.errors import InputError

        settings = load_settings(overrides)
        if settings.release is None:
            raise InputError(str(settings.procfile), "no release type")
    except BaseException:
        lifeline.release()
        raise
    return _supervise(settings, None, lifeline, run_release=True)


def _supervise(
    settings: Settings,
    counts: dict[str, int] | None,
    lifeline: Lifeline,
    run_release: bool,
    overrides: Overrides | None = None,
    after_spawn: Callable[[], None] | None = None,
) -> int:
    """Run the formation (counts None: the release phase alone) and return the exit status."""
    try:
        from keelrun.control.server import ControlServer
        from keelrun.errors import RequestError
        from keelrun.loop import Loop
        from keelrun.supervisor import spawn
        from keelrun.supervisor.events import Events
        from keelrun.supervisor.output import Formatter, Output
        from keelrun.supervisor.supervisor import Supervisor

        # 1. One keelrun per socket: refuse before any process is started.
        loop = Loop()
        server: ControlServer | None = None
        if counts is not None:
            server = ControlServer(loop, settings.socket, lambda: commands().handlers())
            server.on_internal_error = lambda cmd, e: sup.events.emit(
                "request_failed", f"{cmd} request failed: {type(e).__name__}: {e}", command=cmd
            )
            server.bind()
    except BaseException:
        lifeline.release()
        raise

    # 2. Orphans of our descendants come to us (subreaper); the lifeline covers SIGKILL.
    spawn.become_subreaper()
    spawn.reset_inherited_signals(keep=set())
    os.chdir(settings.app_root)

    # 3. The output, the events and the supervisor.
    formatter = Formatter(
        json_mode=settings.log_format == "json",
        color=_use_color(settings) and settings.log_format != "json",
        timestamp=settings.timestamp,
        prefix=settings.prefix,
    )
    sup: Supervisor | None = None

    def on_broken() -> None:
        if sup is not None:
            sup.request_stop(1, reason="stdout closed")

    def register_writable(fd: int, on: bool) -> None:
        import selectors

        loop.set_events(fd, selectors.EVENT_WRITE if on else 0, output.on_writable)

    output = Output(
        on_pressure=lambda paused: sup.pipes.set_paused(paused) if sup else None,
        on_broken=on_broken,
        register_writable=register_writable,
    )
    loop.after_iteration(output.flush)
    events = Events(formatter, output.write)
    sup = Supervisor(
        settings,
        loop,
        events,
        formatter,
        output,
        extra_env=lifeline.env,
    )

    _commands: list[Any] = []

    def commands() -> Any:
        """The dispatch table, built on first use: it is not needed to start the formation."""
        if not _commands:
            from keelrun.supervisor.commands import Commands

            _commands.append(Commands(sup, overrides))
        return _commands[0]

    # 4. Signals become loop events and take the same paths as control requests.
    def on_stop_signal(signum: int) -> None:
        assert sup is not None
        if sup.shutting_down and signum in (signal.SIGINT, signal.SIGTERM):
            sup.events.emit("forced", "second interrupt: killing every process now")
            sup.force_stop()
        else:
            sup.request_stop(0, reason=signal.Signals(signum).name)

    def on_reload_signal(signum: int) -> None:
        # A failed reload is reported as a reload_failed event; nothing changes.
        with contextlib.suppress(RequestError):
            commands().reload({})

    def on_forwarded(signum: int) -> None:
        sup.forward_signal(signum)

    handlers = {sig: on_stop_signal for sig in STOP_SIGNALS}
    handlers[signal.SIGCHLD] = sup.on_sigchld
    for sig in FORWARDED:
        handlers[sig] = on_forwarded
    handlers[signal.SIGHUP] = on_reload_signal

    # Once the first lines are out: finish moving into the run's cgroup.
    loop.when_idle(lifeline.settle, at_most=0.2)

    with loop.signals(handlers):
        # 5. Spawn (the release phase first if asked), then run until stopped.
        if run_release:
            if counts is None:
                sup.start_release(then=lambda: sup.request_stop(0, reason="release done"))
            else:
                sup.start_release(then=lambda: sup.start(counts))
        else:
            sup.start(counts or {})
        sup._reap()  # a child may have died before the handler was in place
        if after_spawn is not None:
            loop.when_idle(after_spawn, at_most=0.2)
        loop.run()

    if server is not None:
        server.close()
    status = sup.exit_status or 0
    output.drain(time.monotonic() + OUTPUT_DRAIN)
    lifeline.release()
    _exit_now(status)
    return status  # not reached


def _exit_now(status: int) -> None:
    """Leave without the interpreter's teardown.

    Everything keelrun owns is already stopped, reaped and flushed; tearing
    down the modules (structlog pulls in asyncio and logging) took 20-40 ms
    between the last child's death and keelrun's exit, which is what an
    orchestrator waiting on `docker stop` sees.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)
