"""Where a client finds the control socket, by the same precedence as ``keelrun start``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from keelrun.config.files import absolute, app_root_path, read_config
from keelrun.config.values import to_path

DEFAULT_SOCKET = ".keelrun.sock"


def resolve_socket_path(
    app_root: str | None, socket: str | None, environ: Mapping[str, str] | None = None
) -> Path:
    """The control socket: flag, KEELRUN_SOCKET, config ``socket``, <app-root>/.keelrun.sock."""
    env = os.environ if environ is None else environ
    root = app_root_path(app_root)
    if socket:
        return absolute(socket, Path.cwd())
    if env.get("KEELRUN_SOCKET"):
        return absolute(env["KEELRUN_SOCKET"], Path.cwd())
    config = read_config(root)
    if config is not None and "socket" in config.data:
        return absolute(to_path(config.data["socket"], config.where("socket")), root)
    return root / DEFAULT_SOCKET
