"""`keelrun run`: one command in the app's environment (twelve-factor XII).

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
from keelrun.environment import oneoff_env

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
    env = oneoff_env(settings)
    os.chdir(settings.app_root)
    # As after a shell's `cd` (and as the shell of `start` sets it): a stale PWD
    # would name the directory keelrun was started in.
    env["PWD"] = os.getcwd()
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
