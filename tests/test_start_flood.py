"""Lines under load: every line of a flood arrives whole, in order, and
keelrun's memory stays bounded when its reader stalls (back-pressure)."""

from __future__ import annotations

import re
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import make_app
from support import alive, py, rss_kib, tree
from support.runner import read_until_eof

pytestmark = pytest.mark.timeout(60)

PAD = b"abcdefghijklmnopqrstuvwxyz0123456789" * 60
LINE = re.compile(rb"(\d\d:\d\d:\d\d )?(\S+) *\| (\S+) ([oe]) (\d{9}) ([a-z0-9]*)")


def check_flood(output: bytes, names: list[str], count: int, length: int, every: int) -> None:
    """Every line of every (process, stream) present once, in order, intact, unmixed."""
    seen: dict[tuple[str, str], int] = defaultdict(int)
    bad: list[bytes] = []
    for line in output.split(b"\n")[:-1]:
        if b"keelrun " in line[:20]:
            continue
        m = LINE.fullmatch(line)
        if not m:
            bad.append(line)
            continue
        _, prefix, name, stream, seq, pad = m.groups()
        key = (name.decode(), stream.decode())
        head_len = len(name) + 3 + 9 + 1
        if prefix != name + b".1" or int(seq) != seen[key] or pad != PAD[: length - head_len]:
            bad.append(line)
            continue
        seen[key] += 1
    assert not bad, f"{len(bad)} mangled, mixed or out-of-order lines, first: {bad[0][:200]!r}"
    errs = len(range(0, count, every)) if every else 0
    expected = {(n, s): c for n in names for s, c in (("o", count - errs), ("e", errs)) if c}
    assert dict(seen) == expected


def test_flood_of_four_processes_loses_nothing(tmp_path: Path, keelrun) -> None:
    names, count, length, every = ["f1", "f2", "f3", "f4"], 200_000, 60, 7
    procfile = "".join(
        f"{n}: exec {py('flood.py', n, str(count), str(length), '--stderr-every', str(every))}\n"
        for n in names
    )
    app = make_app(tmp_path, procfile)
    run = keelrun.start("start", cwd=app, mode="raw")
    output = read_until_eof(run.stdout_fd, timeout=45)
    assert run.wait_exit() == 0
    assert output.endswith(b"\n")
    check_flood(bytes(output), names, count, length, every)


def test_stalled_reader_keeps_memory_bounded_and_loses_nothing(tmp_path: Path, keelrun) -> None:
    # 4 x 60 MB: far more than keelrun may buffer. Without back-pressure it would
    # read everything while the reader stalls and its RSS would pass 200 MB.
    names, count, length = ["s1", "s2", "s3", "s4"], 60_000, 1000
    procfile = "".join(
        f"{n}: exec {py('flood.py', n, str(count), str(length), '--stderr-every', '0')}\n"
        for n in names
    )
    app = make_app(tmp_path, procfile)
    run = keelrun.start("start", "--no-timestamp", cwd=app, mode="raw")
    baseline = rss_kib(run.pid)

    # The stall: read nothing for 1.5 s while sampling keelrun's memory.
    peak = baseline
    tick = threading.Event()
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        peak = max(peak, rss_kib(run.pid))
        tick.wait(0.05)
    # The writers are held back, not done: back-pressure reached them.
    writers = [pid for pid in tree(run.pid) if alive(pid)]
    assert len(writers) >= 2, "every flood process finished while nobody read keelrun's output"
    assert peak < 100 * 1024, f"keelrun RSS reached {peak} KiB while its reader stalled"

    output = read_until_eof(run.stdout_fd, timeout=45)
    assert run.wait_exit() == 0
    check_flood(bytes(output), names, count, length, every=0)
