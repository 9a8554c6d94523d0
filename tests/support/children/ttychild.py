"""A program that reports what its terminal looks like (tty and attach tests).

usage: ttychild.py MODE [ARG]
  probe      print one JSON line about its terminal, then exit
  sigint     fork; parent and child print "ready PID", then "SIGINT PID" when
             SIGINT comes, and exit
  winch      print "size RxC" at start and on every SIGWINCH; echo each input
             line as "got: LINE"; "quit" ends it
  flood N [--on-input]
             N numbered lines, print()ed (line-buffered on a terminal); with
             --on-input, once a first input line has come
  sink N     echo off; print "ready", wait for SIGUSR1, then read N bytes of
             input and print "read N"
Each report is one write(2), so a report is never split by a signal.
"""

import json
import os
import signal
import sys
import termios


def say(text: str) -> None:
    os.write(1, f"{text}\n".encode())


def probe() -> None:
    fd = os.open("/dev/tty", os.O_RDWR)  # fails without a controlling terminal
    size = os.get_terminal_size(0)
    report = {
        "isatty": [os.isatty(0), os.isatty(1), os.isatty(2)],
        "session_leader": os.getsid(0) == os.getpid(),
        "foreground": os.tcgetpgrp(fd) == os.getpgrp(),
        "tty": os.ttyname(0),
        "size": [size.lines, size.columns],
        "term_stdout_fd": os.ttyname(1) == os.ttyname(0) == os.ttyname(2),
    }
    say(json.dumps(report))


def sigint() -> None:
    def on_int(signum: int, frame: object) -> None:
        say(f"SIGINT {os.getpid()}")
        if child == 0:
            os._exit(0)

    signal.signal(signal.SIGINT, on_int)
    child = os.fork()
    say(f"ready {os.getpid()}")
    if child:
        os.waitpid(child, 0)  # SIGINT runs the handler, then the wait goes on
    else:
        while True:
            signal.pause()


def winch() -> None:
    def report(signum: int = 0, frame: object = None) -> None:
        size = os.get_terminal_size(0)
        say(f"size {size.lines}x{size.columns}")

    signal.signal(signal.SIGWINCH, report)
    report()
    for line in sys.stdin:
        line = line.rstrip("\n")
        if line == "quit":
            break
        say(f"got: {line}")


def flood(n: int) -> None:
    if "--on-input" in sys.argv:
        sys.stdin.readline()
    for i in range(n):
        print(f"line {i:07d} " + "x" * 40)


def sink(n: int) -> None:
    attrs = termios.tcgetattr(0)
    attrs[3] &= ~termios.ECHO
    termios.tcsetattr(0, termios.TCSANOW, attrs)
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
    say("ready")
    signal.sigwait([signal.SIGUSR1])
    got = 0
    while got < n:
        got += len(os.read(0, 65536))
    say(f"read {got}")


mode = sys.argv[1]
if mode in ("flood", "sink"):
    {"flood": flood, "sink": sink}[mode](int(sys.argv[2]))
else:
    {"probe": probe, "sigint": sigint, "winch": winch}[mode]()
