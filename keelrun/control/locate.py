"""Which control socket a client talks to.

``--socket`` or ``KEELRUN_SOCKET``: that path. ``-d DIR``: the socket
``keelrun start -d DIR`` would create (config ``socket``, else
``DIR/.keelrun.sock``). Neither: the current directory and its parents are
searched as git finds ``.git``. Each directory's socket is what ``keelrun
start`` there would create (its config's ``socket`` key, relative to it, else
``.keelrun.sock``) or that socket's stand-in (keelrun.control.address). The
search ends at the first directory with a socket, or at the first app root
(a Procfile, keelrun.toml or ``[tool.keelrun]``) even without one, so that a
client never passes its own app to reach another app's keelrun.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from keelrun.control.address import DEFAULT_NAME, fits, stand_ins


class Target:
    """A socket a client may talk to (a plain class: a dataclass costs a client 2 ms)."""

    __slots__ = ("default", "env", "path", "searched", "where")

    def __init__(
        self,
        path: Path,
        where: str,
        default: bool,
        env: Mapping[str, str],
        searched: Path | None = None,
    ) -> None:
        self.path = path  # the socket as named, or as `keelrun start` would create it
        self.where = where  # what named it: "--socket", "KEELRUN_SOCKET", a config key, or ""
        self.default = default  # the default socket, which `keelrun start` may have moved
        self.env = env
        self.searched = searched  # the search's start, when it found no socket or app root

    def addresses(self) -> Iterator[Path]:
        """Where to connect, in order: the path itself when it fits in a Unix socket
        address, then its stand-ins when it is too long or is a default socket.
        Lazily: the stand-ins' names cost a hashlib import."""
        if self.searched is not None:
            return
        if fits(self.path):
            yield self.path
            if not self.default:
                return
        yield from stand_ins(self.path, self.env, existing=True)


def locate(
    app_root: str | None,
    socket: str | None,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Target:
    here = Path.cwd() if cwd is None else cwd
    env = os.environ if environ is None else environ
    named = ((socket, "--socket"), (env.get("KEELRUN_SOCKET"), "KEELRUN_SOCKET"))
    for value, where in named:
        if value and value.strip():
            return Target(_absolute(value, here), where, False, env)
    if app_root:
        root = _absolute(app_root, here)
        return _target_of(root, _config(root), env)
    return search(here, env)


def search(start: Path, env: Mapping[str, str]) -> Target:
    """The nearest socket in ``start`` or its parents, stopping at the first app root."""
    for directory in (start, *start.parents):
        config = _config(directory)
        target = _target_of(directory, config, env)
        if any(_is_socket(a) for a in target.addresses()):
            return target
        if config is not None or os.path.isfile(directory / "Procfile"):
            return target
    return Target(start / DEFAULT_NAME, "", False, env, searched=start)


def _target_of(root: Path, config: Any, env: Mapping[str, str]) -> Target:
    if config is not None and "socket" in config.data:
        value = config.data["socket"]
        where = config.where("socket")
        if not isinstance(value, str) or not value.strip():
            from keelrun.config import show
            from keelrun.errors import InputError

            raise InputError(where, f"expected a path, got {show(value)}")
        return Target(_absolute(value, root), where, False, env)
    return Target(root / DEFAULT_NAME, "", True, env)


def _config(directory: Path) -> Any:
    """The directory's keelrun config, or None; keelrun.config is imported only when
    there is one to read (it costs a client more than everything else here)."""
    toml = directory / "keelrun.toml"
    pyproject = directory / "pyproject.toml"
    if not os.path.isfile(toml):
        try:
            with open(pyproject, "rb") as f:
                if b"keelrun" not in f.read():
                    return None
        except OSError:
            return None
    from keelrun.config import read_config

    return read_config(directory)


def _is_socket(path: Path) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def _absolute(path: str, base: Path) -> Path:
    p = Path(os.path.expanduser(path))
    return Path(os.path.normpath(p if p.is_absolute() else base / p))
