"""Prints every signal it gets; stop signals end it unless told otherwise.

usage: trapper.py NAME [--ignore-term] [--slow-exit SECONDS]
--slow-exit: after a stop signal, keep running (and reporting signals) that
long before exiting, as a server finishing its requests would.
Each report is one write(2) call, so lines of processes sharing a pipe never mix.
"""

import os
import signal
import sys
import threading

name = sys.argv[1]
ignore_term = "--ignore-term" in sys.argv
slow = float(sys.argv[sys.argv.index("--slow-exit") + 1]) if "--slow-exit" in sys.argv else 0.0
STOPS = {signal.SIGINT, signal.SIGTERM, signal.SIGQUIT}
stopping = threading.Event()


def say(text: str) -> None:
    os.write(1, f"{text}\n".encode())


def on_signal(signum: int, frame: object) -> None:
    say(f"{name} got {signal.Signals(signum).name}")
    if signum in STOPS and not (ignore_term and signum == signal.SIGTERM):
        stopping.set()


for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
    signal.signal(sig, on_signal)
say(f"{name} up pid={os.getpid()} pgid={os.getpgid(0)} sid={os.getsid(0)}")
while not stopping.wait(3600):
    pass
threading.Event().wait(slow)  # the slow shutdown is the scenario, not a synchronisation
sys.exit(0)
