"""Whether a Procfile command can be exec'd by its shell.

`/bin/sh -c "python3 web.py"` keeps the shell as the group leader on shells
that do not exec a lone command themselves (Debian's dash does not): on
SIGTERM the shell dies at once, the app is still shutting down, and its exit
status is lost. keelrun therefore runs a single simple command as
`exec COMMAND`, so that the app itself is the instance's process. Anything
else (lists, pipes, background jobs, compound commands, builtins, leading
assignments) is left to the shell as written.
"""

from __future__ import annotations

import re

# Operators that make more than one simple command.
_COMPOUND = re.compile(r"[;&|\n]")
_FD_DUP = re.compile(r"[<>]&")
_FIRST_WORD = re.compile(r"\s*([^\s]+)")
# Shell keywords and builtins with no program of that name to exec.
_NOT_EXECABLE = frozenset(
    {
        "if",
        "then",
        "else",
        "elif",
        "fi",
        "do",
        "done",
        "case",
        "esac",
        "while",
        "until",
        "for",
        "in",
        "function",
        "select",
        "{",
        "}",
        "!",
        "(",
        ")",
        "[[",
        "exec",
        "eval",
        "exit",
        "export",
        "readonly",
        "set",
        "shift",
        "unset",
        "trap",
        "times",
        "return",
        "local",
        "cd",
        ".",
        ":",
        "source",
        "alias",
        "unalias",
        "read",
        "wait",
        "ulimit",
        "umask",
        "hash",
        "type",
        "command",
        "getopts",
        "jobs",
        "fg",
        "bg",
        "fc",
        "builtin",
        "let",
        "declare",
        "typeset",
        "",
    }
)


def exec_form(command: str) -> str:
    """``exec COMMAND`` when COMMAND is one simple command, else COMMAND unchanged."""
    # `2>&1` and `<&3` are redirections, not background jobs.
    if _COMPOUND.search(_FD_DUP.sub("", command)) or "(" in command.split("$(")[0]:
        return command
    m = _FIRST_WORD.match(command)
    if m is None:
        return command
    word = m.group(1)
    if word in _NOT_EXECABLE or "=" in word or word[0] in "'\"\\$`<>(":
        return command
    return "exec " + command
