"""Configuration: flags > KEELRUN_* variables > [tool.keelrun] / keelrun.toml > defaults.

What the rest of keelrun calls:

- ``Overrides``: what the command line gave (None / empty = not given).
- ``load_settings(overrides, environ=None) -> Settings``: read every source,
  validate, and return the immutable Settings; raises ``InputErrors`` listing
  every problem found (each naming file+line or file+key). ``inspect`` does
  the same and also says where the inputs came from (``Loaded``).
- ``resolve_socket_path(app_root, socket, environ=None) -> Path``: the control
  socket a client should use, by the same precedence (flag, KEELRUN_SOCKET,
  config ``socket``, ``<app-root>/.keelrun.sock``), cheap enough for clients.

The modules: ``options`` declares every option and per-type key once,
``values`` checks values, ``files`` reads the config file, ``loader`` applies
the precedence, ``socketpath`` serves the clients.
"""

from keelrun.config.files import ConfigFile, display_path, read_config
from keelrun.config.loader import Loaded, inspect, load_settings
from keelrun.config.options import Overrides
from keelrun.config.socketpath import resolve_socket_path
from keelrun.config.values import show

__all__ = [
    "ConfigFile",
    "Loaded",
    "Overrides",
    "display_path",
    "inspect",
    "load_settings",
    "read_config",
    "resolve_socket_path",
    "show",
]
