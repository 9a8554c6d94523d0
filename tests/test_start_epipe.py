"""When keelrun's own stdout goes away (EPIPE) it stops everything
gracefully and exits 1, without a traceback and without leaving anything behind."""

from __future__ import annotations

import os
import select
import time
from pathlib import Path

import pytest
from conftest import make_app
from support import alive, py, tree

pytestmark = pytest.mark.timeout(30)


def read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while needle not in data:
        left = deadline - time.monotonic()
        assert left > 0, f"{needle!r} not seen in {data[-500:]!r}"
        if select.select([fd], [], [], left)[0]:
            chunk = os.read(fd, 65536)
            assert chunk, f"EOF before {needle!r}"
            data += chunk
    return data


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_reader_going_away_stops_everything_and_exits_1(tmp_path: Path, keelrun, fmt: str) -> None:
    app = make_app(
        tmp_path,
        # keeps writing, so keelrun meets the closed pipe; and one that traps TERM
        "ticker: echo up; while :; do echo tick; sleep 0.02; done\n"
        f"web: exec {py('trapper.py', 'graceful')}\n",
    )
    run = keelrun.start("start", "--log-format", fmt, "-t", "3", cwd=app, mode="raw")
    read_until(run.stdout_fd, b"graceful up", timeout=10)
    children = [p for p in tree(run.pid) if alive(p)]
    run.proc.stdout.close()  # the consumer is gone
    assert run.wait_exit() == 1
    assert "Traceback" not in run.stderr, run.stderr
    assert not [p for p in children if alive(p)]


def test_epipe_under_a_flood(tmp_path: Path, keelrun) -> None:
    app = make_app(tmp_path, f"f: exec {py('flood.py', 'f', '2000000', '100')}\n")
    run = keelrun.start("start", cwd=app, mode="raw")
    read_until(run.stdout_fd, b"f o 000001000 ", timeout=10)
    run.proc.stdout.close()
    assert run.wait_exit() == 1
    assert "Traceback" not in run.stderr, run.stderr
