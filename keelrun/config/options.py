"""Every option and every per-type key, declared once.

An ``Option`` is the one place that spells a setting: its flags (cli.py makes
the click options from it), its ``KEELRUN_`` variable and config key (the
loader reads them by the precedence in README "Precedence"), its checker,
default and help. To add one:

- an option: one ``Option`` here and, with ``setting=True``, the field of the
  same name in ``keelrun.settings.Settings`` (the loader fills it);
- a per-type key: one ``TYPE_KEYS`` entry and the field of the same name in
  ``ProcessTypeSettings``; ``inherit`` makes a top-level option its default;
- a flag that sets a per-type key for the types it names (``--tty TYPE``):
  the ``Option`` (``config=False``) and a few lines in ``loader.build_types``.

tests/test_options.py then wants a rejected value of the new option in BAD,
and the README's config example and variable list must name it.
"""

from __future__ import annotations

import signal
from typing import Any, Literal, NamedTuple

from keelrun.config.values import (
    Checker,
    to_bool,
    to_count,
    to_int,
    to_log_format,
    to_names,
    to_path,
    to_paths,
    to_port,
    to_restart,
    to_seconds,
    to_signal,
    to_type_names,
    to_watch,
)
from keelrun.healthspec import TYPE_KEYS as HEALTH_KEYS
from keelrun.settings import DEFAULT_MAX_RESTARTS, DEFAULT_PORT, DEFAULT_TIMEOUT

# "value": takes an argument; "multiple": repeatable, a tuple; "flag": true when
# given; "switch": --x/--no-x, true, false or not given.
Kind = Literal["value", "multiple", "flag", "switch"]

# Commands that read the app's inputs, and those that talk to a running keelrun.
INPUT_COMMANDS = ("start", "check", "run", "release", "export")
CLIENT_COMMANDS = ("scale", "ps", "stop", "restart", "signal", "logs", "reload", "top", "attach")


class Option(NamedTuple):
    name: str  # the Overrides attribute, config key and (with ``setting``) Settings field
    flags: tuple[str, ...]  # click spellings; "--x/--no-x" for a switch
    help: str
    commands: tuple[str, ...]
    metavar: str | None = None
    kind: Kind = "value"
    check: Checker | None = None
    default: Any = None
    env: bool = True  # read KEELRUN_<NAME> from the real environment
    config: bool = True  # a top-level key of the config file
    setting: bool = False  # the loader copies the value into Settings.<name>

    @property
    def var(self) -> str:
        return "KEELRUN_" + self.name.upper()

    @property
    def flag(self) -> str:
        """The spelling errors name: the first long flag."""
        for spelling in self.flags:
            if spelling.startswith("--"):
                return spelling.split("/")[0]
        return self.flags[0]


OPTIONS: tuple[Option, ...] = (
    Option(
        "app_root",
        ("-d", "--app-root"),
        "App root (default: the current directory).",
        INPUT_COMMANDS + CLIENT_COMMANDS,
        metavar="DIR",
        env=False,
        config=False,
    ),
    Option(
        "procfile",
        ("-f", "--procfile"),
        "Procfile (default: <app-root>/Procfile).",
        INPUT_COMMANDS,
        metavar="PATH",
        check=to_path,
        config=False,
    ),
    Option(
        "env_files",
        ("-e", "--env"),
        "Env file (repeatable or comma-separated); replaces the default .env.",
        INPUT_COMMANDS,
        metavar="FILE",
        kind="multiple",
        check=to_paths,
    ),
    Option(
        "env_override",
        ("--env-override/--no-env-override",),
        "Let .env files win over the real environment (as honcho does).",
        INPUT_COMMANDS,
        kind="switch",
        check=to_bool,
        default=False,
        setting=True,
    ),
    Option(
        "formation",
        ("-m", "-c", "--formation", "--concurrency"),
        "Instances per type, e.g. web=2,worker=0,all=1 (repeatable).",
        ("start", "check", "export"),
        metavar="SPEC",
        kind="multiple",
    ),
    Option(
        "port",
        ("-p", "--port"),
        "Base port (default: $PORT or 5000).",
        INPUT_COMMANDS,
        metavar="N",
        check=to_port,
        default=DEFAULT_PORT,
    ),
    Option(
        "timeout",
        ("-t", "--timeout"),
        "Grace before SIGKILL (default 5).",
        ("start", "export"),
        metavar="SECONDS",
        check=to_seconds,
        default=DEFAULT_TIMEOUT,
        setting=True,
    ),
    Option(
        "restart",
        ("--restart",),
        "on-failure (default), always or never.",
        ("start", "export"),
        metavar="POLICY",
        check=to_restart,
        default="on-failure",
    ),
    Option(
        "max_restarts",
        ("--max-restarts",),
        "Failed starts in a row before giving up.",
        ("start", "export"),
        metavar="N",
        check=to_int,
        default=DEFAULT_MAX_RESTARTS,
    ),
    Option(
        "exit_code_from",
        ("--exit-code-from",),
        "When TYPE's instances have ended, stop the rest; exit with TYPE's status.",
        ("start",),
        metavar="TYPE",
        setting=True,  # checked against the Procfile's types by the loader
    ),
    Option(
        "abort_on_exit",
        ("--abort-on-exit",),
        "Stop everything when an instance ends and is not restarted (as honcho does).",
        ("start",),
        kind="flag",
        check=to_bool,
        default=False,
        setting=True,
    ),
    Option(
        "log_format",
        ("--log-format",),
        "text (default) or json.",
        ("start", "logs"),
        metavar="FORMAT",
        check=to_log_format,
        default="text",
        setting=True,
    ),
    Option(
        "color",
        ("--color/--no-color",),
        "Colour the prefixes (default: on a terminal, unless NO_COLOR is set).",
        ("start", "logs"),
        kind="switch",
        env=False,
        config=False,
        setting=True,
    ),
    Option(
        "no_timestamp",
        ("--no-timestamp",),
        "Leave out the time.",
        ("start", "logs"),
        kind="flag",
        env=False,
        config=False,
    ),
    Option(
        "no_prefix",
        ("--no-prefix",),
        "Leave out time and name.",
        ("start", "logs"),
        kind="flag",
        env=False,
        config=False,
    ),
    Option(
        "quiet",
        ("-q", "--quiet"),
        "Do not print these types' lines (kept for `keelrun logs`); repeatable or a,b.",
        ("start",),
        metavar="TYPE",
        kind="multiple",
        check=to_type_names,
        default=(),
    ),
    Option(
        "tty",
        ("--tty",),
        "Run TYPE on a terminal of its own, as tty = true (repeatable or comma-separated).",
        ("start",),
        metavar="TYPE",
        kind="multiple",
        check=to_type_names,
        default=(),
        env=False,
        config=False,
    ),
    Option(
        "watch",
        ("--watch",),
        'Restart a type when its files change; types without a `watch` key watch "**/*.py".',
        ("start",),
        kind="flag",
        check=to_bool,
        default=False,
    ),
    Option(
        "socket",
        ("--socket",),
        "Control socket (default: <app-root>/.keelrun.sock; clients also look in parents).",
        ("start", *CLIENT_COMMANDS),
        metavar="PATH",
        check=to_path,
    ),
    Option(
        "run_release",
        ("--release",),
        "Run the release type first.",
        ("start",),
        kind="flag",
        env=False,
        config=False,
    ),
)

BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}
CONFIG_KEYS: tuple[str, ...] = (*(o.name for o in OPTIONS if o.config), "processes")


class TypeKey(NamedTuple):
    """A key of ``[processes.<type>]``: its checker and default.

    ``inherit`` names the top-level option whose value is the default instead
    (``grace`` defaults to ``timeout``).
    """

    check: Checker
    default: Any = None
    inherit: str | None = None


TYPE_KEYS: dict[str, TypeKey] = {
    "count": TypeKey(to_count, 1),
    "restart": TypeKey(to_restart, inherit="restart"),
    "grace": TypeKey(to_seconds, inherit="timeout"),
    "stop_signal": TypeKey(to_signal, signal.SIGTERM),
    "depends_on": TypeKey(to_names, ()),
    # ready, health, their timings, watchdog, success_codes (keelrun/healthspec.py)
    **{key: TypeKey(check, default) for key, (check, default) in HEALTH_KEYS.items()},
    "watch": TypeKey(to_watch, ()),
    "tty": TypeKey(to_bool, False),
}


class Overrides:
    """What the command line gave, by option name, as typed (validated by the loader).

    ``Overrides(app_root="app", port="8000")``; a name that is not an option is
    a TypeError. An option not given reads as None; ``only_types`` are the TYPE
    arguments of ``keelrun start``.
    """

    __slots__ = ("given", "only_types")

    def __init__(self, only_types: tuple[str, ...] | list[str] = (), **given: Any) -> None:
        unknown = sorted(set(given) - set(BY_NAME))
        if unknown:
            raise TypeError(f"Overrides: not an option: {', '.join(unknown)}")
        self.only_types = tuple(only_types)
        self.given: dict[str, Any] = {}
        for name, value in given.items():
            if BY_NAME[name].kind == "multiple" and isinstance(value, str):
                value = (value,)
            elif isinstance(value, list):
                value = tuple(value)
            if value is not None and value != ():
                self.given[name] = value

    @classmethod
    def from_cli(cls, **kw: Any) -> Overrides:
        return cls(**kw)

    def __getattr__(self, name: str) -> Any:
        if name in BY_NAME:
            return self.given.get(name)
        raise AttributeError(name)

    def __repr__(self) -> str:
        given = ", ".join(f"{k}={v!r}" for k, v in self.given.items())
        return f"Overrides({given}, only_types={self.only_types!r})"
