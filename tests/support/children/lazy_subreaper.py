"""A child subreaper that never reaps: the negative control for reaping tests.

usage: lazy_subreaper.py COMMAND...
Runs COMMAND (stdout inherited), then waits for signals without ever calling
wait(): orphans reparented to it stay zombies.
"""

import ctypes
import os
import signal
import sys

PR_SET_CHILD_SUBREAPER = 36
assert ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ)
while True:
    signal.pause()
