"""Nothing keelrun started survives keelrun, even when it is SIGKILLed.

The parent-death signal only reaches direct children, and the orphans of a
killed subreaper are handed to init, so keelrun starts a tiny guardian: a
`/bin/sh` in a session of its own that blocks reading a pipe whose write end
only keelrun holds. When keelrun dies for any reason the read sees EOF, and
the guardian kills every process carrying this run's marker in its
environment: every descendant inherits it, daemons that called setsid too.
Where keelrun could make a cgroup for the run (cgroup.py), the guardian
first kills that whole cgroup, which also catches a daemon that cleared its
environment. On a clean exit keelrun writes a line first, and the guardian
only removes the cgroup once keelrun has left it (by exiting).

A shell rather than a fork of keelrun: it costs a few hundred KiB instead of
a copy of the interpreter, and `pkill -f "keelrun start"` does not match it.
"""

from __future__ import annotations

import contextlib
import os

from keelrun.supervisor.spawn import SHELL

MARKER_VAR = "KEELRUN_RUN_ID"

# $1 is the exact environment entry to look for. Three passes catch processes
# forked while the first pass was killing.
_SCRIPT = r"""
trap '' INT TERM HUP QUIT USR1 USR2 PIPE
mk=$1 cg=$2
gone() {  # wait up to 2 s for the run's cgroup to empty, and remove it
  [ -n "$cg" ] || return 0
  i=0
  while [ $i -lt 100 ]; do
    rmdir "$cg" 2>/dev/null && return 0
    sleep 0.02; i=$((i+1))
  done
  return 1
}
guard() {
  if read -r _ <&3; then  # a clean exit: remove the cgroup once keelrun has left it
    gone || { echo 1 > "$cg/cgroup.kill"; gone; }
    exit 0
  fi
  [ -n "$cg" ] && echo 1 > "$cg/cgroup.kill"
  for pass in 1 2 3; do
    for f in /proc/[0-9]*/environ; do
      if tr '\000' '\n' < "$f" 2>/dev/null | grep -qxF "$mk"; then
        p=${f#/proc/}; kill -9 "${p%/environ}" 2>/dev/null
      fi
    done
    sleep 0.05
  done
  gone
}
guard &
"""


class Guardian:
    def __init__(self, marker: str, cgroup: str | None) -> None:
        self.marker = marker
        self.cgroup = cgroup  # the run's cgroup, killed and removed by the guardian
        self.pid = -1
        self._w = -1

    def start(self) -> None:
        """Start the guardian, detached: keelrun must not be a subreaper yet.

        The shell keelrun spawns forks the guardian and exits, so the guardian
        is reparented away from keelrun: it is nobody keelrun waits for, and it
        may outlive a clean exit by the moment it takes to remove the cgroup.
        """
        if os.getpid() == 1:
            return  # the kernel ends the whole pid namespace with its init
        r, w = os.pipe2(os.O_CLOEXEC)
        if r == 3:  # dup2(3, 3) would leave close-on-exec set
            r, old = os.dup(r), r
            os.close(old)
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
                    (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 2, "/dev/null", os.O_WRONLY, 0),
                    (os.POSIX_SPAWN_DUP2, r, 3),
                ],
                setsid=True,
                setsigmask=(),
            )
        finally:
            os.close(r)
        self._w = w
        # Wait for the shell that forked the guardian: once it is gone the
        # guardian has been reparented away from keelrun, before keelrun
        # becomes a subreaper (otherwise it would be keelrun's stray to stop).
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)

    def close(self) -> None:
        """Clean exit: everything is already stopped; tell the guardian to go."""
        if self._w < 0:
            return
        with contextlib.suppress(OSError):
            os.write(self._w, b"done\n")
        with contextlib.suppress(OSError):
            os.close(self._w)
        self._w = -1
