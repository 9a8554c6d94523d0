"""Which Procfile commands can end in `exec`, read as `/bin/sh` reads them.

`/bin/sh -c "python3 web.py"` keeps the shell as the instance's process on
shells that do not exec a lone command themselves (Debian's dash does not):
on SIGTERM the shell dies at once while the app is still shutting down, and
the app's exit status is lost. keelrun therefore puts `exec` before the
command word of a simple command, or of the last simple command of a
`;`/`&&`/`||` list (`cd backend && exec bundle exec puma`; earlier elements
may be pipelines), so that the app takes the shell's pid (README
"`keelrun start`: what it does, exactly").

The command is read as the shell reads it: quotes, backslashes, `$(...)`,
backquotes, `${...}`, comments, redirections, here-documents and leading
`VAR=value` assignments. Whatever does not end in one simple command running
a program (a pipeline, a background job, a compound command, a builtin,
anything this reader does not follow with certainty) is left as written: a
wrong `exec` would break the command, a missing one only costs the shell in
between.
"""

from __future__ import annotations

import functools
import re

_BLANKS = " \t"
_OPERATOR_START = ";&|()<>"
# Longest first. Bash-only operators are listed so that they are never misread.
_OPERATORS = (
    ";;&",
    "<<-",
    "<<<",
    "&&",
    "||",
    ";;",
    ";&",
    "<<",
    ">>",
    "<&",
    ">&",
    "<>",
    ">|",
    "&>",
    "|&",
    ";",
    "&",
    "|",
    "(",
    ")",
    "<",
    ">",
)
_REDIRECTIONS = frozenset({"<", ">", ">>", "<&", ">&", "<>", ">|", "<<", "<<-"})
_LIST_SEPARATORS = frozenset({";", "&&", "||", "\n"})
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PATTERN_CHARS = frozenset("*?[]{}")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Reserved words of dash and bash: they start compound commands.
_KEYWORDS = _words(
    "! { } [[ ]] case coproc do done elif else esac fi for function if in select then"
    " time until while"
)
# Builtins of dash and bash. `exec echo` would run /bin/echo, which reads its
# arguments differently from the builtin; `exec cd` fails. None is exec'd.
_BUILTINS = _words(
    ". : [ alias bg bind break builtin caller cd chdir command compgen complete compopt"
    " continue declare dirs disown echo enable eval exec exit export false fc fg getopts"
    " hash help history jobs kill let local logout mapfile popd printf pushd pwd read"
    " readarray readonly return set shift shopt source suspend test times trap true type"
    " typeset ulimit umask unalias unset wait"
)
# Before the last command these could change what it is or undo what `exec`
# skips (an EXIT trap, a function or alias defined by a sourced file).
_CHANGES_THE_SHELL = _words("trap eval . source alias unalias command builtin enable")


class _Unsure(Exception):
    """Not a list of simple commands, or not read with certainty: leave it as written."""


# Plain classes, not dataclasses: this module is imported at every start-up,
# and each @dataclass costs about half a millisecond to build.
class _Word:
    __slots__ = (
        "bare_expansion",
        "io_number",
        "pattern",
        "quoted_expansion",
        "raw",
        "slash",
        "start",
        "tilde",
        "value",
    )

    def __init__(self, start: int) -> None:
        self.start = start
        self.raw = ""
        self.value = ""  # quotes removed, expansions kept as written
        self.bare_expansion = False  # unquoted $x, $(...) or `...`: field splitting applies
        self.quoted_expansion = False
        self.pattern = False  # unquoted glob or brace characters
        self.tilde = False
        self.slash = False  # a literal `/`, so the word names a path whatever it expands to
        self.io_number = False  # the `2` of `2>&1`


class _Op:
    __slots__ = ("start", "text")

    def __init__(self, start: int, text: str) -> None:
        self.start = start
        self.text = text


class _Lexer:
    """Shell tokens of ``text`` from ``pos``: words, operators and newlines."""

    def __init__(self, text: str, pos: int = 0, nested: bool = False) -> None:
        self.text = text
        self.i = pos
        self.nested = nested  # inside $(...): here-documents are not followed there
        self.heredocs: list[tuple[str, bool]] = []  # (delimiter, strip leading tabs)

    def next_token(self) -> _Word | _Op | None:
        text, n = self.text, len(self.text)
        while self.i < n:
            c = text[self.i]
            if c in _BLANKS:
                self.i += 1
            elif text.startswith("\\\n", self.i):
                self.i += 2
            elif c == "#":
                end = text.find("\n", self.i)
                self.i = n if end < 0 else end
            elif c == "\n":
                start = self.i
                self.i += 1
                self._skip_heredoc_bodies()
                return _Op(start, "\n")
            elif c in _OPERATOR_START:
                start = self.i
                op = next(o for o in _OPERATORS if text.startswith(o, start))
                self.i += len(op)
                return _Op(start, op)
            else:
                return self._word()
        return None

    def add_heredoc(self, delimiter: _Word, strip_tabs: bool) -> None:
        if self.nested or delimiter.bare_expansion or delimiter.quoted_expansion:
            raise _Unsure
        self.heredocs.append((delimiter.value, strip_tabs))

    def _skip_heredoc_bodies(self) -> None:
        text = self.text
        for delimiter, strip_tabs in self.heredocs:
            while True:
                if self.i >= len(text):
                    raise _Unsure  # ended by end of file: shells differ
                end = text.find("\n", self.i)
                line = text[self.i : len(text) if end < 0 else end]
                self.i = len(text) if end < 0 else end + 1
                if (line.lstrip("\t") if strip_tabs else line) == delimiter:
                    break
        self.heredocs.clear()

    def _word(self) -> _Word:
        text, n = self.text, len(self.text)
        w = _Word(self.i)
        value: list[str] = []
        i = self.i
        while i < n:
            c = text[i]
            if c in _BLANKS or c == "\n" or c in _OPERATOR_START:
                break
            if c == "\\":
                if i + 1 >= n:
                    raise _Unsure  # a trailing backslash
                if text[i + 1] != "\n":
                    value.append(text[i + 1])
                    w.slash |= text[i + 1] == "/"
                i += 2
            elif c == "'":
                end = text.find("'", i + 1)
                if end < 0:
                    raise _Unsure
                value.append(text[i + 1 : end])
                w.slash |= "/" in text[i + 1 : end]
                i = end + 1
            elif c == '"':
                i = self._double_quoted(i + 1, w, value)
            elif c == "$" and (end := self._dollar(i, in_quotes=False)) > i:
                w.bare_expansion = True
                value.append(text[i:end])
                i = end
            elif c == "`":
                end = self._backquoted(i)
                w.bare_expansion = True
                value.append(text[i:end])
                i = end
            else:
                w.pattern |= c in _PATTERN_CHARS
                w.tilde |= c == "~" and i == w.start
                w.slash |= c == "/"
                value.append(c)
                i += 1
        self.i = i
        w.raw = text[w.start : i]
        w.value = "".join(value)
        w.io_number = w.raw.isdigit() and i < n and text[i] in "<>"
        return w

    def _double_quoted(self, i: int, w: _Word, value: list[str]) -> int:
        text, n = self.text, len(self.text)
        while i < n:
            c = text[i]
            if c == '"':
                return i + 1
            if c == "\\" and i + 1 < n and text[i + 1] in '$`"\\\n':
                if text[i + 1] != "\n":
                    value.append(text[i + 1])
                i += 2
            elif c == "$" and (end := self._dollar(i, in_quotes=True)) > i:
                w.quoted_expansion = True
                value.append(text[i:end])
                i = end
            elif c == "`":
                end = self._backquoted(i)
                w.quoted_expansion = True
                value.append(text[i:end])
                i = end
            else:
                w.slash |= c == "/"
                value.append(c)
                i += 1
        raise _Unsure

    def _dollar(self, i: int, in_quotes: bool) -> int:
        """End of the expansion starting with the `$` at ``i``; ``i`` for a literal `$`."""
        text, n = self.text, len(self.text)
        nxt = text[i + 1] if i + 1 < n else ""
        if text.startswith("$((", i):
            return self._arithmetic(i + 3)
        if nxt == "(":
            return self._substitution(i + 2)
        if nxt == "{":
            return self._braced(i + 2, in_quotes)
        if nxt and (m := _NAME.match(text, i + 1)):
            return m.end()
        if nxt and (nxt.isdigit() or nxt in "@*#?-$!"):
            return i + 2
        if nxt in ("'", '"') and not in_quotes:
            raise _Unsure  # bash's $'...' and $"..."
        return i

    def _arithmetic(self, i: int) -> int:
        text, depth = self.text, 0
        while i < len(text):
            c = text[i]
            if c in "'\"`\\":
                raise _Unsure
            if c == "(":
                depth += 1
            elif c == ")":
                if depth == 0:
                    if text.startswith(")", i + 1):
                        return i + 2
                    raise _Unsure  # `$( (...) ...)`: read differently by different shells
                depth -= 1
            i += 1
        raise _Unsure

    def _substitution(self, i: int) -> int:
        inner, depth = _Lexer(self.text, i, nested=True), 0
        while (tok := inner.next_token()) is not None:
            if isinstance(tok, _Word):
                if tok.raw == "case":  # its patterns end in a lone `)`
                    raise _Unsure
            elif tok.text == "(":
                depth += 1
            elif tok.text == ")":
                if depth == 0:
                    return inner.i
                depth -= 1
            elif tok.text in ("<<", "<<-"):
                raise _Unsure
        raise _Unsure

    def _braced(self, i: int, in_quotes: bool) -> int:
        text, n = self.text, len(self.text)
        scratch = _Word(i)
        while i < n:
            c = text[i]
            if c == "}":
                return i + 1
            if c == "\\":
                i += 2
            elif c == "'":
                end = text.find("'", i + 1)
                if in_quotes or end < 0:  # quotes inside "${...}" differ between shells
                    raise _Unsure
                i = end + 1
            elif c == '"':
                i = self._double_quoted(i + 1, scratch, [])
            elif c == "$" and (end := self._dollar(i, in_quotes)) > i:
                i = end
            elif c == "`":
                i = self._backquoted(i)
            else:
                i += 1
        raise _Unsure

    def _backquoted(self, i: int) -> int:
        text, i = self.text, i + 1
        while i < len(text):
            if text[i] == "\\":
                i += 2
            elif text[i] == "`":
                return i + 1
            else:
                i += 1
        raise _Unsure


class _Simple:
    """One simple command: its command word, if any, whether anything is in it,
    and whether it is part of a pipeline."""

    __slots__ = ("command", "empty", "piped")

    def __init__(self, piped: bool = False) -> None:
        self.command: _Word | None = None
        self.empty = True
        self.piped = piped


def _simple_commands(command: str) -> list[_Simple]:
    """The simple commands of a `;`/`&&`/`||` list of pipelines, in order;
    _Unsure for anything else."""
    lexer = _Lexer(command)
    commands: list[_Simple] = []
    current = _Simple()
    pending = False  # a list may not end in `&&`, `||` or `|`
    while (tok := lexer.next_token()) is not None:
        if isinstance(tok, _Word):
            current.empty = False
            if tok.io_number:
                continue  # its redirection operator follows
            if current.command is None and not _ASSIGNMENT.match(tok.raw):
                current.command = tok
        elif tok.text in _REDIRECTIONS:
            target = lexer.next_token()
            if not isinstance(target, _Word):
                raise _Unsure
            if tok.text in ("<<", "<<-"):
                lexer.add_heredoc(target, strip_tabs=tok.text == "<<-")
            current.empty = False
        elif tok.text in _LIST_SEPARATORS or tok.text == "|":
            if current.empty:
                if tok.text == "\n":
                    continue  # blank lines, or a newline after `&&` or `|`
                raise _Unsure  # a syntax error: the shell reports it
            piped = tok.text == "|"
            current.piped |= piped
            commands.append(current)
            current = _Simple(piped)
            pending = tok.text in ("&&", "||", "|")
        else:
            raise _Unsure  # a background job, a subshell, a case, ...
    if lexer.heredocs:
        raise _Unsure
    if not current.empty:
        commands.append(current)
    elif pending or not commands:
        raise _Unsure
    return commands


def _keeps_meaning(w: _Word) -> bool:
    """Whether a command word before the last one leaves the last one as it reads."""
    if w.raw in _KEYWORDS or w.bare_expansion or w.pattern:
        return False
    if w.quoted_expansion or w.tilde:
        return w.slash
    return w.slash or w.value not in _CHANGES_THE_SHELL


def _is_program(w: _Word) -> bool:
    """Whether ``exec WORD`` runs the same program as ``WORD`` does."""
    if w.raw in _KEYWORDS or w.bare_expansion or w.pattern or "=" in w.raw:
        return False
    if w.quoted_expansion or w.tilde:
        # Only a literal `/` makes the result a path, never a builtin or function.
        return w.slash
    return bool(w.value) and not w.value.startswith("-") and w.value not in _BUILTINS


def exec_offset(command: str) -> int | None:
    """Where ``exec `` goes in ``command`` (before its last command word), or None."""
    try:
        commands = _simple_commands(command)
    except _Unsure:
        return None
    *before, last = commands
    if any(c.command is not None and not _keeps_meaning(c.command) for c in before):
        return None
    if last.piped or last.command is None or not _is_program(last.command):
        return None  # a pipeline's last command is not the shell's to give away
    return last.command.start


@functools.lru_cache(maxsize=4096)
def exec_form(command: str) -> str:
    """COMMAND with `exec` before its last simple command when that is a program.

    Cached: every instance of a type (1,000 of them at times) has the same command.
    """
    at = exec_offset(command)
    return command if at is None else f"{command[:at]}exec {command[at:]}"
