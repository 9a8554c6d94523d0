"""Becomes a daemon (double fork + setsid) that reports signals to a file.

usage: daemon.py REPORT_FILE [--ignore-term] [--clear-env]
The Procfile process exits once the daemon is ready (no race with a stop of
its group). The daemon prints "daemon ready pid=P sid=S" on the inherited stdout, then
waits; on SIGTERM it writes "got SIGTERM" to REPORT_FILE and exits (unless
--ignore-term). --clear-env: the daemon re-executes itself with an empty
environment first (it then carries no trace of who started it).
"""

import os
import signal
import sys

report = sys.argv[1]
ignore_term = "--ignore-term" in sys.argv

ready_fd = int(sys.argv[sys.argv.index("--ready-fd") + 1]) if "--ready-fd" in sys.argv else -1
if "--daemon" not in sys.argv:
    # Like a well-behaved forking server, the parent exits once the daemon is ready.
    r, ready_fd = os.pipe()
    if os.fork() != 0:
        os.close(ready_fd)
        os.read(r, 1)
        os._exit(0)
    os.close(r)
    os.setsid()
    if os.fork() != 0:
        os._exit(0)
    if "--clear-env" in sys.argv:
        os.set_inheritable(ready_fd, True)
        args = [a for a in sys.argv[1:] if a != "--clear-env"]
        argv = [sys.executable, __file__, *args, "--daemon", "--ready-fd", str(ready_fd)]
        os.execve(sys.executable, argv, {})


def on_term(signum: int, frame: object) -> None:
    with open(report, "a") as f:
        f.write("got SIGTERM\n")
    if not ignore_term:
        os._exit(0)


signal.signal(signal.SIGTERM, on_term)
os.write(1, f"daemon ready pid={os.getpid()} sid={os.getsid(0)}\n".encode())
os.write(ready_fd, b"x")
os.close(ready_fd)
while True:
    signal.pause()
