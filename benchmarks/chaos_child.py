"""The hostile children of the chaos run: one script, one mode per process type.

Usage: chaos_child.py MODE   (flood, steady, partial, huge, stubborn, orphans, daemon)

Counted lines are self-checking: ``C <run> <seq> <crc> <payload>`` or, for a
line longer than 1 MiB, ``H <run> <seq> <total> <crc> <body>`` (the crc covers
the payload or body). ``steady`` also writes payloads of random bytes (any
but the newline), which text mode must pass through unchanged. ``<run>``
names this incarnation (``$PS-pid-random``).
Each incarnation keeps a record file ``$CHAOS_REC/<run>`` holding
``committed inflight done``: before a write() the count it will reach
(inflight), after the write returned the count written (committed), and
``done=1`` once it has written its last line. A process killed in the middle
of a write has delivered between committed and inflight lines; one that
finished must have delivered exactly committed.

SIGTERM is handled by finishing the line in hand, writing the record and
exiting 0 (except ``stubborn``, which ignores it and is SIGKILLed). Standalone:
it imports nothing from keelrun or the benchmark package.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
import zlib

MiB = 1024 * 1024
ALPHABET = (b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" * 80)[:4096]
HUGE_BODY = (b"0123456789abcdef-huge-line-" * (4 * MiB // 27 + 1))[: 4 * MiB]

stop = False


def _on_term(signum: int, frame: object) -> None:
    global stop
    stop = True


class Counter:
    """Numbered lines and the record of how many were written."""

    def __init__(self) -> None:
        self.run = f"{os.environ.get('PS', 'x')}-{os.getpid()}-{random.getrandbits(24):06x}"
        path = os.path.join(os.environ["CHAOS_REC"], self.run)
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.seq = 0
        self._record(0, 0, 0)

    def _record(self, committed: int, inflight: int, done: int) -> None:
        os.pwrite(self.fd, b"%d %d %d\n".ljust(40) % (committed, inflight, done), 0)

    def line(self, size: int, binary: bool = False) -> bytes:
        self.seq += 1
        if binary:  # any byte but the newline: not UTF-8, control characters, " | "
            payload = os.urandom(size).replace(b"\n", b" | ")
        else:
            start = self.seq % 1024
            payload = ALPHABET[start : start + size]
        crc = zlib.crc32(payload)
        return b"C %s %d %08x %s\n" % (self.run.encode(), self.seq, crc, payload)

    def huge(self, total: int) -> bytes:
        """One line of ``total`` bytes (newline excluded): longer than 1 MiB means pieces."""
        self.seq += 1
        head = b"H %s %d %d " % (self.run.encode(), self.seq, total)
        head += b"%08x " % 0  # placeholder of the right width, fixed below
        body = HUGE_BODY[(self.seq * 7) % 1000 :][: total - len(head)]
        head = head[:-9] + b"%08x " % zlib.crc32(body)
        return head + body + b"\n"

    def write(self, data: bytes, lines: int) -> None:
        """Write ``lines`` complete lines (all of ``data``) and record them."""
        before = self.seq - lines
        self._record(before, self.seq, 0)
        view = memoryview(data)
        while view:
            n = os.write(1, view)
            view = view[n:]
        self._record(self.seq, self.seq, 0)

    def done(self) -> None:
        self._record(self.seq, self.seq, 1)


def end(counter: Counter | None) -> None:
    """Finish as the dice say: clean exit, failure status or death by signal."""
    if counter is not None:
        counter.done()
    roll = random.random()
    if stop or roll < 0.5:
        os._exit(0)
    if roll < 0.8:
        os._exit(random.choice((1, 2, 3, 42)))
    os.kill(os.getpid(), random.choice((signal.SIGKILL, signal.SIGABRT, signal.SIGSEGV)))
    os._exit(99)


def flood(c: Counter, deadline: float) -> None:
    while not stop and time.monotonic() < deadline:
        n = random.randint(20, 400)
        block = b"".join(c.line(random.randint(10, 200)) for _ in range(n))
        c.write(block, n)
        if random.random() < 0.05:
            time.sleep(random.uniform(0, 0.02))


def steady(c: Counter, deadline: float) -> None:
    while not stop and time.monotonic() < deadline:
        c.write(c.line(random.randint(0, 300), binary=random.random() < 0.3), 1)
        time.sleep(random.uniform(0.001, 0.03))


def partial(c: Counter, deadline: float) -> None:
    """Each line in several writes with pauses between; the last line has no newline."""
    while not stop and time.monotonic() < deadline:
        data = c.line(random.randint(30, 3000))
        cuts = sorted(random.sample(range(1, len(data) - 1), 2))
        c._record(c.seq - 1, c.seq, 0)
        for piece in (data[: cuts[0]], data[cuts[0] : cuts[1]], data[cuts[1] :]):
            os.write(1, piece)
            time.sleep(random.uniform(0, 0.004))
        c._record(c.seq, c.seq, 0)
    c.write(c.line(random.randint(1, 100))[:-1], 1)  # final line, no newline


def huge(c: Counter, deadline: float) -> None:
    sizes = (MiB - 1, MiB, MiB + 1, 2 * MiB, 2 * MiB + 3, 3 * MiB + 12345, 200_000)
    while not stop and time.monotonic() < deadline:
        if random.random() < 0.3:
            c.write(c.huge(random.choice(sizes)), 1)
        else:
            c.write(c.line(random.randint(0, 100)), 1)
        time.sleep(random.uniform(0.01, 0.2))


def stubborn(c: Counter, deadline: float) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while time.monotonic() < deadline:
        c.write(c.line(random.randint(0, 200)), 1)  # < PIPE_BUF: atomic even if killed
        time.sleep(random.uniform(0.005, 0.05))


def orphans(deadline: float) -> None:
    """Double-fork grandchildren that outlive their parent for a moment."""
    while not stop and time.monotonic() < deadline:
        middle = os.fork()
        if middle == 0:
            if os.fork() == 0:
                time.sleep(random.uniform(0.01, 1.5))
                os.write(1, b"O %d orphan done\n" % os.getpid())
                os._exit(random.choice((0, 1)))
            os._exit(0)
        os.waitpid(middle, 0)
        time.sleep(random.uniform(0.05, 0.5))


def daemon(deadline: float) -> None:
    """setsid daemons: most exit after a while, some live until keelrun stops."""
    forever = random.random() < 0.2
    while not stop and time.monotonic() < deadline:
        middle = os.fork()
        if middle == 0:
            os.setsid()
            if os.fork() == 0:
                if random.random() < 0.5:
                    null = os.open(os.devnull, os.O_RDWR)
                    for fd in (0, 1, 2):
                        os.dup2(null, fd)
                else:
                    os.write(1, b"D %d daemon up\n" % os.getpid())
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                time.sleep(1e6 if forever else random.uniform(0.2, 8))
                os._exit(0)
            os._exit(0)
        os.waitpid(middle, 0)
        forever = False
        time.sleep(random.uniform(0.3, 2))


def main() -> None:
    mode = sys.argv[1]
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGUSR1, lambda s, f: None)
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    lifetime = {"flood": (0.3, 6), "stubborn": (2, 20), "orphans": (2, 10), "daemon": (2, 10)}
    low, high = lifetime.get(mode, (1, 15))
    deadline = time.monotonic() + random.uniform(low, high)
    if mode in ("orphans", "daemon"):
        (orphans if mode == "orphans" else daemon)(deadline)
        end(None)
    counter = Counter()
    {"flood": flood, "steady": steady, "partial": partial, "huge": huge, "stubborn": stubborn}[
        mode
    ](counter, deadline)
    end(counter)


if __name__ == "__main__":
    main()
