"""The pseudo-terminal of a `tty = true` instance: spawning on it, its size, reading it.

Spawning. The child gets the pty's slave as stdin, stdout and stderr and a
session of its own (Popen's setsid). A session leader without a controlling
terminal acquires one on Linux by opening a terminal without O_NOCTTY, so
the shell that runs the command first opens the slave by its path
(`: </dev/pts/N`) and then runs the command as usual. The pty becomes the
session's controlling terminal and the instance's process group its
foreground group: Ctrl-C, job control and SIGWINCH behave as in a terminal.
Popen keeps its vfork path (a `preexec_fn` doing TIOCSCTTY would force a
full fork and Python code in the child: 2-4 times the cost of a pipe spawn,
see benchmarks/tty.py). Other systems, where opening does not make a
controlling terminal, take that slower path.

Reading. The master is one more non-blocking fd of the loop, read by the
log path like a pipe (with `read_pty` instead of os.readv, logpipes.py): EIO,
which the master returns once every slave fd is closed, is end of file.
`TtyFramer` is the framer of that stream: it turns
the terminal's `\\r\\n` back into `\\n` (one `bytes.replace` per read), keeps
what follows a lone `\\r` (a progress bar's last state), removes escape
sequences when asked, keeps the pending line (a `(Pdb) ` prompt) for
attach, and hands each raw read to an attached client first.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import selectors
import shlex
import struct
import subprocess
import sys
import termios
from collections.abc import Callable
from typing import Protocol

from keelrun.loop import Loop
from keelrun.supervisor.ansi import strip_ansi
from keelrun.supervisor.framing import LineFramer
from keelrun.supervisor.shellcmd import exec_form
from keelrun.supervisor.spawn import SHELL

DEFAULT_ROWS = 24
DEFAULT_COLS = 80
MAX_SIZE = 0xFFFF  # struct winsize holds unsigned shorts
# Keystrokes waiting for an app that does not read its terminal: past this the
# attached client is asked to stop sending (its connection stops being read).
MAX_PENDING_INPUT = 64 * 1024

# A read of the master this big suggests more is waiting (see read_pty).
COALESCE_MIN = 1024

_WINSIZE = struct.Struct("HHHH")
_LONE_CR = re.compile(rb"\r(?!\n)").search
_OPEN_MAKES_CTTY = sys.platform.startswith("linux")


# ---------------------------------------------------------------- spawning
def open_pty(rows: int = DEFAULT_ROWS, cols: int = DEFAULT_COLS) -> tuple[int, int, str]:
    """A new pty: (master, slave, slave path); both fds close on exec, the master
    is non-blocking and the window is rows x cols."""
    master, slave = os.openpty()  # glibc opens both with O_NOCTTY: never keelrun's terminal
    try:
        os.set_blocking(master, False)
        set_winsize(master, rows, cols)
        path = os.ttyname(slave)
    except OSError:
        os.close(master)
        os.close(slave)
        raise
    return master, slave, path


def tty_command(command: str, slave_path: str) -> str:
    """The shell script that takes the pty as controlling terminal, then runs command."""
    if not _OPEN_MAKES_CTTY:
        return exec_form(command)
    return f": <{shlex.quote(slave_path)}; {exec_form(command)}"


def _take_ctty() -> None:  # pragma: no cover - not Linux: runs in the forked child
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def spawn_on_tty(
    command: str, env: dict[str, str], slave: int, slave_path: str, watchdog_pid: bool = False
) -> subprocess.Popen[bytes]:
    """Start `/bin/sh -c command` on the pty, in a new session (its pid is its pgid).

    The caller closes its copy of ``slave`` afterwards, so that the master
    sees EOF once the instance's processes have closed theirs. The Popen must
    never be waited on (see spawn.py).
    """
    script = tty_command(command, slave_path)
    if watchdog_pid:
        from keelrun.supervisor.notify import with_watchdog_pid

        script = with_watchdog_pid(script)
    return subprocess.Popen(
        [SHELL, "-c", script],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        close_fds=True,
        restore_signals=True,
        start_new_session=True,
        preexec_fn=None if _OPEN_MAKES_CTTY else _take_ctty,
    )


def set_winsize(fd: int, rows: int, cols: int) -> None:
    """TIOCSWINSZ: on the master, the kernel sends SIGWINCH to the foreground group."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, _WINSIZE.pack(rows, cols, 0, 0))


def get_winsize(fd: int) -> tuple[int, int]:
    """(rows, cols) of a terminal fd."""
    rows, cols, _, _ = _WINSIZE.unpack(fcntl.ioctl(fd, termios.TIOCGWINSZ, bytes(_WINSIZE.size)))
    return rows, cols


# ---------------------------------------------------------------- reading
def read_pty(fd: int, bufs: list[memoryview]) -> int:
    """os.readv for a pty master: the same contract, but reads on while it pays.

    A master hands out at most a few KiB per read, so a flood would cost the
    log path one framing and formatting pass per few KiB. While reads come back
    big, more is surely waiting: read on into the same buffer (one block, one
    pass); a small read (a prompt, keystrokes echoed) costs no extra call.
    BlockingIOError when nothing is there; OSError (EIO) at the end, once what
    came before it has been returned.
    """
    view = bufs[0]
    total = n = os.readv(fd, bufs)
    while n >= COALESCE_MIN and len(view) - total >= COALESCE_MIN:
        try:
            n = os.readv(fd, [view[total:]])
        except OSError:  # EAGAIN, or EIO: that is reported by the next call
            break
        total += n
    return total


class TtyFramer(LineFramer):
    """The framer of a pty master: `\\r\\n` ends a line, escapes go when ``strip``.

    ``on_raw`` (an attached client) gets every read as it came, before
    framing; ``on_end`` is called once, at end of file.
    """

    __slots__ = ("on_end", "on_raw", "strip")

    def __init__(self, strip: bool = False) -> None:
        super().__init__()
        self.strip = strip
        self.on_raw: Callable[[bytes], None] | None = None
        self.on_end: Callable[[], None] | None = None

    def feed(self, data: bytes) -> bytes:
        if self.on_raw is not None:
            self.on_raw(data)
        # A read may end between the \r and the \n of one line end.
        if data[:1] == b"\n" and self.partial[-1:] == b"\r":
            self.partial = self.partial[:-1]
        if b"\r" in data:
            # Deleting one byte is ~4x faster than replacing a pair (no search per
            # match); it is the same when every \r is followed by its \n (ONLCR).
            if _LONE_CR(data) is None:
                data = data.replace(b"\r", b"")
            else:
                data = data.replace(b"\r\n", b"\n")
        return self._clean(super().feed(data))

    def _clean(self, block: bytes) -> bytes:
        if b"\r" in block:
            block = redrawn(block)
        if block and self.strip:
            return strip_ansi(block)
        return block

    def finish(self) -> bytes:
        tail = super().finish()
        if self.on_end is not None:
            callback, self.on_end = self.on_end, None
            callback()
        return self._clean(tail)

    @property
    def pending(self) -> bytes:
        """The line being written, without its newline yet (a prompt), as read."""
        return self.partial


def redrawn(block: bytes) -> bytes:
    """Each line of ``block`` as a terminal leaves it: what follows its last lone \\r.

    A progress bar redraws its line with \\r: its line in the log is its last
    state (README "Terminals"), not every frame glued together, and a \\r
    left in a line would make keelrun's own terminal overwrite the prefix.
    """
    out = []
    for line in block.split(b"\n"):
        if b"\r" in line:
            parts = [p for p in line.split(b"\r") if p]
            line = parts[-1] if parts else b""
        out.append(line)
    return b"\n".join(out)


# ---------------------------------------------------------------- the master
class Terminal:
    """keelrun's end of one process's pty: size, keystrokes in, the attach slot.

    The log path reads and closes ``master`` (a stream whose framer is
    ``framer``); keystrokes go through a duplicate of it, so that waiting for
    the pty to accept input is an EVENT_WRITE of its own in the loop and
    never touches the reader's registration.
    """

    def __init__(self, loop: Loop, master: int, *, strip: bool = False) -> None:
        self.loop = loop
        self.master = master
        self.framer = TtyFramer(strip)
        self.framer.on_end = self._at_eof
        self.rows, self.cols = DEFAULT_ROWS, DEFAULT_COLS
        self.session: Attached | None = None
        # Called when pending input has drained (resume reading the client).
        self.on_input_drained: Callable[[], None] | None = None
        self.ended = False  # end of file seen, or closed
        self._wfd = -1
        self._input = bytearray()

    def resize(self, rows: int, cols: int) -> None:
        if self.ended or (rows, cols) == (self.rows, self.cols):
            return
        with contextlib.suppress(OSError):
            set_winsize(self.master, rows, cols)
            self.rows, self.cols = rows, cols

    def write(self, data: bytes) -> bool:
        """Queue keystrokes for the app; False once too many wait (stop sending)."""
        if self.ended or not data:
            return True
        if self._wfd < 0:
            try:
                self._wfd = os.dup(self.master)  # dup'd fds are close-on-exec
            except OSError:
                return True
        self._input += data
        self._flush_input()
        return len(self._input) <= MAX_PENDING_INPUT

    def _flush_input(self) -> None:
        while self._input:
            try:
                n = os.write(self._wfd, self._input)
            except BlockingIOError:
                self.loop.set_events(self._wfd, selectors.EVENT_WRITE, self._on_writable)
                return
            except InterruptedError:
                continue
            except OSError:
                self._input.clear()  # EIO: the other side is gone
                break
            del self._input[:n]
        self.loop.set_events(self._wfd, 0, self._on_writable)
        if self.on_input_drained is not None:
            self.on_input_drained()

    def _on_writable(self, mask: int) -> None:
        if self._wfd >= 0:
            self._flush_input()

    @property
    def pending_input(self) -> int:
        return len(self._input)

    def _at_eof(self) -> None:
        self.close("exited")

    def close(self, why: str = "stopped") -> None:
        """End of this pty: the attached client is told ``why`` and let go.

        The log path closes the master itself; call this when it does so
        without reading to end of file (the instance is dropped).
        """
        if self.ended:
            return
        self.ended = True
        self.framer.on_end = None
        self._input.clear()
        if self._wfd >= 0:
            self.loop.remove(self._wfd)
            with contextlib.suppress(OSError):
                os.close(self._wfd)
            self._wfd = -1
        if self.session is not None:
            self.session.end(why)


class Attached(Protocol):
    """What a Terminal needs of an attach session (keelrun/supervisor/attach.py)."""

    def end(self, why: str) -> None: ...
