"""What every format renders from: the settings plus the export's own choices."""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from keelrun.environment import shell_exports
from keelrun.settings import ProcessTypeSettings, Settings
from keelrun.supervisor.shellcmd import exec_form


@dataclass(frozen=True, slots=True)
class ExportPlan:
    settings: Settings
    app: str  # as given by --app or the app root's name; each format sanitises it
    directory: Path  # absolute DIR the files are written to
    include_env: bool = False
    image: str | None = None
    # Variables from the .env files only (not the whole environment).
    env_values: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def app_root(self) -> Path:
        return self.settings.app_root.absolute()


def grace_seconds(t: ProcessTypeSettings) -> int:
    """The grace as whole seconds, rounded up (targets that take integers)."""
    return max(1, math.ceil(t.grace))


def instance_script(
    t: ProcessTypeSettings, number: str, *, source: str | None = None, check_number: bool = False
) -> str:
    """A POSIX sh script that runs one instance as ``keelrun start`` runs it.

    ``number`` is a shell-visible token for the instance number (systemd's ``%i``,
    supervisord's ``%(process_num)d``); the instance's variables come from the
    one environment builder. The command then runs as ``/bin/sh -c COMMAND`` in
    the same exec form as under ``keelrun start``, and the script execs that
    shell: the app ends up with the pid the platform started, so the platform's
    stop signal reaches the app itself. ``source`` is a file of variable
    assignments to read first. ``check_number`` refuses a non-numeric instance
    (sh arithmetic would silently read it as 0).
    """
    parts = []
    if check_number:
        parts.append(
            f"case {number} in ''|*[!0-9]*) echo \"{t.name}@{number}: the instance"
            ' must be a number (1, 2, ...)" >&2; exit 2;; esac'
        )
    if source is not None:
        parts.append(f". {shlex.quote(source)}")
    parts.append(shell_exports(t, number))
    parts.append(f"exec /bin/sh -c {shlex.quote(exec_form(t.command))}")
    return "; ".join(parts)
