"""The entry point (`keelrun`, `python -m keelrun`): every error is one line and a status.

`keelrun start` must have spawned its first process within 300 ms, and
importing click and building every command's options costs ~20 ms of that:
so a `start` command line in the forms click accepts for it is read from the
option declarations directly (keelrun/config/startargv.py). Anything that
reader is not sure of, and every other command, goes to the click command
line (keelrun/clickcli.py), which gives every help text and usage message.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import os
import sys
from typing import TYPE_CHECKING, NoReturn

from keelrun.errors import KeelrunError

if TYPE_CHECKING:
    from keelrun.config import Overrides


def fail(message: str, status: int) -> NoReturn:
    with contextlib.suppress(OSError):  # a full stderr: the status still tells
        sys.stderr.write(f"keelrun: {message}\n")
        sys.stderr.flush()
    sys.exit(status)


# What a full or failing output device raises on a write.
_WRITE_ERRORS = (errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EFBIG)


def _standard_streams() -> None:
    """fds 0-2 the caller closed (`<&-`, `>&-`) become /dev/null: a pipe keelrun opens
    must never land on them (the guardian's lifeline is a pipe it reads), and output
    to a closed stream is discarded instead of ending in a traceback."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)  # the lowest free fd: this one
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    for name, fd, mode in (("stdin", 0, "r"), ("stdout", 1, "w"), ("stderr", 2, "w")):
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, mode, closefd=False))  # noqa: SIM115


def _flush_output() -> None:
    """Flush stdout now, where a full device can be reported, not at interpreter exit."""
    try:
        sys.stdout.flush()
    except OSError as e:
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115  # nothing more to flush
        fail(f"stdout: {e.strerror or e}", 1)


def main(argv: list[str] | None = None) -> None:
    """Entry point: every error is one line on stderr and a definite status."""
    args = sys.argv[1:] if argv is None else list(argv)
    _standard_streams()
    try:
        os.getcwd()  # relative paths, the socket search and reload all start here
    except FileNotFoundError:
        fail("the current directory no longer exists: cd to one that does", 1)
    if args[:1] == ["start"]:
        # Until the formation runs, keelrun only makes what lasts the whole run
        # (modules, settings): the collector's ~20 passes over it cost ~4 ms
        # before the first lines. keelrun/start.py turns it back on.
        gc.disable()
    try:
        overrides = _plain_start(args)
        if overrides is None:
            from keelrun.clickcli import run_command_line

            run_command_line(args)
        else:
            _start(overrides)
    except KeelrunError as e:
        lines = e.lines() if hasattr(e, "lines") else [str(e)]
        for line in lines[:-1]:
            sys.stderr.write(f"keelrun: {line}\n")
        fail(lines[-1], e.exit_status)
    except BrokenPipeError:
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as e:
        if e.errno not in _WRITE_ERRORS:
            raise
        fail(f"cannot write: {e.strerror or e}", 1)
    finally:
        if sys.exc_info()[0] in (None, SystemExit):
            _flush_output()


def _plain_start(args: list[str]) -> Overrides | None:
    """The Overrides of a `keelrun start` command line read without click, if it can be."""
    # click also answers shell completion requests, whatever the command line.
    if args[:1] != ["start"] or "_KEELRUN_COMPLETE" in os.environ:
        return None
    from keelrun.config.startargv import parse_start

    return parse_start(args[1:])


def _start(overrides: Overrides) -> NoReturn:
    """`keelrun start`, ending as it ends when click calls it (as click's main handles it)."""
    from keelrun.start import start_command

    try:
        sys.exit(start_command(overrides, run_release=bool(overrides.run_release)))
    except (EOFError, KeyboardInterrupt):
        sys.stderr.write("\n")  # click's Abort: a new line, then "aborted"
        fail("aborted", 130)
    except OSError as e:
        if e.errno != errno.EPIPE:
            raise
        _quiet_broken_pipes()
        sys.exit(1)


def _quiet_broken_pipes() -> None:
    """What click does on EPIPE: the interpreter's last flush must not complain again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            os.dup2(devnull, stream.fileno())
