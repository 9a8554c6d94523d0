"""Nothing keelrun started survives keelrun, even when it is SIGKILLed.

The parent-death signal only reaches direct children, and orphans of a killed
subreaper are handed to init, so keelrun forks a tiny guardian first. It sits
in a blocking read on a pipe whose write end only keelrun holds: when keelrun
dies for any reason the read returns EOF, and the guardian kills every process
that carries this run's marker in its environment (every descendant inherits
it, daemons that left their session with setsid included). On a clean exit
keelrun writes one byte first and the guardian leaves quietly.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

from keelrun.supervisor.procscan import processes_with_env

MARKER_VAR = "KEELRUN_RUN_ID"


class Guardian:
    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.pid = -1
        self._w = -1

    def start(self) -> None:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the guardian
            try:
                os.close(w)
                _guard(r, f"{MARKER_VAR}={self.marker}".encode())
            finally:
                os._exit(0)
        os.close(r)
        os.set_inheritable(w, False)
        self.pid = pid
        self._w = w

    def release(self) -> None:
        """Clean exit: everything is already stopped, tell the guardian to go."""
        if self._w >= 0:
            try:
                os.write(self._w, b"x")
                os.close(self._w)
            except OSError:
                pass
            self._w = -1


def _guard(r: int, marker: bytes) -> None:
    os.setsid()  # out of keelrun's group: a signal to that group must not reach us
    for sig in (
        signal.SIGINT,
        signal.SIGTERM,
        signal.SIGHUP,
        signal.SIGQUIT,
        signal.SIGUSR1,
        signal.SIGUSR2,
        signal.SIGPIPE,
    ):
        signal.signal(sig, signal.SIG_IGN)
    os.closerange(0, r)
    os.closerange(r + 1, 65536)
    while True:
        try:
            data = os.read(r, 1)
            break
        except InterruptedError:
            continue
    if data:
        return
    # keelrun died without a word: kill its whole tree. Repeat a few times for
    # processes forked while we were killing.
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        pids = processes_with_env(marker)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)
