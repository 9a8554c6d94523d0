"""The watch of one `keelrun start`: which files, and a watcher kept in step with reloads.

No watcher runs (and watchfiles is not imported) unless a type has ``watch``
patterns or ``--watch`` is given. A reload that changes the patterns or the
input files starts a new watcher; the changes reach ``on_change`` on the loop
thread (README "The development loop").
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from keelrun.watch.rules import Changes, WatchRules

if TYPE_CHECKING:
    from keelrun.loop import Loop
    from keelrun.settings import Settings
    from keelrun.watch.watcher import Watcher


def rules_for(settings: Settings, never: list[Path]) -> WatchRules | None:
    """What to watch for these settings, or None when no type watches anything."""
    patterns = {t.name: t.watch for t in settings.types if t.watch}
    if not patterns:
        return None
    root = settings.app_root
    inputs = [
        settings.procfile,
        *(settings.env_files or [root / ".env"]),
        root / "pyproject.toml",
        root / "keelrun.toml",
    ]
    return WatchRules.build(str(root), patterns, [str(p) for p in inputs], [str(p) for p in never])


class WatchSession:
    def __init__(
        self,
        loop: Loop,
        on_change: Callable[[Changes], None],
        on_error: Callable[[str], None],
        on_ready: Callable[[int], None],
        never: Callable[[], list[Path]],
    ) -> None:
        self.loop = loop
        self.on_change = on_change
        self.on_error = on_error
        self.on_ready = on_ready  # the number of directories watched: changes count from now
        self.never = never  # keelrun's own files (the control socket), asked when needed
        self.rules: WatchRules | None = None
        self.watcher: Watcher | None = None

    def update(self, settings: Settings) -> None:
        """Watch what ``settings`` ask for (at start and after each reload)."""
        rules = rules_for(settings, self.never())
        if rules == self.rules:
            return
        self.stop()
        self.rules = rules
        if rules is not None:
            from keelrun.watch.watcher import Watcher

            self.watcher = Watcher(self.loop, rules, self.on_change, self.on_error, self.on_ready)
            self.watcher.start()

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        self.rules = None
