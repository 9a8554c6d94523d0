"""Configuration: flags > KEELRUN_* variables > [tool.keelrun] / keelrun.toml > defaults.

What the rest of keelrun calls:

- ``Overrides``: what the command line gave (None / empty = not given).
- ``load_settings(overrides, environ=None) -> Settings``: read every source,
  validate, and return the immutable Settings; raises ``InputErrors`` listing
  every problem found (each naming file+line or file+key). ``inspect`` does
  the same and also says where the inputs came from (``Loaded``).

The modules: ``options`` declares every option and per-type key once,
``values`` checks values, ``files`` reads the config file, ``loader`` applies
the precedence. Clients find the control socket with keelrun.control.locate.
"""

from keelrun.config.files import ConfigFile, display_path, read_config
from keelrun.config.loader import Loaded, inspect, load_settings
from keelrun.config.options import Overrides
from keelrun.config.values import show

__all__ = [
    "ConfigFile",
    "Loaded",
    "Overrides",
    "display_path",
    "inspect",
    "load_settings",
    "read_config",
    "show",
]
