"""`keelrun start` and `keelrun release`: the wiring of loop, supervisor, socket and signals.

`_supervise` reads as a checklist of steps. This module is the one place that
knows both the supervisor (keelrun/supervisor/) and the control socket
(keelrun/control/); neither imports the other's side.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from keelrun.config import Overrides
from keelrun.settings import Settings

if TYPE_CHECKING:
    from pathlib import Path

    from keelrun.loop import Loop
    from keelrun.supervisor.commands import Commands
    from keelrun.supervisor.kernel import Kernel
    from keelrun.supervisor.lifeline import Lifeline
    from keelrun.supervisor.sdnotify import ServiceNotifier
    from keelrun.supervisor.supervisor import Supervisor
    from keelrun.supervisor.writer import Writer
    from keelrun.watch.session import WatchSession

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
    if settings.log_format == "json" or os.environ.get("NO_COLOR"):
        return False
    return os.isatty(1)


def start_command(overrides: Overrides, run_release: bool = False) -> int:
    from keelrun.supervisor.lifeline import Lifeline

    # Under systemd (Type=notify): keelrun's own NOTIFY_SOCKET, taken out of the
    # environment before anything reads it, so that no instance ever sees it.
    service = _service_notifier()
    lifeline = Lifeline()
    try:
        from keelrun.config import inspect
        from keelrun.errors import InputError

        loaded = inspect(overrides)
        settings = loaded.settings
        counts = _counts(settings, overrides.only_types)
        if run_release and settings.release is None:
            raise InputError(str(settings.procfile), "--release given but there is no release type")
        if settings.exit_code_from is not None:
            from keelrun.supervisor.exitpolicy import exit_code_from_problem

            problem = exit_code_from_problem(settings.exit_code_from, counts)
            if problem is not None:
                raise InputError("--exit-code-from", problem)
    except BaseException:
        lifeline.close()
        raise

    def warn() -> None:  # shared or taken ports, types that run nothing (keelrun/preflight.py)
        from keelrun.preflight import warn_at_start

        warn_at_start(settings, counts, overrides.only_types, loaded.count_sources)

    return _supervise(
        settings, counts, lifeline, run_release, overrides, after_spawn=warn, service=service
    )


def _service_notifier() -> ServiceNotifier | None:
    if "NOTIFY_SOCKET" not in os.environ:
        return None  # not under systemd: nothing to import
    from keelrun.supervisor.sdnotify import ServiceNotifier

    return ServiceNotifier.from_environ(os.environ)


def release_command(overrides: Overrides) -> int:
    from keelrun.supervisor.lifeline import Lifeline

    _service_notifier()  # systemd's NOTIFY_SOCKET is keelrun's, never the release's
    lifeline = Lifeline()
    try:
        from keelrun.config import load_settings
        from keelrun.errors import InputError

        settings = load_settings(overrides)
        if settings.release is None:
            raise InputError(str(settings.procfile), "no release type")
    except BaseException:
        lifeline.close()
        raise
    return _supervise(settings, None, lifeline, run_release=True)


def _supervise(
    settings: Settings,
    counts: dict[str, int] | None,
    lifeline: Lifeline,
    run_release: bool,
    overrides: Overrides | None = None,
    after_spawn: Callable[[], None] | None = None,
    service: ServiceNotifier | None = None,
) -> int:
    """Run the formation (counts None: the release phase alone) and return the exit status."""
    try:
        from keelrun.control.server import ControlServer
        from keelrun.loop import Loop
        from keelrun.supervisor import spawn
        from keelrun.supervisor.kernel import Kernel

        # 1. One keelrun per socket: refuse before any process is started.
        loop = Loop()
        server: ControlServer | None = None
        if counts is not None:
            # The default socket may move to the runtime dir; a named one may not.
            server = ControlServer(
                loop,
                settings.socket,
                lambda: commands.handlers(),
                fallback=not settings.socket_named,
            )
            server.on_internal_error = lambda cmd, e: sup.events.error(
                "request_failed", f"{cmd} request failed: {type(e).__name__}: {e}", command=cmd
            )
            server.bind()
    except BaseException:
        lifeline.close()
        raise

    # 2. Orphans of our descendants come to us (subreaper); the lifeline covers SIGKILL.
    spawn.become_subreaper()
    spawn.reset_inherited_signals(keep=set())
    child_fd_limit = spawn.raise_fd_limit()
    launched_in = os.getcwd()  # where relative -d, -f and -e point (Commands.reload)
    os.chdir(settings.app_root)

    # 3. The output, the events, the supervisor and the commands that drive it.
    sup, writer = _build(settings, loop, lifeline, Kernel(child_fd_limit))
    from keelrun.supervisor.commands import Commands

    commands = Commands(sup, overrides, cwd=launched_in)
    if service is not None:
        sup.checks.service = service
        service.start_watchdog(loop)

    # The file watcher, when a type watches files (started once the first lines are out).
    watch = _Watch(loop, commands, lambda: [server.address] if server is not None else [])
    if counts is not None:
        loop.when_idle(lambda: watch.update(sup.settings), at_most=0.2)
        commands.on_reloaded = watch.update

    # 4. Signals become loop events and take the same paths as control requests.
    handlers = {sig: commands.on_signal for sig in (*STOP_SIGNALS, *FORWARDED, signal.SIGHUP)}
    handlers[signal.SIGCHLD] = lambda signum: sup.reap()

    # Once the first lines are out: finish moving into the run's cgroup.
    loop.when_idle(lifeline.settle, at_most=0.2)

    with loop.signals(handlers):
        # 5. Spawn (the release phase first if asked), then run until stopped.
        if run_release:
            if counts is None:
                sup.start_release(
                    then=lambda: sup.shutdown.request(0, reason="release done"), alone=True
                )
            else:
                sup.start_release(then=lambda: sup.start(counts))
        else:
            sup.start(counts or {})
        if server is not None and server.moved is not None:
            sup.events.info(
                "socket_moved",
                f"control socket at {server.address} ({server.moved})",
                socket=str(server.address),
            )
        sup.reap()  # a child may have died before the handler was in place
        # What start-up made lives for the whole run: out of the collector's passes.
        gc.freeze()
        gc.enable()  # off since cli.main (see there)
        if after_spawn is not None:
            loop.when_idle(after_spawn, at_most=0.2)
        loop.run()

    watch.stop()
    if server is not None:
        server.close()
    from keelrun.supervisor.ending import final_status

    status = final_status(sup)
    if service is not None:
        service.close()
    writer.drain(time.monotonic() + OUTPUT_DRAIN)
    lifeline.close()
    _exit_now(status)
    return status  # not reached


class _Watch:
    """keelrun.watch's session, imported only once some type watches files."""

    def __init__(self, loop: Loop, commands: Commands, never: Callable[[], list[Path]]) -> None:
        self.loop, self.commands, self.never = loop, commands, never
        self.session: WatchSession | None = None

    def update(self, settings: Settings) -> None:
        if self.session is None:
            if not any(t.watch for t in settings.types):
                return
            from keelrun.watch.session import WatchSession

            commands = self.commands
            self.session = WatchSession(
                self.loop,
                lambda c: commands.files_changed(dict(c.types), c.reload),
                lambda message: commands.sup.events.warning(
                    "watch_failed", f"file watch: {message}"
                ),
                lambda dirs: commands.sup.events.info(
                    "watching",
                    f"watching files in {dirs} director{'y' if dirs == 1 else 'ies'}",
                    directories=dirs,
                ),
                self.never,
            )
        self.session.update(settings)

    def stop(self) -> None:
        if self.session is not None:
            self.session.stop()


def _build(
    settings: Settings, loop: Loop, lifeline: Lifeline, kernel: Kernel
) -> tuple[Supervisor, Writer]:
    """The log path (formatter, writer, pipes), the events and the supervisor, wired."""
    from keelrun.logformat import LogFormatter
    from keelrun.supervisor.events import Events
    from keelrun.supervisor.logpipes import LogPipes
    from keelrun.supervisor.supervisor import Supervisor
    from keelrun.supervisor.writer import Writer

    formatter = LogFormatter(
        json_mode=settings.log_format == "json",
        color=_use_color(settings),
        timestamp=settings.timestamp,
        prefix=settings.prefix,
    )
    sup: Supervisor | None = None

    def on_pressure(paused: bool) -> None:
        if sup is not None:
            sup.pipes.set_paused(paused)

    def on_broken() -> None:
        if sup is not None:
            sup.shutdown.request(1, reason="stdout closed")

    def register_writable(fd: int, on: bool) -> None:
        import selectors

        loop.set_events(fd, selectors.EVENT_WRITE if on else 0, writer.on_writable)

    writer = Writer(on_pressure, on_broken, register_writable)
    loop.after_iteration(writer.flush)
    pipes = LogPipes(loop, formatter, writer)
    pipes.strip_escapes = settings.log_format == "json" or not os.isatty(1)
    events = Events(formatter, writer.queue)
    sup = Supervisor(settings, loop, events, pipes, kernel, extra_env=lifeline.env)
    return sup, writer


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
