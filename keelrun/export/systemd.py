"""``keelrun export systemd``: an ``<app>.target`` and a templated ``<app>-<type>@.service``.

``ready = "notify"`` makes a service ``Type=notify`` (the app's READY=1 is
systemd's start), ``watchdog`` its ``WatchdogSec=`` (export/probes.py), and
``depends_on`` wants and orders the exported instances of those types first.

Instance ``<app>-web@3.service`` is ``web.3``: its PORT is the type's base port
+ 3 - 1, computed by the shell from ``%i``. The target wants the exported
formation's instances; ``systemctl enable --now <app>-web@{1..4}.service`` adds
more (each service is WantedBy the target and PartOf it, so stopping the target
stops them all).
"""

from __future__ import annotations

from keelrun.export.names import unit_name
from keelrun.export.output import SECRET_MODE, OutputFile
from keelrun.export.plan import ExportPlan, instance_script
from keelrun.export.probes import systemd_service_lines, time_span
from keelrun.settings import ProcessTypeSettings

_INSTANCE = "\0"  # stands for %i while the script is escaped (never in a command)

# keelrun's policy -> systemd Restart=. on-failure: systemd also restarts on a
# non-zero status or an unclean signal, which is keelrun's reading.
RESTART = {"on-failure": "on-failure", "always": "always", "never": "no"}
RESTART_SEC = 1
# keelrun forgives past failures after 10 s of uptime; a crash loop of
# max_restarts + 1 starts therefore fits in (max_restarts + 1) * (10 + RestartSec).
UPTIME_RESET = 10


def exec_word(text: str) -> str:
    """``text`` as one double-quoted word of an Exec*= line, taken literally."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$").replace("%", "%%")
    return f'"{escaped}"'


def env_file_line(key: str, value: str) -> str:
    """One EnvironmentFile= assignment that systemd reads back as exactly ``value``."""
    if "'" not in value:
        return f"{key}='{value}'"
    for ch in '\\"`$':
        value = value.replace(ch, "\\" + ch)
    return f'{key}="{value}"'


def service_name(app: str, t: ProcessTypeSettings) -> str:
    return f"{app}-{t.name}@.service"


def render_service(plan: ExportPlan, app: str, t: ProcessTypeSettings) -> str:
    script = exec_word(instance_script(t, _INSTANCE, check_number=True)).replace(_INSTANCE, "%i")
    if plan.include_env:
        env_files = [f"EnvironmentFile={plan.directory / f'{app}.env'}"]
    else:
        # The app's own files, read by systemd when the unit starts; with none,
        # the app root's .env should the server have one.
        paths = plan.settings.env_files or (plan.app_root / ".env",)
        env_files = [f"EnvironmentFile={'' if p.is_file() else '-'}{p.absolute()}" for p in paths]
    unit = [
        f"# {t.name} from {plan.settings.procfile.absolute()}, exported by keelrun.",
        f"# Instance N is {t.name}.N on port {t.base_port}+N-1:"
        f" systemctl enable --now {app}-{t.name}@1.service",
        "[Unit]",
        f"Description={app} {t.name}.%i",
        f"PartOf={app}.target",
        "After=network.target",
    ]
    # depends_on: the exported instances of those types first (with Type=notify,
    # once they are ready).
    deps = [
        f"{app}-{d.name}@{n}.service"
        for d in plan.settings.types
        if d.name in t.depends_on
        for n in range(1, d.count + 1)
    ]
    if deps:
        unit += [f"Wants={' '.join(deps)}", f"After={' '.join(deps)}"]
    if t.restart != "never":
        unit += [
            f"StartLimitIntervalSec={(t.max_restarts + 1) * (UPTIME_RESET + RESTART_SEC)}",
            f"StartLimitBurst={t.max_restarts + 1}",
        ]
    unit += [
        "",
        "[Service]",
        *systemd_service_lines(t.plan),
        "# Add User= and Group= (here or in a drop-in) to run as a dedicated account.",
        f"WorkingDirectory={plan.app_root}",
        *env_files,
        f"ExecStart=/bin/sh -c {script}",
        "KillMode=control-group",
        f"KillSignal={t.stop_signal.name}",
        f"TimeoutStopSec={time_span(t.grace)}",
        f"Restart={RESTART[t.restart]}",
        f"RestartSec={RESTART_SEC}s",
        f"SyslogIdentifier={app}-{t.name}.%i",
        "",
        "[Install]",
        f"WantedBy={app}.target",
    ]
    return "\n".join(unit) + "\n"


def render_target(plan: ExportPlan, app: str) -> str:
    wants = [
        f"{app}-{t.name}@{n}.service" for t in plan.settings.types for n in range(1, t.count + 1)
    ]
    lines = [
        f"# Every process type of {plan.app_root}, exported by keelrun.",
        "[Unit]",
        f"Description={app} (keelrun formation)",
    ]
    if wants:
        lines.append(f"Wants={' '.join(wants)}")
    lines += ["", "[Install]", "WantedBy=multi-user.target"]
    return "\n".join(lines) + "\n"


def render_env_file(plan: ExportPlan) -> str:
    lines = ["# Values from the app's .env files, exported by keelrun --include-env."]
    lines += [env_file_line(k, v) for k, v in plan.env_values.items()]
    return "\n".join(lines) + "\n"


def render(plan: ExportPlan) -> list[OutputFile]:
    app = unit_name(plan.app)
    files = [OutputFile(f"{app}.target", render_target(plan, app))]
    files += [
        OutputFile(service_name(app, t), render_service(plan, app, t)) for t in plan.settings.types
    ]
    if plan.include_env:
        files.append(OutputFile(f"{app}.env", render_env_file(plan), SECRET_MODE))
    return files
