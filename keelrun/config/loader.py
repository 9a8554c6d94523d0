"""The precedence loader: flags > KEELRUN_* variables > config file > defaults.

One pass over every source (README "Precedence"): problems are collected,
not raised one by one, so that ``keelrun check`` reports them all. KEELRUN_*
variables are read from the real environment only, never from .env files
(which they select).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from keelrun.config import files
from keelrun.config.dependencies import dependency_errors
from keelrun.config.files import ConfigFile, absolute, app_root_path, display_path, read_config
from keelrun.config.options import BY_NAME, CONFIG_KEYS, OPTIONS, TYPE_KEYS, Option, Overrides
from keelrun.config.values import MAX_PORT, from_toml, show, to_formation, to_port
from keelrun.control.address import DEFAULT_NAME
from keelrun.errors import InputError, InputErrors
from keelrun.settings import (
    DEFAULT_PORT,
    DEFAULT_WATCH,
    RELEASE_TYPE,
    ProcessTypeSettings,
    Settings,
)

T = TypeVar("T")


class Loaded(NamedTuple):
    """Settings plus where they came from, for ``keelrun check``."""

    settings: Settings
    procfile_label: str
    config_label: str | None  # "pyproject.toml [tool.keelrun]", "keelrun.toml" or None
    env_labels: tuple[str, ...]
    count_sources: dict[str, str]  # type -> the source that set its count, when one did


def load_settings(
    overrides: Overrides,
    environ: Mapping[str, str] | None = None,
    *,
    require_procfile: bool = True,
    cwd: Path | None = None,
) -> Settings:
    """Every source read and validated into one Settings; InputErrors lists all problems.

    ``require_procfile=False`` (for ``keelrun run``) lets a missing Procfile
    mean "no process types"; a broken one is still an error. ``cwd``: what
    relative paths of flags and KEELRUN_ variables are relative to (default:
    the current directory; a reload passes the one keelrun was started in).
    """
    loaded = inspect(overrides, environ, require_procfile=require_procfile, cwd=cwd)
    return loaded.settings


def inspect(
    overrides: Overrides,
    environ: Mapping[str, str] | None = None,
    *,
    require_procfile: bool = True,
    cwd: Path | None = None,
) -> Loaded:
    env = dict(os.environ if environ is None else environ)
    return _Loader(overrides, env, require_procfile, cwd or Path.cwd()).load()


# Options whose sources the loader reads in a way of their own (see their methods).
_READ_APART = ("procfile", "env_files", "formation", "port", "socket", "exit_code_from")


class _Picked(NamedTuple):
    value: object
    where: str
    base: Path  # what relative paths are relative to
    toml: bool = False  # from the config file: TOML's types, not text (values.from_toml)


class _Loader:
    def __init__(
        self, overrides: Overrides, environ: dict[str, str], require_procfile: bool, cwd: Path
    ):
        self.o = overrides
        self.cwd = cwd
        self.environ = environ
        self.require_procfile = require_procfile
        self.errors: list[InputError] = []
        self.config: ConfigFile | None = None
        self.root = cwd
        self.values: dict[str, Any] = {}
        self.count_sources: dict[str, str] = {}

    def attempt(self, fn: Callable[..., T], *args: Any, default: T) -> T:
        try:
            return fn(*args)
        except InputErrors as e:
            self.errors.extend(e.errors)
        except InputError as e:
            self.errors.append(e)
        return default

    def pick(self, opt: Option) -> _Picked | None:
        """The highest source that sets ``opt``: flag, KEELRUN_ variable, config file."""
        given = self.o.given.get(opt.name)
        if given is not None:
            return _Picked(given, opt.flag, self.cwd)
        if opt.env and self.environ.get(opt.var, "").strip():
            return _Picked(self.environ[opt.var], opt.var, self.cwd)
        if opt.config and self.config is not None and opt.name in self.config.data:
            where = self.config.where(opt.name)
            return _Picked(self.config.data[opt.name], where, self.root, toml=True)
        return None

    def checked(self, check: Callable[[object, str], T], picked: _Picked, default: T) -> T:
        if picked.toml:
            return self.attempt(from_toml, check, picked.value, picked.where, default=default)
        return self.attempt(check, picked.value, picked.where, default=default)

    def value(self, name: str) -> Any:
        """The checked value of option ``name`` from the highest source, or its default.

        Each option is checked once, so that a bad value is reported once.
        """
        if name not in self.values:
            opt = BY_NAME[name]
            picked = self.pick(opt)
            if picked is None:
                value = opt.default
            elif opt.check is None:
                value = picked.value
            else:
                value = self.checked(opt.check, picked, default=opt.default)
            self.values[name] = value
        return self.values[name]

    def load(self) -> Loaded:
        self.root = app_root_path(self.o.app_root, self.cwd)
        if not self.root.is_dir():
            where = "--app-root"
            raise InputErrors([InputError(where, f'no such directory "{self.o.app_root}"')])
        self.config = self.attempt(read_config, self.root, default=None)
        if self.config is not None:
            self.check_keys(self.config.data, CONFIG_KEYS, ())

        procfile, procfile_label, entries = self.load_procfile()
        env_override = self.value("env_override")
        env_files = self.load_env_files()
        from keelrun import envfile

        merged = envfile.merge(env_files, self.environ, env_override)
        for opt in OPTIONS:  # the rest, in the order of the table (errors come in that order)
            if opt.name not in _READ_APART:
                self.value(opt.name)
        port = self.base_port(merged)
        socket, socket_named = self.socket()

        names = [e.name for e in entries]
        per_type = self.per_type(names)
        counts = self.counts(names, per_type)
        self.values["exit_code_from"] = self.exit_code_from(names)
        types, release = self.build_types(entries, per_type, counts, port, procfile_label)
        if self.o.only_types:
            self.check_only_types(names)
        if self.errors:
            raise InputErrors(self.errors)

        settings = Settings(
            app_root=self.root,
            procfile=procfile,
            types=tuple(types),
            release=release,
            env=merged.env,
            env_files=tuple(f.path for f in env_files),
            port=port,
            timestamp=not (self.o.no_timestamp or self.o.no_prefix),
            prefix=not self.o.no_prefix,
            socket=socket,
            socket_named=socket_named,
            **{o.name: self.value(o.name) for o in OPTIONS if o.setting},
        )
        return Loaded(
            settings,
            procfile_label,
            self.config.describe() if self.config else None,
            tuple(f.label for f in env_files),
            self.count_sources,
        )

    # -- pieces

    def build_types(
        self,
        entries: list[Any],
        per_type: dict[str, dict[str, Any]],
        counts: dict[str, int],
        port: int,
        procfile_label: str,
    ) -> tuple[list[ProcessTypeSettings], ProcessTypeSettings | None]:
        """Every type's settings: its config table, else the option it inherits, else
        the default of its key (keelrun/config/options.py TYPE_KEYS). An inherited
        option given by flag or KEELRUN_ variable beats the config file, a type's
        own table included (`-t 2` is every type's grace; README "Precedence")."""
        inherited = {k: self.value(t.inherit) for k, t in TYPE_KEYS.items() if t.inherit}
        forced = set()
        for key, spec in TYPE_KEYS.items():
            picked = self.pick(BY_NAME[spec.inherit]) if spec.inherit else None
            if picked is not None and not picked.toml:
                forced.add(key)
        max_restarts = self.value("max_restarts")
        quiet = self.named_types("quiet", [e.name for e in entries])
        watch_all = self.value("watch")
        on_tty = self.named_types("tty", [e.name for e in entries])
        types: list[ProcessTypeSettings] = []
        release: ProcessTypeSettings | None = None
        for index, entry in enumerate(entries):
            conf = per_type.get(entry.name, {})
            values = {
                key: conf[key]
                if key in conf and key not in forced
                else inherited.get(key, spec.default)
                for key, spec in TYPE_KEYS.items()
            }
            values["count"] = counts.get(entry.name, 1)
            if watch_all and not values["watch"]:
                values["watch"] = DEFAULT_WATCH
            if entry.name in on_tty:
                values["tty"] = True
            # Its own table decides; a --restart for every type does not make a test run
            # run again (README "Exit policy").
            if entry.name == self.values["exit_code_from"] and "restart" not in conf:
                values["restart"] = "never"  # a test run whose status keelrun exits with
            t = ProcessTypeSettings(
                name=entry.name,
                command=entry.command,
                index=index,
                base_port=port + 100 * index,
                max_restarts=max_restarts,
                quiet=entry.name in quiet,
                **values,
            )
            if entry.name == RELEASE_TYPE:
                release = t
                continue
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
        return types, release

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

        picked = self.pick(BY_NAME["procfile"])
        path = self.root / "Procfile"
        if picked is not None:
            name = self.attempt(BY_NAME["procfile"].check, picked.value, picked.where, default="")
            if not name:
                return path, display_path(path), []
            path = absolute(name, picked.base)
        label = display_path(path)
        if not self.require_procfile and not files.present(path):
            return path, label, []
        entries, errors = load_procfile_partial(path, label)
        self.errors.extend(errors)
        return path, label, entries

    def load_env_files(self) -> list[Any]:
        from keelrun import envfile

        opt = BY_NAME["env_files"]
        picked = self.pick(opt)
        if picked is None:
            default = self.root / ".env"
            if not files.present(default):
                return []
            paths = [default]
        else:
            names = self.attempt(opt.check, picked.value, picked.where, default=())
            paths = [absolute(n, picked.base) for n in names]
        read = []
        for path in paths:
            if picked is not None and not files.present(path):
                self.errors.append(
                    InputError(display_path(path), f"no such file (named by {picked.where})")
                )
                continue
            f = self.attempt(envfile.read_env_file, path, display_path(path), default=None)
            if f is not None:
                read.append(f)
        return read

    def base_port(self, merged: Any) -> int:
        """-p, KEELRUN_PORT, then PORT of the environment and .env, then config ``port``."""
        picked = self.pick(BY_NAME["port"])
        if picked is not None and not picked.toml:
            return self.attempt(to_port, picked.value, picked.where, default=DEFAULT_PORT)
        # The config's port is checked even where PORT overrides it.
        config_port = self.checked(to_port, picked, DEFAULT_PORT) if picked else DEFAULT_PORT
        if "PORT" in merged.env and merged.env["PORT"].strip():
            where = f"{merged.sources.get('PORT', 'environment')}: PORT"
            return self.attempt(to_port, merged.env["PORT"], where, default=DEFAULT_PORT)
        return config_port

    def socket(self) -> tuple[Path, bool]:
        """The control socket, and whether it was named (a named one never moves)."""
        opt = BY_NAME["socket"]
        picked = self.pick(opt)
        if picked is None:
            return self.root / DEFAULT_NAME, False
        name = self.attempt(opt.check, picked.value, picked.where, default="")
        return (absolute(name, picked.base), True) if name else (self.root / DEFAULT_NAME, False)

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
                self.errors.append(InputError(config.where(*at), _unknown_type(name, names)))
                continue
            self.check_keys(table, tuple(TYPE_KEYS), at)
            conf: dict[str, Any] = {}
            for key, spec in TYPE_KEYS.items():
                if key in table:
                    where = config.where(*at, key)
                    value = self.attempt(from_toml, spec.check, table[key], where, default=None)
                    if value is not None:
                        conf[key] = value
            if name == RELEASE_TYPE and "count" in table:
                self.errors.append(
                    InputError(config.where(*at, "count"), "release is not part of the formation")
                )
            result[name] = conf
        if result:
            self.errors.extend(dependency_errors(result, names, config.where))
        return result

    def counts(self, names: list[str], per_type: dict[str, dict[str, Any]]) -> dict[str, int]:
        types = [n for n in names if n != RELEASE_TYPE]
        counts = {n: per_type.get(n, {}).get("count", 1) for n in types}
        if self.config is not None:
            for n in types:
                if "count" in per_type.get(n, {}):
                    self.count_sources[n] = self.config.where("processes", n, "count")
        # Lowest source first, so that a higher one's named types win.
        opt = BY_NAME["formation"]
        layers: list[_Picked] = []
        if self.config is not None and "formation" in self.config.data:
            where = self.config.where("formation")
            layers.append(_Picked(self.config.data["formation"], where, self.root, toml=True))
        if self.environ.get(opt.var, "").strip():
            layers.append(_Picked(self.environ[opt.var], opt.var, self.root))
        for layer in layers:
            where = layer.where
            formation = self.checked(to_formation, layer, default=None)
            if formation is not None and names:
                counts = self.apply(counts, formation, where, types)
        # Repeated -m merge, left to right, into one formation: `-m web=2 -m worker=3`
        # is `-m web=2,worker=3`, and an `all=N` sets the types no -m names.
        merged: dict[str, int] = {}
        for value in self.o.given.get("formation", ()):
            merged.update(self.attempt(to_formation, value, opt.flag, default={}))
        if merged and names:
            counts = self.apply(counts, merged, opt.flag, types)
        return counts

    def apply(
        self, counts: dict[str, int], formation: dict[str, int], where: str, types: list[str]
    ) -> dict[str, int]:
        """``apply_formation``, noting which types ``where`` set (for messages)."""
        from keelrun.formation import ALL, apply_formation

        result = self.attempt(apply_formation, counts, formation, where, types, default=counts)
        if result is not counts:
            for name in types:
                if name in formation or ALL in formation:
                    self.count_sources[name] = where
        return result

    def named_types(self, option: str, names: list[str]) -> set[str]:
        """The types an option such as ``--quiet`` names, each checked against the Procfile."""
        given = self.value(option) or ()
        picked = self.pick(BY_NAME[option])
        for name in given:
            if names and name not in names and picked is not None:
                self.errors.append(InputError(picked.where, _unknown_type(name, names)))
        return set(given)

    def exit_code_from(self, names: list[str]) -> str | None:
        """``--exit-code-from TYPE``: a type of the Procfile (not release)."""
        from keelrun.healthspec import parse_exit_code_from

        picked = self.pick(BY_NAME["exit_code_from"])
        if picked is None:
            return None
        types = [n for n in names if n != RELEASE_TYPE] or [str(picked.value).strip()]
        return self.attempt(parse_exit_code_from, picked.value, picked.where, types, default=None)

    def check_only_types(self, names: list[str]) -> None:
        known = [n for n in names if n != RELEASE_TYPE]
        for name in self.o.only_types:
            if name == RELEASE_TYPE and name in names:
                why = "is the release phase, not part of the formation"
                run_it = "run it with `keelrun start --release` or `keelrun release`"
                self.errors.append(InputError("TYPE", f'"{name}" {why}: {run_it}'))
            elif name not in known and names:
                self.errors.append(InputError("TYPE", _unknown_type(name, names)))


def _unknown_type(name: str, names: list[str]) -> str:
    from keelrun.formation import unknown_type

    return unknown_type(name, [n for n in names if n != RELEASE_TYPE])
