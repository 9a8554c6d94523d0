"""What a reload changes: a pure comparison of the old and the new settings.

A type is restarted only when what reaches its processes changed: its
command or its environment (any .env change restarts every type; so does a
new base port, which changes PORT, and turning notify or a watchdog on or off,
which changes NOTIFY_SOCKET and WATCHDOG_USEC), or its terminal (`tty`).
Other settings (grace, stop signal, restart policy, checks, ...) apply in
place, from the next stop or start. A type whose configured count changed is
scaled to it (README "Commands": `keelrun reload`).
"""

from __future__ import annotations

from typing import NamedTuple

from keelrun.settings import ProcessTypeSettings, Settings


class SettingsDiff(NamedTuple):
    restarted: list[str]  # types present before and after whose instances must restart
    added: list[str]  # new types, in Procfile order
    removed: list[str]  # types gone from the Procfile
    scaled: dict[str, int]  # types whose configured count changed: the new count

    def summary(self) -> str:
        parts = [
            f"{label} {', '.join(names)}"
            for label, names in (
                ("restarted", self.restarted),
                ("added", self.added),
                ("removed", self.removed),
                ("scaled", [f"{n} to {c}" for n, c in self.scaled.items()]),
            )
            if names
        ]
        return ", ".join(parts) or "nothing changed"


def diff_settings(old: Settings, new: Settings) -> SettingsDiff:
    env_changed = old.env != new.env
    old_types = {t.name: t for t in old.types}
    new_types = {t.name: t for t in new.types}
    kept = [name for name in old_types if name in new_types]
    restarted = [
        name
        for name in kept
        if env_changed
        or _reaches_the_process(old_types[name]) != _reaches_the_process(new_types[name])
    ]
    scaled = {
        name: new_types[name].count
        for name in kept
        if old_types[name].count != new_types[name].count
    }
    added = [name for name in new_types if name not in old_types]
    removed = [name for name in old_types if name not in new_types]
    return SettingsDiff(restarted, added, removed, scaled)


def _reaches_the_process(t: ProcessTypeSettings) -> tuple[object, ...]:
    plan = t.plan
    return (t.command, t.base_port, t.tty, plan.uses_notify, plan.watchdog)
