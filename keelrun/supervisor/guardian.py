"""Nothing keelrun started survives keelrun, even when it is SIGKILLed.

The parent-death signal only reaches direct children, and the orphans of a
killed subreaper are handed to init, so keelrun starts a tiny guardian: a
`/bin/sh` in a session of its own that blocks reading a pipe whose write end
only keelrun holds. When keelrun dies for any reason the read sees EOF, and
the guardian kills every process carrying this run's marker in its
environment: every descendant inherits it, daemons that called setsid too.
Where keelrun could make a cgroup for the run (cgroup.py), the guardian
first kills that whole cgroup, which also catches a daemon that cleared its
environment. On a clean exit keelrun leaves and removes its cgroup itself,
writes a line, and waits for the guardian to leave quietly.

A shell rather than a fork of keelrun: it costs a few hundred KiB instead of
a copy of the interpreter, and `pkill -f "keelrun start"` does not match it.
"""

from __future__ import annotations

import contextlib
import os
import time

from keelrun.supervisor.spawn import SHELL

MARKER_VAR = "KEELRUN_RUN_ID"

# $1 is the exact environment entry to look for. Three passes catch processes
# forked while the first pass was killing.
_SCRIPT = r"""
trap '' INT TERM HUP QUIT USR1 USR2 PIPE
cg=$2
gone() {  # wait up to 2 s for the run's cgroup to empty, and remove it
  [ -n "$cg" ] || return 0
  i=0
  while [ $i -lt 100 ]; do
    rmdir "$cg" 2>/dev/null && return 0
    sleep 0.02; i=$((i+1))
  done
  return 1
}
if read -r _; then exit 0; fi  # a clean exit: keelrun removed its cgroup itself
[ -n "$cg" ] && echo 1 > "$cg/cgroup.kill"
for pass in 1 2 3; do
  for f in /proc/[0-9]*/environ; do
    if tr '\000' '\n' < "$f" 2>/dev/null | grep -qxF "$1"; then
      p=${f#/proc/}; kill -9 "${p%/environ}" 2>/dev/null
    fi
  done
  sleep 0.05
done
gone
"""


class Guardian:
    def __init__(self, marker: str, cgroup: str | None) -> None:
        self.marker = marker
        self.cgroup = cgroup  # the run's cgroup, killed and removed by the guardian
        self.pid = -1
        self._w = -1

    def start(self) -> None:
        r, w = os.pipe2(os.O_CLOEXEC)
        try:
            self.pid = os.posix_spawn(
                SHELL,
                [
                    SHELL,
                    "-c",
                    _SCRIPT,
                    "guardian",
                    f"{MARKER_VAR}={self.marker}",
                    self.cgroup or "",
                ],
                {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, r, 0),
                    (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 2, "/dev/null", os.O_WRONLY, 0),
                ],
                setsid=True,
                setsigmask=(),
            )
        finally:
            os.close(r)
        self._w = w

    def release(self, timeout: float = 1.0) -> None:
        """Clean exit: everything is already stopped; tell the guardian to go, and reap it.

        The loop (and its reaper) has ended by now, so waiting for this one
        pid here races nobody; keelrun leaves no child behind it.
        """
        if self._w < 0:
            return
        with contextlib.suppress(OSError):
            os.write(self._w, b"done\n")
        with contextlib.suppress(OSError):
            os.close(self._w)
        self._w = -1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                return
            if pid:
                return
            time.sleep(0.002)
