"""The config file: ``[tool.keelrun]`` of pyproject.toml or a keelrun.toml, and paths.

Paths on the command line and in KEELRUN_* variables are relative to the
current directory; paths in a config file are relative to the app root.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, NamedTuple

from keelrun.config.values import show
from keelrun.errors import InputError

PYPROJECT = "pyproject.toml"
KEELRUN_TOML = "keelrun.toml"


class ConfigFile(NamedTuple):
    label: str  # the file as errors name it
    prefix: str  # "tool.keelrun." in pyproject.toml, "" in keelrun.toml
    data: dict[str, Any]

    def where(self, *keys: str) -> str:
        return f"{self.label}: {self.prefix}{'.'.join(keys)}"

    def describe(self) -> str:
        return f"{self.label} [tool.keelrun]" if self.prefix else self.label


def read_config(app_root: Path) -> ConfigFile | None:
    """[tool.keelrun] of pyproject.toml or keelrun.toml (both at once is an error)."""
    found: list[ConfigFile] = []
    pyproject = app_root / PYPROJECT
    if present(pyproject):
        data = _read_toml(pyproject)
        tool = data.get("tool")
        if isinstance(tool, dict) and "keelrun" in tool:
            section = tool["keelrun"]
            label = display_path(pyproject)
            if not isinstance(section, dict):
                raise InputError(f"{label}: tool.keelrun", f"expected a table, got {show(section)}")
            found.append(ConfigFile(label, "tool.keelrun.", section))
    toml = app_root / KEELRUN_TOML
    if present(toml):
        found.append(ConfigFile(display_path(toml), "", _read_toml(toml)))
    if len(found) == 2:
        raise InputError(
            found[1].label,
            f"configuration is also in {found[0].label} [tool.keelrun]; keep only one of them",
        )
    return found[0] if found else None


def present(path: Path) -> bool:
    """Whether ``path`` exists (reading it then says what is wrong with it); an app
    root keelrun may not look into is an input error, not a traceback."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as e:
        raise InputError(display_path(path), f"cannot read: {e.strerror or e}") from None
    return True


_TOML_POSITION = re.compile(r"(.*) \(at line (\d+), column (\d+)\)$")


def _read_toml(path: Path) -> dict[str, Any]:
    import tomllib

    from keelrun.procfile import read_text

    label = display_path(path)
    try:
        return tomllib.loads(read_text(path, label))
    except tomllib.TOMLDecodeError as e:
        m = _TOML_POSITION.match(str(e))
        if m:
            raise InputError(
                f"{label}:{m.group(2)}", f"invalid TOML: {m.group(1)} (column {m.group(3)})"
            ) from None
        raise InputError(label, f"invalid TOML: {e}") from None


def display_path(path: Path) -> str:
    """A path as messages show it: relative to the current directory when below it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


def absolute(path: str, base: Path) -> Path:
    p = Path(os.path.expanduser(path))
    return Path(os.path.normpath(p if p.is_absolute() else base / p))


def app_root_path(app_root: str | None, cwd: Path | None = None) -> Path:
    here = cwd or Path.cwd()
    return absolute(app_root, here) if app_root else here
