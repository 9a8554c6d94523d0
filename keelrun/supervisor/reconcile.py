"""What a reload changes: a pure comparison of the old and the new settings.

A type is restarted when its command, its environment (any .env change
restarts every type) or any of its settings but the count, -q and watch
changed; a count change alone keeps the running instances (README "Commands": `keelrun reload`).
"""

from __future__ import annotations

from typing import NamedTuple

from keelrun.settings import ProcessTypeSettings, Settings


class SettingsDiff(NamedTuple):
    restarted: list[str]  # types present before and after whose instances must restart
    added: list[str]  # new types, in Procfile order
    removed: list[str]  # types gone from the Procfile

    def summary(self) -> str:
        parts = [
            f"{label} {', '.join(names)}"
            for label, names in (
                ("restarted", self.restarted),
                ("added", self.added),
                ("removed", self.removed),
            )
            if names
        ]
        return ", ".join(parts) or "nothing changed"


def diff_settings(old: Settings, new: Settings) -> SettingsDiff:
    env_changed = old.env != new.env
    old_types = {t.name: t for t in old.types}
    new_types = {t.name: t for t in new.types}
    restarted = [
        name
        for name, t in old_types.items()
        if name in new_types
        and (env_changed or _without_count(t) != _without_count(new_types[name]))
    ]
    added = [name for name in new_types if name not in old_types]
    removed = [name for name in old_types if name not in new_types]
    return SettingsDiff(restarted, added, removed)


def _without_count(ptype: ProcessTypeSettings) -> ProcessTypeSettings:
    # What does not reach the process does not restart it: its count, whether
    # its lines are printed, which files it watches.
    return ptype._replace(count=0, quiet=False, watch=())
