"""The variables that come from the app's .env files (not the whole environment).

Exports carry only these: the exporting shell's own environment (PATH, HOME, a
developer's tokens) has no business in a deployment. Values are parsed with
keelrun's own reader (python-dotenv's grammar), later files winning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# Names every target accepts: a POSIX shell, systemd's EnvironmentFile, Kubernetes.
PORTABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class EnvValues:
    values: dict[str, str]
    warnings: tuple[str, ...] = ()
    # References kept as written: they matter only where values are written.
    kept: tuple[str, ...] = ()


def read_env_values(env_files: tuple[Path, ...]) -> EnvValues:
    """Every variable the files set, with the value they give it.

    ``${VAR}`` expands as ``keelrun start`` expands it, but only from the files'
    own variables: the exporting shell is not where the app will run. A
    reference to a variable the files do not define is kept as written (README
    "Deploying"), with a warning naming file, line and key.
    """
    from dotenv.variables import Literal, parse_variables

    from keelrun import envfile

    files = [envfile.read_env_file(p, str(p)) for p in env_files if p.is_file()]
    scope: dict[str, str] = {}  # every variable so far, portable or not
    values: dict[str, str] = {}
    warnings: list[str] = []
    kept: list[str] = []
    for f in files:
        for b in f.bindings:
            if b.value is None:  # a bare `KEY` line sets nothing
                continue
            parts: list[str] = []
            for atom in parse_variables(b.value):
                if isinstance(atom, Literal):
                    parts.append(atom.value)
                elif atom.name in scope:
                    parts.append(scope[atom.name])
                else:
                    default = "" if atom.default is None else f":-{atom.default}"
                    parts.append(f"${{{atom.name}{default}}}")
                    kept.append(
                        f"{f.label}:{b.line}: {b.key} refers to ${{{atom.name}}}, which no"
                        " .env file defines; kept as written"
                    )
            scope[b.key] = "".join(parts)
            if not PORTABLE_NAME.fullmatch(b.key):
                warnings.append(f"{f.label}:{b.line}: {b.key!r} is not a portable name; left out")
                continue
            values.pop(b.key, None)  # keep the order in which a later file sets it
            values[b.key] = scope[b.key]
    return EnvValues(values, tuple(warnings), tuple(kept))


_EXPORT_PREFIX = re.compile(r"\s*export\s")
_ASSIGNMENT = re.compile(r"\s*[A-Za-z_][A-Za-z0-9_]*\s*=")


def _inline_comment(line: str) -> bool:
    """A comment after a value, as python-dotenv reads one (it drops it; systemd keeps
    it in the value): after a quoted value, a `#` after optional blanks; after an
    unquoted one, a `#` after blanks."""
    m = _ASSIGNMENT.match(line)
    if m is None:
        return False
    value = line[m.end() :].lstrip(" \t")
    if value[:1] in ("'", '"'):
        quote = value[0]
        i = 1
        while i < len(value) and value[i] != quote:
            i += 2 if value[i] == "\\" and quote == '"' else 1
        return re.match(r"[ \t]*#", value[i + 1 :]) is not None
    return re.search(r"[ \t]+#", value) is not None


def systemd_caveats(env_files: tuple[Path, ...]) -> list[str]:
    """Where systemd would read a .env file differently from python-dotenv.

    systemd parses EnvironmentFile= itself with a simpler, shell-like syntax: no
    ``export`` prefix, no ``${VAR}`` expansion, no ``# comment`` after a value.
    """
    from dotenv import dotenv_values

    caveats: list[str] = []
    for path in env_files:
        if not path.is_file():
            continue
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        for number, line in enumerate(lines, 1):
            if _EXPORT_PREFIX.match(line):
                caveats.append(f"{path}:{number}: systemd does not accept the `export` prefix")
            elif _inline_comment(line):
                caveats.append(
                    f"{path}:{number}: systemd keeps a trailing `# comment` in the value"
                )
        raw, expanded = dotenv_values(path, interpolate=False), dotenv_values(path)
        for key in raw:
            if raw[key] != expanded.get(key):
                caveats.append(f"{path}: {key}: systemd does not expand ${{...}} variables")
    return caveats
