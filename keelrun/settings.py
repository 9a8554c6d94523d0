"""The one typed, immutable settings object the rest of keelrun reads.

It is produced by ``keelrun.config.load_settings`` from the Procfile, the
.env files, the config file, ``KEELRUN_*`` variables and flags; nothing else
in keelrun reads those sources.
"""

# No ``from __future__ import annotations`` here: typing.NamedTuple compiles every
# annotation it is given as a string (a ForwardRef each), ~1 ms per start for these.

import signal
from pathlib import Path
from typing import Literal, NamedTuple

from keelrun.healthspec import (
    DEFAULT_HEALTH_INTERVAL,
    DEFAULT_HEALTH_RETRIES,
    DEFAULT_PROBE_TIMEOUT,
    DEFAULT_READY_INTERVAL,
    DEFAULT_READY_TIMEOUT,
    DEFAULT_SUCCESS_CODES,
    Check,
    HealthPlan,
)

RestartPolicy = Literal["on-failure", "always", "never"]
LogFormat = Literal["text", "json"]

DEFAULT_PORT = 5000
DEFAULT_TIMEOUT = 5.0
DEFAULT_MAX_RESTARTS = 5
MAX_COUNT = 10_000  # instances of one type: more is a typo, not a formation
RELEASE_TYPE = "release"
DEFAULT_WATCH = ("**/*.py",)  # what --watch watches for a type without its own patterns

# The records below are NamedTuples, not dataclasses: immutable and compared by
# value all the same, but built in a tenth of the time (each @dataclass costs
# about a millisecond at import, and these are on the path of every start).
# Change one with ``_replace``.


class ProcessTypeSettings(NamedTuple):
    """One process type of the Procfile with its resolved per-type settings."""

    name: str
    command: str
    index: int  # position k in the Procfile, every type counted (release too)
    count: int  # desired instances in the formation (0 allowed)
    base_port: int  # port of instance 1: settings.port + 100 * index
    restart: RestartPolicy
    max_restarts: int
    grace: float  # seconds between the stop signal and SIGKILL
    stop_signal: signal.Signals
    depends_on: tuple[str, ...] = ()
    # Health and exit (README "Health: readiness, liveness, notify" and "Exit policy").
    ready: Check | None = None
    ready_timeout: float = DEFAULT_READY_TIMEOUT
    ready_interval: float = DEFAULT_READY_INTERVAL
    probe_timeout: float = DEFAULT_PROBE_TIMEOUT
    health: Check | None = None
    health_interval: float = DEFAULT_HEALTH_INTERVAL
    health_retries: int = DEFAULT_HEALTH_RETRIES
    watchdog: float | None = None
    success_codes: frozenset[int] = DEFAULT_SUCCESS_CODES
    # The development loop and terminals.
    watch: tuple[str, ...] = ()  # glob patterns whose changes restart the type
    quiet: bool = False  # its lines are kept for `keelrun logs` but not printed
    tty: bool = False  # on a pseudo-terminal of its own (README "Terminals")

    @property
    def plan(self) -> HealthPlan:
        """The health keys as one value, for the supervisor's checks and the exports."""
        return HealthPlan(
            ready=self.ready,
            health=self.health,
            ready_interval=self.ready_interval,
            probe_timeout=self.probe_timeout,
            ready_timeout=self.ready_timeout,
            health_interval=self.health_interval,
            health_retries=self.health_retries,
            watchdog=self.watchdog,
            success_codes=self.success_codes,
        )

    def port_of(self, number: int) -> int:
        """Port of instance ``type.number`` (number from 1)."""
        return self.base_port + number - 1


class Settings(NamedTuple):
    app_root: Path
    procfile: Path
    # Every type of the formation in Procfile order; `release` is not among them.
    types: tuple[ProcessTypeSettings, ...]
    # The release phase's command, or None when the Procfile has no `release:`.
    release: ProcessTypeSettings | None
    # The environment every child starts from: real environment and .env files
    # merged by the precedence rule (without PORT/PS/DYNO, which are per instance).
    env: dict[str, str]  # never in the repr (values may be secrets): see __repr__
    env_files: tuple[Path, ...] = ()
    env_override: bool = False
    port: int = 5000
    timeout: float = DEFAULT_TIMEOUT
    log_format: LogFormat = "text"
    color: bool | None = None  # None: colour when stdout is a terminal and NO_COLOR unset
    timestamp: bool = True
    prefix: bool = True
    socket: Path = Path(".keelrun.sock")
    # Named by --socket, KEELRUN_SOCKET or config: never moved to the runtime dir.
    socket_named: bool = False
    # Exit policy: stop everything when this type has ended, exit with its status...
    exit_code_from: str | None = None
    # ...or when any instance ends and will not be restarted.
    abort_on_exit: bool = False

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={value!r}"
            for name, value in zip(self._fields, self, strict=True)
            if name != "env"
        )
        return f"Settings({shown})"

    def all_types(self) -> list[ProcessTypeSettings]:
        """Every Procfile type in Procfile order, ``release`` included (colours follow it)."""
        found = [*self.types, *([self.release] if self.release is not None else [])]
        return sorted(found, key=lambda t: t.index)

    def type_named(self, name: str) -> ProcessTypeSettings | None:
        for t in self.types:
            if t.name == name:
                return t
        return None


class InstanceSpec(NamedTuple):
    """What it takes to run one instance ``type.N``."""

    name: str  # "web.1"
    type: str  # "web"
    number: int  # N, from 1
    port: int
    command: str
