"""Glob patterns relative to the app root, compiled to one regular expression.

`*` and `?` never cross a `/`; `[abc]` and `[!abc]` are character classes; a
`**` component matches any number of directories: `**/*.py` matches `app.py`
as well as `a/b/app.py`, `a/**/b` matches `a/b` and `a/x/y/b`, and a trailing
`/**` (or a trailing `/`) matches everything below the directory, not the
directory itself. As in the shell, no wildcard matches the leading `.` of a
name (`**/*.py` leaves out an editor's `.#app.py`); write the dot to match one.
Paths are relative, `/`-separated, without `.` or `..`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable


def pattern_error(pattern: str) -> str | None:
    """Why ``pattern`` cannot be used, or None (for the config loader's messages)."""
    if not isinstance(pattern, str) or not pattern.strip():
        return "expected a non-empty glob pattern"
    if pattern.startswith("/"):
        return f'"{pattern}": patterns are relative to the app root'
    rest = pattern[2:] if pattern.startswith("./") else pattern
    if {".", ".."} & set(rest.split("/")):
        return f'"{pattern}": "." and ".." cannot be used in a watch pattern'
    if "\0" in pattern:
        return f'"{pattern}": a pattern cannot contain NUL'
    return None


_NO_DOT = "(?!\\.)"  # a wildcard may not supply a name's leading dot
_ANY_NAME = "[^/.][^/]*"


def _component(part: str) -> str:
    """One path component's glob as a regex that never matches `/`."""
    out: list[str] = [_NO_DOT] if part[:1] in ("*", "?", "[") else []
    i, n = 0, len(part)
    while i < n:
        c = part[i]
        i += 1
        if c == "*":
            while i < n and part[i] == "*":  # `a**b` inside a component is `a*b`
                i += 1
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = i
            if j < n and part[j] in "!^":
                j += 1
            if j < n and part[j] == "]":  # a leading `]` is a member, as in fnmatch
                j += 1
            while j < n and part[j] != "]":
                j += 1
            if j >= n:  # no closing bracket: a literal `[`
                out.append(re.escape(c))
                continue
            body = part[i:j]
            i = j + 1
            negate = body[:1] in ("!", "^")
            if negate:
                body = body[1:]
            body = re.sub(r"([\\^\[&~|])", r"\\\1", body)  # literal inside the class
            out.append(f"(?!/)[{'^' if negate else ''}{body}]")
        else:
            out.append(re.escape(c))
    return "".join(out)


def translate(pattern: str) -> str:
    """The regex (for ``re.fullmatch``) of one pattern that ``pattern_error`` accepts."""
    while pattern.startswith("./"):
        pattern = pattern[2:]
    if pattern.endswith("/"):
        pattern += "**"
    parts: list[str] = []
    for p in pattern.split("/"):
        if p not in ("", ".") and not (p == "**" and parts[-1:] == ["**"]):
            parts.append(p)
    out = ""
    last = len(parts) - 1
    for k, part in enumerate(parts):
        if part == "**":
            if k == last:
                # Everything below what came before (or everything, alone).
                out += ("" if k == 0 else "/") + "(?:[^/]+/)*" + _ANY_NAME
            else:
                # Zero or more whole directories, each followed by its `/`.
                out += "(?:[^/]+/)*" if k == 0 else "/(?:[^/]+/)*"
            continue
        if k > 0 and parts[k - 1] != "**":
            out += "/"
        out += _component(part)
    return out


def compile_patterns(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """One regex matching a path when any pattern does; None for no pattern."""
    alternatives = [translate(p) for p in patterns]
    if not alternatives:
        return None
    return re.compile("|".join(f"(?:{a})" for a in alternatives), re.DOTALL)


def matches(pattern: str, path: str) -> bool:
    """Does ``path`` (relative, `/`-separated) match ``pattern``? For tests and one-offs."""
    return re.fullmatch(translate(pattern), path, re.DOTALL) is not None
