"""``keelrun export supervisord``: one self-contained ``<app>.conf``.

``supervisord -c DIR/<app>.conf`` runs the formation in the foreground, logging
to its stdout; ``supervisorctl -c DIR/<app>.conf status`` talks to it over a
Unix socket next to the config. Each type is a ``[program:<type>]`` of group
``<app>`` whose processes are named ``web.1``, ``web.2``, ... like keelrun's.
"""

from __future__ import annotations

import re
import shlex

from keelrun.errors import InputError
from keelrun.export.names import unit_name
from keelrun.export.output import SECRET_MODE, OutputFile
from keelrun.export.plan import ExportPlan, grace_seconds, instance_script
from keelrun.settings import ProcessTypeSettings

_NUMBER = "\0"  # stands for %(process_num)d while the command is escaped

# keelrun's policy -> autorestart. "unexpected" restarts when the exit status is
# not in exitcodes (0) or the process died by a signal, as keelrun's on-failure.
AUTORESTART = {"on-failure": "unexpected", "always": "true", "never": "false"}

# supervisord's ini parser treats `;` or `#` after whitespace as a comment.
_COMMENT_START = re.compile(r"(\s)([;#])")


def command_value(script: str) -> str:
    """``/bin/sh -c SCRIPT`` as a supervisord ``command=`` that yields SCRIPT verbatim.

    supervisord %-expands the value, then splits it with shlex (POSIX rules), so:
    a single-quoted shell word, ``%`` doubled, and an empty ``''`` between a blank
    and a ``;``/``#`` (blanks only occur inside the quotes, where ``''`` closes
    and reopens them without changing the word).
    """
    word = shlex.quote(script.replace("%", "%%"))
    word = _COMMENT_START.sub(r"\1''\2", word)
    return f"/bin/sh -c {word}".replace(_NUMBER, "%(process_num)d")


def plain_value(value: str, where: str) -> str:
    """A path or name written as-is; refused if supervisord would misread it."""
    if _COMMENT_START.search(value) or "\n" in value:
        raise InputError(where, "cannot be written into a supervisord config")
    return value.replace("%", "%%")


def env_source_line(key: str, value: str, override: bool) -> str:
    assignment = f"export {key}={shlex.quote(value)}"
    # Without env_override the environment supervisord gives wins (README "Precedence").
    return assignment if override else f'[ -n "${{{key}+x}}" ] || {assignment}'


def render_program(plan: ExportPlan, t: ProcessTypeSettings, env_source: str | None) -> str:
    script = instance_script(t, _NUMBER, source=env_source)
    lines = [
        f"[program:{t.name}]",
        f"command={command_value(script)}",
        "process_name=%(program_name)s.%(process_num)d",
        # supervisord needs one process at least; a type scaled to 0 is not started.
        f"numprocs={max(t.count, 1)}",
        "numprocs_start=1",
        f"autostart={'true' if t.count > 0 else 'false'}",
        f"directory={plain_value(str(plan.app_root), str(plan.app_root))}",
        f"autorestart={AUTORESTART[t.restart]}",
        "exitcodes=0",
        "startsecs=1",
        f"startretries={t.max_restarts}",
        f"stopsignal={t.stop_signal.name.removeprefix('SIG')}",
        f"stopwaitsecs={grace_seconds(t)}",
        "stopasgroup=true",
        "killasgroup=true",
        "redirect_stderr=true",
        "stdout_logfile=/dev/stdout",
        "stdout_logfile_maxbytes=0",
    ]
    return "\n".join(lines) + "\n"


def render_config(plan: ExportPlan, group: str, env_source: str | None) -> str:
    types = plan.settings.types
    sock = f"%(here)s/{group}-supervisor.sock"
    head = [
        f"; Every process type of {plan.app_root}, exported by keelrun.",
        f";   run:   supervisord -c {group}.conf",
        f";   query: supervisorctl -c {group}.conf status",
        "[supervisord]",
        "nodaemon=true",
        "logfile=/dev/null",
        "logfile_maxbytes=0",
        f"pidfile=%(here)s/{group}-supervisord.pid",
        "",
        "[unix_http_server]",
        f"file={sock}",
        "chmod=0700",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{sock}",
        "",
        f"[group:{group}]",
        f"programs={','.join(t.name for t in types)}",
        "",
    ]
    programs = [render_program(plan, t, env_source) for t in types]
    return "\n".join(head) + "\n" + "\n".join(programs)


def render_env_source(plan: ExportPlan) -> str:
    override = plan.settings.env_override
    lines = ["# Values from the app's .env files, exported by keelrun --include-env."]
    lines += [env_source_line(k, v, override) for k, v in plan.env_values.items()]
    return "\n".join(lines) + "\n"


def render(plan: ExportPlan) -> list[OutputFile]:
    group = unit_name(plan.app)
    env_name = f"{group}.env.sh"
    env_source = str(plan.directory / env_name) if plan.include_env else None
    files = [OutputFile(f"{group}.conf", render_config(plan, group, env_source))]
    if plan.include_env:
        files.append(OutputFile(env_name, render_env_source(plan), SECRET_MODE))
    return files
