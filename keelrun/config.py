"""Configuration: flags > KEELRUN_* variables > [tool.keelrun] / keelrun.toml > defaults.

INTERFACE (owned by the foundation work; the supervisor, the control socket and
export only call what is declared here):

- ``Overrides``: what the command line gave (None / empty = not given).
- ``load_settings(overrides, environ=None) -> Settings``: read every source,
  validate, and return the immutable Settings; raises ``InputErrors`` listing
  every problem found (each naming file+line or file+key).
- ``resolve_socket_path(app_root, socket, environ=None) -> Path``: the control
  socket a client should use, by the same precedence (flag, KEELRUN_SOCKET,
  config ``socket``, ``<app-root>/.keelrun.sock``), cheap enough for clients.

Paths on the command line and in KEELRUN_* variables are relative to the
current directory; paths in a config file are relative to the app root.
KEELRUN_* variables are read from the real environment only, never from .env
files (which they select).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from keelrun.errors import InputError, InputErrors
from keelrun.settings import (
    DEFAULT_MAX_RESTARTS,
    DEFAULT_PORT,
    DEFAULT_READY_TIMEOUT,
    DEFAULT_TIMEOUT,
    MAX_COUNT,
    RELEASE_TYPE,
    LogFormat,
    ProcessTypeSettings,
    ReadyCheck,
    RestartPolicy,
    Settings,
)

T = TypeVar("T")

PYPROJECT = "pyproject.toml"
KEELRUN_TOML = "keelrun.toml"
DEFAULT_SOCKET = ".keelrun.sock"
RESTART_POLICIES = ("on-failure", "always", "never")
LOG_FORMATS = ("text", "json")
MAX_PORT = 65535

# Options that every source may set: (flag spelling, KEELRUN_ variable).
OPTIONS: dict[str, tuple[str, str]] = {
    "procfile": ("--procfile", "KEELRUN_PROCFILE"),
    "formation": ("--formation", "KEELRUN_FORMATION"),
    "port": ("--port", "KEELRUN_PORT"),
    "timeout": ("--timeout", "KEELRUN_TIMEOUT"),
    "restart": ("--restart", "KEELRUN_RESTART"),
    "max_restarts": ("--max-restarts", "KEELRUN_MAX_RESTARTS"),
    "log_format": ("--log-format", "KEELRUN_LOG_FORMAT"),
    "env_files": ("--env", "KEELRUN_ENV_FILES"),
    "env_override": ("--env-override", "KEELRUN_ENV_OVERRIDE"),
    "socket": ("--socket", "KEELRUN_SOCKET"),
}
CONFIG_KEYS = (
    "formation",
    "port",
    "timeout",
    "restart",
    "max_restarts",
    "log_format",
    "env_files",
    "env_override",
    "socket",
    "processes",
)
TYPE_KEYS = ("count", "restart", "grace", "stop_signal", "depends_on", "ready", "ready_timeout")


@dataclass(frozen=True, slots=True)
class Overrides:
    """Values given on the command line, as typed strings (validated by the loader)."""

    app_root: str | None = None
    procfile: str | None = None
    env_files: tuple[str, ...] = ()
    env_override: bool | None = None
    formation: str | None = None
    port: str | None = None
    timeout: str | None = None
    restart: str | None = None
    max_restarts: str | None = None
    log_format: str | None = None
    color: bool | None = None
    no_timestamp: bool | None = None
    no_prefix: bool | None = None
    socket: str | None = None
    only_types: tuple[str, ...] = ()

    @classmethod
    def from_cli(cls, **kw: Any) -> Overrides:
        given = {k: v for k, v in kw.items() if v is not None}
        for key in ("env_files", "only_types"):
            if key in given:
                given[key] = tuple(given[key])
        return cls(**given)


# ---------------------------------------------------------------- public API


def load_settings(
    overrides: Overrides,
    environ: Mapping[str, str] | None = None,
    *,
    require_procfile: bool = True,
) -> Settings:
    """Every source read and validated into one Settings; InputErrors lists all problems.

    ``require_procfile=False`` (for ``keelrun run``) lets a missing Procfile
    mean "no process types"; a broken one is still an error.
    """
    return inspect(overrides, environ, require_procfile=require_procfile).settings


@dataclass(frozen=True, slots=True)
class Loaded:
    """Settings plus where they came from, for ``keelrun check``."""

    settings: Settings
    procfile_label: str
    config_label: str | None  # "pyproject.toml [tool.keelrun]", "keelrun.toml" or None
    env_labels: tuple[str, ...]


def inspect(
    overrides: Overrides,
    environ: Mapping[str, str] | None = None,
    *,
    require_procfile: bool = True,
) -> Loaded:
    env = dict(os.environ if environ is None else environ)
    return _Loader(overrides, env, require_procfile).load()


def resolve_socket_path(
    app_root: str | None, socket: str | None, environ: Mapping[str, str] | None = None
) -> Path:
    """The control socket: flag, KEELRUN_SOCKET, config ``socket``, <app-root>/.keelrun.sock."""
    env = os.environ if environ is None else environ
    root = _app_root(app_root)
    if socket:
        return _absolute(socket, Path.cwd())
    if env.get("KEELRUN_SOCKET"):
        return _absolute(env["KEELRUN_SOCKET"], Path.cwd())
    config = read_config(root)
    if config is not None and "socket" in config.data:
        value = config.data["socket"]
        if not isinstance(value, str) or not value:
            raise InputError(config.where("socket"), f"expected a path, got {show(value)}")
        return _absolute(value, root)
    return root / DEFAULT_SOCKET


# ------------------------------------------------------------ config file


@dataclass(frozen=True, slots=True)
class ConfigFile:
    label: str  # the file as errors name it
    prefix: str  # "tool.keelrun." in pyproject.toml, "" in keelrun.toml
    data: dict[str, Any]

    def where(self, *keys: str) -> str:
        return f"{self.label}: {self.prefix}{'.'.join(keys)}"

    def describe(self) -> str:
        return f"{self.label} [tool.keelrun]" if self.prefix else self.label


def read_config(app_root: Path) -> ConfigFile | None:
    """[tool.keelrun] of pyproject.toml or keelrun.toml (both at once is an error)."""
    found: list[ConfigFile] = []
    pyproject = app_root / PYPROJECT
    if pyproject.is_file():
        data = _read_toml(pyproject)
        tool = data.get("tool")
        if isinstance(tool, dict) and "keelrun" in tool:
            section = tool["keelrun"]
            label = display_path(pyproject)
            if not isinstance(section, dict):
                raise InputError(f"{label}: tool.keelrun", f"expected a table, got {show(section)}")
            found.append(ConfigFile(label, "tool.keelrun.", section))
    toml = app_root / KEELRUN_TOML
    if toml.is_file():
        found.append(ConfigFile(display_path(toml), "", _read_toml(toml)))
    if len(found) == 2:
        raise InputError(
            found[1].label,
            f"configuration is also in {found[0].label} [tool.keelrun]; keep only one of them",
        )
    return found[0] if found else None


_TOML_POSITION = re.compile(r"(.*) \(at line (\d+), column (\d+)\)$")


def _read_toml(path: Path) -> dict[str, Any]:
    import tomllib

    from keelrun.procfile import read_text

    label = display_path(path)
    try:
        return tomllib.loads(read_text(path, label))
    except tomllib.TOMLDecodeError as e:
        m = _TOML_POSITION.match(str(e))
        if m:
            raise InputError(
                f"{label}:{m.group(2)}", f"invalid TOML: {m.group(1)} (column {m.group(3)})"
            ) from None
        raise InputError(label, f"invalid TOML: {e}") from None


# ---------------------------------------------------------- value checking


def show(value: object) -> str:
    """A value as TOML would spell it, for error messages."""
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return str(value)


def to_int(value: object, where: str, minimum: int = 0, maximum: int | None = None) -> int:
    if isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"[+-]?[0-9]{1,18}", text):
            raise InputError(where, f"expected an integer, got {show(value)}")
        number = int(text)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        raise InputError(where, f"expected an integer, got {show(value)}")
    if number < minimum or (maximum is not None and number > maximum):
        bound = f"{minimum}-{maximum}" if maximum is not None else f">= {minimum}"
        raise InputError(where, f"expected an integer {bound}, got {number}")
    return number


def to_count(value: object, where: str) -> int:
    return to_int(value, where, minimum=0, maximum=MAX_COUNT)


def to_seconds(value: object, where: str, positive: bool = False) -> float:
    number: float
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise InputError(where, f"expected a number of seconds, got {show(value)}") from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    else:
        raise InputError(where, f"expected a number of seconds, got {show(value)}")
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        bound = "> 0" if positive else ">= 0"
        raise InputError(where, f"expected a number of seconds {bound}, got {show(value)}")
    return number


def to_bool(value: object, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
    raise InputError(where, f"expected true or false, got {show(value)}")


def to_choice(choices: tuple[str, ...]) -> Callable[[object, str], str]:
    def check(value: object, where: str) -> str:
        if isinstance(value, str) and value.strip() in choices:
            return value.strip()
        raise InputError(where, f"expected one of {', '.join(choices)}, got {show(value)}")

    return check


def to_port(value: object, where: str) -> int:
    return to_int(value, where, minimum=1, maximum=MAX_PORT)


def to_ready(value: object, where: str) -> ReadyCheck:
    if value == "port":
        return ReadyCheck("port")
    if isinstance(value, str) and value.startswith("log:"):
        pattern = value[4:]
        if not pattern:
            raise InputError(where, 'empty pattern in "log:REGEX"')
        try:
            re.compile(pattern)
        except re.error as e:
            raise InputError(where, f"invalid regular expression: {e}") from None
        return ReadyCheck("log", pattern)
    raise InputError(where, f'expected "port" or "log:REGEX", got {show(value)}')


def to_names(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(where, f"expected an array of process types, got {show(value)}")
    return tuple(cast(list[str], value))


def to_paths(value: object, where: str) -> tuple[str, ...]:
    """An array of paths, or one string of comma-separated paths."""
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        parts = [p.strip() for v in value for p in v.split(",")]
    else:
        raise InputError(where, f"expected an array of paths, got {show(value)}")
    if not all(parts):
        raise InputError(where, f"empty path in {show(value)}")
    return tuple(parts)


# ------------------------------------------------------------------ paths


def display_path(path: Path) -> str:
    """A path as messages show it: relative to the current directory when below it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


def _absolute(path: str, base: Path) -> Path:
    p = Path(os.path.expanduser(path))
    return Path(os.path.normpath(p if p.is_absolute() else base / p))


def _app_root(app_root: str | None) -> Path:
    return Path(os.path.abspath(os.path.expanduser(app_root))) if app_root else Path.cwd()


# ----------------------------------------------------------------- loader


@dataclass(frozen=True, slots=True)
class _Value:
    value: object
    where: str
    base: Path  # what relative paths are relative to


class _Loader:
    """One pass over every source; problems are collected, not raised one by one."""

    def __init__(self, overrides: Overrides, environ: dict[str, str], require_procfile: bool):
        self.o = overrides
        self.environ = environ
        self.require_procfile = require_procfile
        self.errors: list[InputError] = []
        self.config: ConfigFile | None = None

    def attempt(self, fn: Callable[..., T], *args: Any, default: T) -> T:
        try:
            return fn(*args)
        except InputErrors as e:
            self.errors.extend(e.errors)
        except InputError as e:
            self.errors.append(e)
        return default

    def pick(self, option: str) -> _Value | None:
        """The highest source that sets ``option``: flag, KEELRUN_ variable, config file."""
        flag, var = OPTIONS[option]
        given = getattr(self.o, option)
        if given not in (None, ()):
            return _Value(given, flag, Path.cwd())
        if self.environ.get(var, "").strip():
            return _Value(self.environ[var], var, Path.cwd())
        if self.config is not None and option in self.config.data:
            return _Value(self.config.data[option], self.config.where(option), self.root)
        return None

    def option(self, option: str, check: Callable[[object, str], T], default: T) -> T:
        picked = self.pick(option)
        if picked is None:
            return default
        return self.attempt(check, picked.value, picked.where, default=default)

    def load(self) -> Loaded:
        self.root = _app_root(self.o.app_root)
        if not self.root.is_dir():
            where = "--app-root"
            raise InputErrors([InputError(where, f'no such directory "{self.o.app_root}"')])
        self.config = self.attempt(read_config, self.root, default=None)
        if self.config is not None:
            self.check_keys(self.config.data, CONFIG_KEYS, ())

        procfile, procfile_label, entries = self.load_procfile()
        env_override = self.option("env_override", to_bool, False)
        env_files = self.load_env_files()
        from keelrun import envfile

        merged = envfile.merge(env_files, self.environ, env_override)

        timeout = self.option("timeout", to_seconds, DEFAULT_TIMEOUT)
        restart = cast(
            RestartPolicy, self.option("restart", to_choice(RESTART_POLICIES), "on-failure")
        )
        max_restarts = self.option("max_restarts", to_int, DEFAULT_MAX_RESTARTS)
        log_format = cast(LogFormat, self.option("log_format", to_choice(LOG_FORMATS), "text"))
        port = self.base_port(merged)
        socket_value = self.pick("socket")
        socket = self.root / DEFAULT_SOCKET
        if socket_value is not None:
            if isinstance(socket_value.value, str) and socket_value.value.strip():
                socket = _absolute(socket_value.value, socket_value.base)
            else:
                got = show(socket_value.value)
                self.errors.append(InputError(socket_value.where, f"expected a path, got {got}"))

        names = [e.name for e in entries]
        per_type = self.per_type(names)
        counts = self.counts(names, per_type)

        types: list[ProcessTypeSettings] = []
        release: ProcessTypeSettings | None = None
        for index, entry in enumerate(entries):
            conf = per_type.get(entry.name, {})
            t = ProcessTypeSettings(
                name=entry.name,
                command=entry.command,
                index=index,
                count=counts.get(entry.name, 1),
                base_port=port + 100 * index,
                restart=conf.get("restart", restart),
                max_restarts=max_restarts,
                grace=conf.get("grace", timeout),
                stop_signal=conf.get("stop_signal", _default_stop_signal()),
                depends_on=conf.get("depends_on", ()),
                ready=conf.get("ready"),
                ready_timeout=conf.get("ready_timeout", DEFAULT_READY_TIMEOUT),
            )
            if entry.name == RELEASE_TYPE:
                release = t
            else:
                types.append(t)
                last = t.port_of(max(t.count, 1))
                if last > MAX_PORT:
                    self.errors.append(
                        InputError(
                            procfile_label,
                            f'type "{t.name}" would get port {last}, above {MAX_PORT} '
                            f"(base port {port})",
                        )
                    )
        if self.o.only_types:
            self.check_only_types(names)
        if self.errors:
            raise InputErrors(self.errors)

        color = self.o.color
        settings = Settings(
            app_root=self.root,
            procfile=procfile,
            types=tuple(types),
            release=release,
            env=merged.env,
            env_files=tuple(f.path for f in env_files),
            env_override=env_override,
            port=port,
            timeout=timeout,
            log_format=log_format,
            color=color,
            timestamp=not (self.o.no_timestamp or self.o.no_prefix),
            prefix=not self.o.no_prefix,
            socket=socket,
        )
        return Loaded(
            settings,
            procfile_label,
            self.config.describe() if self.config else None,
            tuple(f.label for f in env_files),
        )

    # -- pieces

    def check_keys(self, table: Mapping[str, Any], allowed: tuple[str, ...], at: tuple[str, ...]):
        assert self.config is not None
        for key in table:
            if key not in allowed:
                self.errors.append(
                    InputError(
                        self.config.where(*at, key),
                        f"unknown key (known: {', '.join(allowed)})",
                    )
                )

    def load_procfile(self) -> tuple[Path, str, list[Any]]:
        from keelrun.procfile import load_procfile_partial

        picked = self.pick("procfile")
        path = (
            _absolute(str(picked.value), picked.base)
            if picked is not None
            else self.root / "Procfile"
        )
        label = display_path(path)
        if not self.require_procfile and not path.exists():
            return path, label, []
        entries, errors = load_procfile_partial(path, label)
        self.errors.extend(errors)
        return path, label, entries

    def load_env_files(self) -> list[Any]:
        from keelrun import envfile

        picked = self.pick("env_files")
        if picked is None:
            default = self.root / ".env"
            if not default.exists():
                return []
            paths = [default]
        else:
            raw = picked.value
            if isinstance(raw, tuple):  # repeated -e, each maybe comma-separated
                raw = list(raw)
            names = self.attempt(to_paths, raw, picked.where, default=())
            paths = [_absolute(n, picked.base) for n in names]
        files = []
        for path in paths:
            if picked is not None and not path.exists():
                self.errors.append(
                    InputError(display_path(path), f"no such file (named by {picked.where})")
                )
                continue
            f = self.attempt(envfile.read_env_file, path, display_path(path), default=None)
            if f is not None:
                files.append(f)
        return files

    def base_port(self, merged: Any) -> int:
        picked = self.pick("port")
        if picked is not None and picked.where != self.config_where("port"):
            return self.attempt(to_port, picked.value, picked.where, default=DEFAULT_PORT)
        if "PORT" in merged.env and merged.env["PORT"].strip():
            where = f"{merged.sources.get('PORT', 'environment')}: PORT"
            return self.attempt(to_port, merged.env["PORT"], where, default=DEFAULT_PORT)
        if picked is not None:
            return self.attempt(to_port, picked.value, picked.where, default=DEFAULT_PORT)
        return DEFAULT_PORT

    def config_where(self, key: str) -> str | None:
        return self.config.where(key) if self.config else None

    def per_type(self, names: list[str]) -> dict[str, dict[str, Any]]:
        """Validated ``processes.<type>`` tables: {type: {key: value}}."""
        if self.config is None or "processes" not in self.config.data:
            return {}
        config = self.config
        tables = config.data["processes"]
        if not isinstance(tables, dict):
            self.errors.append(
                InputError(config.where("processes"), f"expected a table, got {show(tables)}")
            )
            return {}
        result: dict[str, dict[str, Any]] = {}
        for name, table in tables.items():
            at = ("processes", name)
            if not isinstance(table, dict):
                self.errors.append(
                    InputError(config.where(*at), f"expected a table, got {show(table)}")
                )
                continue
            if names and name not in names:
                self.errors.append(
                    InputError(config.where(*at), f'no process type "{name}" in the Procfile')
                )
                continue
            self.check_keys(table, TYPE_KEYS, at)
            conf: dict[str, Any] = {}
            checks: dict[str, Callable[[object, str], Any]] = {
                "count": to_count,
                "restart": to_choice(RESTART_POLICIES),
                "grace": to_seconds,
                "stop_signal": _to_signal,
                "depends_on": to_names,
                "ready": to_ready,
                "ready_timeout": lambda v, w: to_seconds(v, w, positive=True),
            }
            for key, check in checks.items():
                if key in table:
                    value = self.attempt(check, table[key], config.where(*at, key), default=None)
                    if value is not None:
                        conf[key] = value
            if name == RELEASE_TYPE and "count" in table:
                self.errors.append(
                    InputError(config.where(*at, "count"), "release is not part of the formation")
                )
            result[name] = conf
        self.check_dependencies(result, names)
        return result

    def check_dependencies(self, per_type: dict[str, dict[str, Any]], names: list[str]) -> None:
        assert self.config is not None
        graph: dict[str, tuple[str, ...]] = {}
        for name, conf in per_type.items():
            deps = conf.get("depends_on", ())
            where = self.config.where("processes", name, "depends_on")
            for dep in deps:
                if dep == RELEASE_TYPE:
                    self.errors.append(
                        InputError(where, '"release" runs before the formation, not in it')
                    )
                elif names and dep not in names:
                    self.errors.append(
                        InputError(where, f'no process type "{dep}" in the Procfile')
                    )
            graph[name] = deps
        cycle = _find_cycle(graph)
        if cycle:
            where = self.config.where("processes", cycle[0], "depends_on")
            self.errors.append(InputError(where, "dependency cycle " + " -> ".join(cycle)))

    def counts(self, names: list[str], per_type: dict[str, dict[str, Any]]) -> dict[str, int]:
        from keelrun.formation import apply_formation

        types = [n for n in names if n != RELEASE_TYPE]
        counts = {n: per_type.get(n, {}).get("count", 1) for n in types}
        # Lowest source first, so that a higher one's named types win.
        layers: list[tuple[object, str]] = []
        if self.config is not None and "formation" in self.config.data:
            layers.append((self.config.data["formation"], self.config.where("formation")))
        var = OPTIONS["formation"][1]
        if self.environ.get(var, "").strip():
            layers.append((self.environ[var], var))
        if self.o.formation is not None:
            layers.append((self.o.formation, "--formation"))
        for value, where in layers:
            formation = self.attempt(_formation_value, value, where, default=None)
            if formation is not None and names:
                counts = self.attempt(
                    apply_formation, counts, formation, where, types, default=counts
                )
        return counts

    def check_only_types(self, names: list[str]) -> None:
        known = [n for n in names if n != RELEASE_TYPE]
        for name in self.o.only_types:
            if name not in known and names:
                self.errors.append(
                    InputError(
                        "TYPE", f'no process type "{name}" in the Procfile ({", ".join(known)})'
                    )
                )


def _formation_value(value: object, where: str) -> dict[str, int]:
    from keelrun.formation import parse_formation

    if isinstance(value, str):
        return parse_formation(value, where)
    if not isinstance(value, dict):
        raise InputError(where, f'expected a table or a string "TYPE=N,...", got {show(value)}')
    errors: list[InputError] = []
    counts: dict[str, int] = {}
    for name, count in value.items():
        try:
            counts[name] = to_count(count, f"{where}.{name}")
        except InputError as e:
            errors.append(e)
    if errors:
        raise InputErrors(errors)
    return counts


def _to_signal(value: object, where: str) -> Any:
    from keelrun.signals import parse_signal

    if not isinstance(value, str | int):
        raise InputError(where, f"expected a signal name or number, got {show(value)}")
    return parse_signal(value, where)


def _default_stop_signal() -> Any:
    import signal

    return signal.SIGTERM


def _find_cycle(graph: Mapping[str, tuple[str, ...]]) -> list[str] | None:
    """One dependency cycle as [a, b, ..., a], or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        for dep in graph.get(node, ()):
            found = visit(dep, [*path, node])
            if found:
                return found
        done.add(node)
        return None

    for start in graph:
        found = visit(start, [])
        if found:
            return found
    return None
