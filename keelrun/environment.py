"""The one builder of a process's environment, for `start`, `run` and the exports.

Every process starts from the app's environment (the real one and the .env
files merged by the precedence rule, README "Precedence") and gets:
``PORT``, and ``PS`` = ``DYNO`` = its name (``web.1``; ``run.1`` for
`keelrun run`, as Heroku names one-off dynos); the instances of the
formation also get ``PYTHONUNBUFFERED=1`` unless it is set (a `run` command
talks to a terminal and is left alone). The exports cannot know the
instance number when they are written: they ask for the same variables for
a shell token (systemd's ``%i``) and let the shell compute ``PORT``.
"""

from __future__ import annotations

from collections.abc import Mapping

from keelrun.settings import InstanceSpec, ProcessTypeSettings, Settings

ONEOFF_NAME = "run.1"
# Set for every instance of the formation unless the environment sets them.
DEFAULTS: Mapping[str, str] = {"PYTHONUNBUFFERED": "1"}


def process_variables(name: str, port: int | str) -> dict[str, str]:
    """What identifies one process: its port and its name."""
    return {"PORT": str(port), "PS": name, "DYNO": name}


def _build(base: Mapping[str, str], variables: Mapping[str, str], defaults: bool) -> dict[str, str]:
    env = dict(base)
    env.update(variables)
    if defaults:
        for key, value in DEFAULTS.items():
            env.setdefault(key, value)
    return env


def instance_env(settings: Settings, spec: InstanceSpec) -> dict[str, str]:
    """The full environment of instance ``spec`` under `keelrun start`."""
    return _build(settings.env, process_variables(spec.name, spec.port), defaults=True)


def oneoff_env(settings: Settings) -> dict[str, str]:
    """The environment of `keelrun run`'s command: the base port, ``run.1``, no defaults."""
    return _build(settings.env, process_variables(ONEOFF_NAME, settings.port), defaults=False)


def shell_exports(t: ProcessTypeSettings, number: str) -> str:
    """A POSIX sh ``export`` giving instance ``<type>.<number>`` its variables.

    ``number`` is a shell-visible token that stands for the instance number
    (systemd's ``%i``, supervisord's ``%(process_num)d``): PORT is the type's
    base port + number - 1, computed by the shell, and a default applies only
    where the environment leaves the variable unset (``${VAR-default}``).
    """
    import shlex  # exports only: not worth its import at every start-up

    name = f"{t.name}.{number}"
    variables = process_variables(name, f"$(({t.base_port} + {number} - 1))")
    words = [f"{k}={v}" for k, v in variables.items()]
    words += [f'{k}="${{{k}-{shlex.quote(v)}}}"' for k, v in DEFAULTS.items()]
    return "export " + " ".join(words)
