"""A stand-in app that speaks sd_notify to $NOTIFY_SOCKET, from itself or a descendant.

usage: notifier.py [--depth N] [--setsid] [--fds] [--exit] [--ping SECONDS COUNT]
                   [--then MESSAGE]... MESSAGE...
Each MESSAGE (Python escapes allowed: "READY=1\\nSTATUS=up", "\\xff") is one
datagram, sent by the process N generations below this one (0: this one);
--setsid: that process leaves the session first; --fds: the first datagram
carries two file descriptors (SCM_RIGHTS). The sender prints "sent PID",
then every process waits for SIGTERM/SIGKILL (--exit: the sender exits at once;
--ping: it first sends WATCHDOG=1 COUNT times, SECONDS apart, printing "pinged" after).
--then: each SIGUSR1 to the process group makes the sender send the next of these
messages and print "then N" (the processes above it ignore SIGUSR1).
"""

import array
import codecs
import os
import signal
import socket
import sys
import time

args = sys.argv[1:]
depth = int(args[args.index("--depth") + 1]) if "--depth" in args else 0
if "--depth" in args:
    del args[args.index("--depth") + 1]
ping = None
if "--ping" in args:
    i = args.index("--ping")
    ping = float(args[i + 1]), int(args[i + 2])
    del args[i + 1 : i + 3]
later = []
while "--then" in args:
    i = args.index("--then")
    later.append(codecs.escape_decode(args[i + 1].encode())[0])
    del args[i : i + 2]
messages = [codecs.escape_decode(a.encode())[0] for a in args if not a.startswith("--")]
pokes = []
signal.signal(signal.SIGUSR1, lambda *a: pokes.append(1))

for _ in range(depth):
    if os.fork() != 0:
        while True:  # a parent in the middle of the tree, holding nothing
            signal.pause()

if "--setsid" in args:
    os.setsid()
address = os.environ["NOTIFY_SOCKET"]
if address.startswith("@"):
    address = "\0" + address[1:]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.connect(address)
for i, message in enumerate(messages):
    if i == 0 and "--fds" in args:
        r, w = os.pipe()
        sock.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [r, w]))])
        os.close(r)
        os.close(w)
    else:
        sock.send(message)
os.write(1, f"sent {os.getpid()}\n".encode())
if ping is not None:
    for _ in range(ping[1]):
        time.sleep(ping[0])
        sock.send(b"WATCHDOG=1")
    os.write(1, b"pinged\n")
if "--exit" in args:
    os._exit(0)
sent_later = 0
while True:
    signal.pause()
    while pokes and sent_later < len(later):
        pokes.pop()
        sock.send(later[sent_later])
        sent_later += 1
        os.write(1, f"then {sent_later}\n".encode())
