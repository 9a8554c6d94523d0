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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
