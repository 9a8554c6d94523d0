"""What a file change means: which process types restart, whether keelrun reloads.

Pure and immutable once built, so the watcher thread may use it while the
loop thread owns everything else.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from keelrun.watch.globs import compile_patterns

# Directories never watched, wherever they are (dot-directories too, below).
IGNORED_DIRS = frozenset({".git", "__pycache__", ".venv", "venv", "node_modules"})
EXAMPLES = 3  # paths named by the `files_changed` event


def skip_dir(name: str) -> bool:
    """A directory the watcher neither watches nor descends into."""
    return name in IGNORED_DIRS or name.startswith(".")


def _is_dir(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


@dataclass(frozen=True)
class Changes:
    """One batch: per type, up to EXAMPLES changed paths; the reload files that changed."""

    types: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    reload: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.types or self.reload)

    def merged(self, other: Changes) -> Changes:
        types = dict(self.types)
        for name, paths in other.types.items():
            types[name] = _first(EXAMPLES, types.get(name, ()), paths)
        return Changes(types, _first(EXAMPLES, self.reload, other.reload))

    def examples(self) -> tuple[str, ...]:
        """Up to EXAMPLES paths, reload files first: what the event names."""
        return _first(EXAMPLES, self.reload, *self.types.values())

    def to_wire(self) -> dict[str, object]:
        return {"types": {k: list(v) for k, v in self.types.items()}, "reload": list(self.reload)}

    @classmethod
    def from_wire(cls, data: Mapping[str, object]) -> Changes:
        types = data.get("types") or {}
        reload = data.get("reload") or []
        assert isinstance(types, dict) and isinstance(reload, list)
        return cls({str(k): tuple(v) for k, v in types.items()}, tuple(reload))


def _first(limit: int, *groups: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for group in groups:
        for path in group:
            if len(out) == limit:
                return tuple(out)
            if path not in out:
                out.append(path)
    return tuple(out)


@dataclass(frozen=True)
class WatchRules:
    """``root`` and every path in here are real (symlink-free) absolute paths."""

    root: str
    types: tuple[tuple[str, re.Pattern[str]], ...]
    reload_files: frozenset[str]
    never: frozenset[str]

    @classmethod
    def build(
        cls,
        root: str,
        patterns: Mapping[str, Sequence[str]],
        reload_files: Iterable[str] = (),
        never: Iterable[str] = (),
    ) -> WatchRules:
        """``patterns``: glob patterns per type (types without any are left out);
        ``reload_files``: the Procfile, .env files and config file, which need not
        exist yet; ``never``: paths never reported (keelrun's control socket)."""
        compiled = []
        for name, pats in patterns.items():
            rx = compile_patterns(pats)
            if rx is not None:
                compiled.append((name, rx))
        return cls(
            os.path.realpath(root),
            tuple(compiled),
            frozenset(_real_parent(p) for p in reload_files),
            frozenset(_real_parent(p) for p in never),
        )

    def relative(self, path: str) -> str | None:
        """``path`` relative to the root, or None when it is not below it."""
        prefix = self.root.rstrip("/") + "/"
        return path[len(prefix) :] if path.startswith(prefix) else None

    def ignored(self, rel: str, is_dir: Callable[[str], bool] = _is_dir) -> bool:
        """Below an ignored directory, or one itself (a gone dot-entry counts as one)."""
        *dirs, name = rel.split("/")
        if any(skip_dir(d) for d in dirs) or name in IGNORED_DIRS:
            return True
        if name.startswith("."):
            # A dot-file (`.flake8`) is watched, a dot-directory is not; a dot-entry
            # that is already gone cannot be told apart and is left out.
            full = os.path.join(self.root, rel)
            return is_dir(full) or not os.path.lexists(full)
        return False

    def watched_parents(self) -> list[str]:
        """Directories outside the scanned tree that hold reload files."""
        return sorted({os.path.dirname(p) for p in self.reload_files})

    def classify(self, paths: Iterable[str], is_dir: Callable[[str], bool] = _is_dir) -> Changes:
        """What a set of changed absolute paths means (paths that mean nothing dropped)."""
        types: dict[str, list[str]] = {}
        reload: list[str] = []
        for path in sorted(paths):
            if path in self.never:
                continue
            rel = self.relative(path)
            if path in self.reload_files:
                if len(reload) < EXAMPLES:
                    reload.append(rel if rel is not None else path)
                continue
            if rel is None or not self.types or self.ignored(rel, is_dir):
                continue
            for name, rx in self.types:
                if rx.fullmatch(rel):
                    found = types.setdefault(name, [])
                    if len(found) < EXAMPLES:
                        found.append(rel)
        return Changes({k: tuple(v) for k, v in types.items()}, tuple(reload))


def _real_parent(path: str) -> str:
    """The path with its directory made real; the file itself need not exist."""
    path = os.path.abspath(path)
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
