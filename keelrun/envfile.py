""".env files, parsed with python-dotenv, merged with the real environment (README "Precedence").

python-dotenv only logs a warning for a line it cannot parse and drops it;
keelrun reads dotenv's own parser output and turns such a line into an error
with file and line. ``${VAR}`` expansion is dotenv's, resolved against the
environment keelrun was given rather than ``os.environ``, so that precedence
and tests see one consistent environment.
"""

# No ``from __future__ import annotations``: see keelrun/settings.py.

import io
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from keelrun.errors import InputError, InputErrors
from keelrun.procfile import read_text

_LEADING_BLANK = re.compile(r"\s*")
_NEWLINE = re.compile(r"\r\n|\n|\r")
_QUOTED_VALUE = re.compile(r"(?:export\s+)?([^=#\s]+)\s*=\s*['\"]")


# NamedTuples, not dataclasses: this module is imported on every start (see keelrun/settings.py).
class Binding(NamedTuple):
    key: str
    value: str | None  # None: `KEY` without `=`, which sets nothing
    line: int


class EnvFile(NamedTuple):
    path: Path
    label: str  # how errors and `keelrun check` name the file
    bindings: tuple[Binding, ...]


class MergedEnv(NamedTuple):
    env: dict[str, str]
    # Where each variable's value came from: a file label, or "environment".
    sources: dict[str, str]

    def __repr__(self) -> str:  # never the values (they may be secrets), nor their names
        return f"MergedEnv(<{len(self.env)} variables>)"


def parse_env_text(text: str, label: str) -> tuple[Binding, ...]:
    """Bindings of one .env text; raises InputErrors naming every line dotenv cannot parse."""
    from dotenv.parser import parse_stream  # python-dotenv's own grammar

    bindings: list[Binding] = []
    errors: list[InputError] = []
    for b in parse_stream(io.StringIO(text.removeprefix("\ufeff"))):
        # dotenv marks a statement at the line where its leading blank lines
        # start; count those to name the line the statement is really on.
        blank = _LEADING_BLANK.match(b.original.string)
        line = b.original.line + len(_NEWLINE.findall(blank.group() if blank else ""))
        if b.error:
            errors.append(InputError(f"{label}:{line}", _why(b.original.string)))
        elif b.key is not None:
            bindings.append(Binding(b.key, b.value, line))
    if errors:
        raise InputErrors(errors)
    return tuple(bindings)


def _why(statement: str) -> str:
    # Never quote the statement: it may hold a secret.
    quoted = _QUOTED_VALUE.match(statement.strip())
    if quoted:
        return f"cannot parse the value of {quoted.group(1)} (unterminated or misplaced quote)"
    return "cannot parse this line (expected KEY=value)"


def read_env_file(path: Path, label: str) -> EnvFile:
    return EnvFile(path, label, parse_env_text(read_text(path, label), label))


def merge(
    files: Sequence[EnvFile], environ: Mapping[str, str], override: bool = False
) -> MergedEnv:
    """The child environment: ``environ`` and the files, a later file over an earlier one.

    The real environment wins unless ``override``. ``${VAR}`` and
    ``${VAR:-default}`` expand as python-dotenv expands them, seeing earlier
    values of the files and the environment by the same precedence.
    """
    if not any(f.bindings for f in files):
        # Nothing to expand: python-dotenv (~5 ms to import) is not needed.
        return MergedEnv(dict(environ), {k: "environment" for k in environ})
    from dotenv.variables import parse_variables

    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    for f in files:
        for b in f.bindings:
            if b.value is None:
                continue
            scope: dict[str, str | None] = (
                {**environ, **values} if override else {**values, **environ}
            )
            values[b.key] = "".join(atom.resolve(scope) for atom in parse_variables(b.value))
            sources[b.key] = f"{f.label}:{b.line}"
    env = {**environ, **values} if override else {**values, **environ}
    env_sources = {k: "environment" for k in environ}
    if override:
        env_sources.update(sources)
    else:
        env_sources = {**sources, **env_sources}
    return MergedEnv(env, env_sources)
