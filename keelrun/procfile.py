"""The Procfile: ``name: command`` lines, read as honcho 2.0 reads valid files.

A valid file gives exactly honcho's (name, command) pairs: lines are split as
``str.splitlines`` splits them, the command starts at the first non-blank
character after the colon and keeps trailing blanks. Where honcho silently
skips a line it does not understand, keelrun reports it: a skipped line is
usually a process the user expected to run.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import NamedTuple

from keelrun.errors import InputError, InputErrors

NAME = re.compile(r"[A-Za-z0-9_-]+")
_ENTRY = re.compile(r"([^:]*):(.*)", re.DOTALL)
_SHOWN = 40  # characters of a bad line quoted in its error


class ProcfileEntry(NamedTuple):  # not a dataclass: see keelrun/settings.py
    name: str
    command: str
    line: int


def parse_procfile(text: str, path: str) -> list[ProcfileEntry]:
    """Parse Procfile ``text``; ``path`` labels errors. Raises InputErrors with every problem."""
    entries, errors = parse_procfile_partial(text, path)
    if errors:
        raise InputErrors(errors)
    return entries


def parse_procfile_partial(text: str, path: str) -> tuple[list[ProcfileEntry], list[InputError]]:
    """The good entries and the errors of the rest, so that `check` can go on validating."""
    entries: list[ProcfileEntry] = []
    errors: list[InputError] = []
    first_line: dict[str, int] = {}
    # A line ending in "\\" followed by lines that are no entry of their own is a
    # shell line continuation: one error at the line that ends in "\\", none for
    # the lines that continue it. Before a valid entry, a blank line or the end,
    # that line is honcho's (name, command) pair like any other.
    open_: tuple[int, str | None] | None = None  # the previous line ended in "\\"
    continuation: list[int] = []  # the lines that continued it

    def close() -> None:
        if continuation:
            assert open_ is not None
            errors.append(_continuation_error(path, *open_, continuation))
            continuation.clear()

    for number, line in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            close()
            open_ = None
            continue
        try:
            name, command = _parse_line(line)
        except ValueError as e:
            if open_ is not None:
                continuation.append(number)
                if not stripped.endswith("\\"):
                    close()
                    open_ = None
                continue
            errors.append(InputError(f"{path}:{number}", str(e)))
            open_ = (number, None) if stripped.endswith("\\") else None
            continue
        close()
        open_ = (number, name) if stripped.endswith("\\") else None
        if name in first_line:
            message = f'duplicate process type "{name}" (first defined on line {first_line[name]})'
            errors.append(InputError(f"{path}:{number}", message))
            continue
        first_line[name] = number
        entries.append(ProcfileEntry(name, command, number))
    close()
    if not entries and not errors:
        errors.append(InputError(path, "no process type defined (expected lines `name: command`)"))
    return entries, errors


def _continuation_error(path: str, line: int, name: str | None, lines: list[int]) -> InputError:
    what = f'the command of "{name}"' if name else "this line"
    where = f"line {lines[0]}" if len(lines) == 1 else f"lines {lines[0]}-{lines[-1]}"
    return InputError(
        f"{path}:{line}",
        f'{what} ends in "\\" and continues on {where}, but a Procfile entry is one line: '
        "join them into one (or move the command into a script)",
    )


def _parse_line(line: str) -> tuple[str, str]:
    match = _ENTRY.fullmatch(line)
    if match is None:
        raise ValueError(f"expected `name: command`, got {_show(line.strip())}")
    name, rest = match.groups()
    if name != name.lstrip():
        raise ValueError("a process type must start at the beginning of the line")
    if not name:
        raise ValueError('missing process type name before ":"')
    if NAME.fullmatch(name) is None:
        if NAME.fullmatch(name.rstrip()):
            raise ValueError(
                f'blank between the process type "{name.rstrip()}" and ":"; '
                f'remove it ("{name.rstrip()}:")'
            )
        raise ValueError(
            f"invalid process type name {_show(name)} (letters, digits, '_' and '-' only)"
        )
    command = rest.lstrip()
    if not command:
        raise ValueError(f'empty command for process type "{name}"')
    return name, command


def _show(text: str) -> str:
    if len(text) > _SHOWN:
        text = text[: _SHOWN - 3] + "..."
    return '"' + text.replace('"', '\\"') + '"'


def load_procfile(path: str | Path, label: str | None = None) -> list[ProcfileEntry]:
    """Read and parse the Procfile at ``path``; ``label`` (default: path) names it in errors."""
    label = label if label is not None else str(path)
    return parse_procfile(read_text(Path(path), label), label)


def load_procfile_partial(path: Path, label: str) -> tuple[list[ProcfileEntry], list[InputError]]:
    """As load_procfile, but the good entries come back beside the errors."""
    try:
        text = read_text(path, label)
    except InputError as e:
        return [], [e]
    return parse_procfile_partial(text, label)


def read_text(path: Path, label: str) -> str:
    """A UTF-8 input file's text; a missing, unreadable or undecodable file is an InputError."""
    try:
        # O_NONBLOCK: a FIFO in a file's place must not hang keelrun (it is refused below).
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InputError(label, "no such file") from None
    except OSError as e:
        raise InputError(label, f"cannot read: {e.strerror or e}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        what = "is a directory, not a file" if stat.S_ISDIR(mode) else "is not a regular file"
        raise InputError(label, what)
    with open(fd, "rb") as f:
        try:
            data = f.read()
        except OSError as e:
            raise InputError(label, f"cannot read: {e.strerror or e}") from None
    nul = data.find(b"\0")
    if nul >= 0:  # no command, value or key can hold one (exec refuses it)
        line = data.count(b"\n", 0, nul) + 1
        raise InputError(f"{label}:{line}", "contains a NUL character")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InputError(f"{label}:{line}", "not valid UTF-8") from None
