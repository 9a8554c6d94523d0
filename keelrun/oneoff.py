"""`keelrun run`: one command in the app's environment (SPEC 4, twelve-factor XII).

keelrun replaces itself with the command (exec) rather than supervising it:
the terminal, stdin, job control, every signal and the exit status (128+N
after death by signal N, as the shell reports it) then belong to the command
with nothing in between to get wrong.
"""

from __future__ import annotations

import os
import signal
import sys

from keelrun.config import Overrides, load_settings

ONEOFF_NAME = "run.1"  # PS and DYNO of a one-off process, as Heroku names one-off dynos
EXIT_NOT_FOUND = 127
EXIT_NOT_EXECUTABLE = 126


def run_command(overrides: Overrides, argv: list[str]) -> int:
    """Exec ``argv`` in the app root with the app's environment; returns only on failure."""
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        from keelrun.errors import InputError

        raise InputError("run", "no command given")
    settings = load_settings(overrides, require_procfile=False)
    env = dict(settings.env)
    env["PORT"] = str(settings.port)
    env["PS"] = ONEOFF_NAME
    env["DYNO"] = ONEOFF_NAME
    os.chdir(settings.app_root)
    _restore_signals()
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(argv[0], argv, env)
    except FileNotFoundError:
        return _fail(f"{argv[0]}: command not found", EXIT_NOT_FOUND)
    except PermissionError:
        return _fail(f"{argv[0]}: permission denied", EXIT_NOT_EXECUTABLE)
    except OSError as e:
        return _fail(f"{argv[0]}: cannot execute: {e.strerror or e}", EXIT_NOT_EXECUTABLE)
    raise AssertionError("unreachable: execvpe returned")


def _restore_signals() -> None:
    # Python ignores SIGPIPE and SIGXFSZ; ignored dispositions survive exec and
    # would make `keelrun run yes | head` spin instead of dying quietly.
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def _fail(message: str, status: int) -> int:
    sys.stderr.write(f"keelrun: run: {message}\n")
    sys.stderr.flush()
    return status
