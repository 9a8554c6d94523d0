"""Errors that reach the user as one line and a definite exit status."""

from __future__ import annotations


class KeelrunError(Exception):
    """Base of every error keelrun reports without a traceback."""

    exit_status = 1


_CONTROL = {c: f"\\x{c:02x}" for c in (*range(32), 127)}
_CONTROL.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})


def one_line(text: str) -> str:
    """Quoted user input must not break an error over lines or drive the terminal."""
    return text.translate(_CONTROL)


class InputError(KeelrunError):
    """Bad input: a Procfile, .env, config key, request or argument.

    ``where`` names the place (``Procfile:7``, ``pyproject.toml: tool.keelrun.port``,
    ``--formation``); the message says what is wrong there.
    """

    exit_status = 2

    def __init__(self, where: str, message: str) -> None:
        where, message = one_line(where), one_line(message)
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.message = message


class InputErrors(InputError):
    """Several input errors found in one pass (``keelrun check`` reports all)."""

    def __init__(self, errors: list[InputError]) -> None:
        self.errors = errors
        first = errors[0]
        super().__init__(first.where, first.message)

    def lines(self) -> list[str]:
        return [str(e) for e in self.errors]


class RuntimeFailure(KeelrunError):
    """Something outside the input went wrong (nothing running, socket refused)."""

    exit_status = 1


class RequestError(Exception):
    """A control request that cannot be carried out: an error reply, never a crash.

    ``kind`` is "input" (the client exits 2) or "runtime" (exit 1).
    """

    def __init__(self, message: str, kind: str = "input", lines: list[str] | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.lines = lines or [message]  # one per problem, as the client prints them

    @classmethod
    def from_input(cls, error: InputError) -> RequestError:
        lines = error.lines() if isinstance(error, InputErrors) else [str(error)]
        return cls("; ".join(lines), "input", lines)
