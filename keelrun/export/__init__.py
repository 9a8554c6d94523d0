"""``keelrun export FORMAT DIR``: the formation as systemd units, a supervisord config
or Kubernetes manifests (README "Deploying").

Each format is a module with a pure ``render(plan) -> list[OutputFile]``; this
module loads the settings, decides the app name and the .env values, and writes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from keelrun.config import Overrides
from keelrun.errors import InputError
from keelrun.export.output import OutputFile
from keelrun.export.plan import ExportPlan

FORMATS = ("systemd", "supervisord", "kubernetes")


def renderer(fmt: str) -> Callable[[ExportPlan], list[OutputFile]]:
    if fmt == "systemd":
        from keelrun.export.systemd import render
    elif fmt == "supervisord":
        from keelrun.export.supervisord import render
    elif fmt == "kubernetes":
        from keelrun.export.kubernetes import render
    else:
        raise InputError("FORMAT", f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    return render


def _warn(message: str) -> None:
    sys.stderr.write(f"keelrun: warning: {message}\n")


def export_command(
    overrides: Overrides,
    fmt: str,
    directory: str,
    *,
    app_name: str | None,
    image: str | None,
    include_env: bool,
) -> int:
    from keelrun.config import load_settings
    from keelrun.export.envvalues import read_env_values, systemd_caveats
    from keelrun.export.output import prepare_directory, write_files

    render = renderer(fmt)
    settings = load_settings(overrides)
    if app_name is not None and not app_name.strip():
        raise InputError("--app", "must not be empty")
    env = read_env_values(settings.env_files)
    plan = ExportPlan(
        settings=settings,
        app=app_name or settings.app_root.resolve().name,
        directory=prepare_directory(directory),
        include_env=include_env,
        image=image,
        env_values=env.values,
    )
    files = render(plan)  # before writing: a naming error leaves DIR untouched
    for path in write_files(plan.directory, files):
        print(f"wrote {path}")
    for warning in env.warnings + (env.kept if include_env else ()):
        _warn(warning)
    if fmt == "systemd" and not include_env:
        for caveat in systemd_caveats(settings.env_files):
            _warn(f"{caveat}; --include-env writes the values as keelrun reads them")
    return 0
