"""Leaves zombies and an orphan behind, then waits for a trigger to exit.

usage: zmaker.py TRIGGER_FIFO N_ZOMBIES
- N children exit at once and are never waited for: zombies of this process,
  which become orphan zombies for keelrun to reap when this process exits;
- one double-forked grandchild (an orphan, reparented to keelrun at once)
  waits for the same trigger, then exits.
Each waiter opens the FIFO before announcing itself; the test holds the write
end and closes it to release them all.
"""

import os
import sys

trigger, n = sys.argv[1], int(sys.argv[2])

zombies = []
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    zombies.append(pid)

middle = os.fork()
if middle == 0:
    if os.fork() == 0:  # the orphan
        with open(trigger, "rb") as f:
            os.write(1, f"orphan ready pid={os.getpid()}\n".encode())
            f.read()
        os.write(1, b"orphan done\n")
        os._exit(0)
    os._exit(0)
os.waitpid(middle, 0)

with open(trigger, "rb") as f:
    os.write(1, f"maker ready zombies={','.join(map(str, zombies))}\n".encode())
    f.read()
os.write(1, b"maker done\n")
