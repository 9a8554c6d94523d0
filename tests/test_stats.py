"""`keelrun ps` figures: the one-pass /proc reading agrees with psutil's per-process one."""

from __future__ import annotations

import subprocess
import sys

import pytest

from keelrun.supervisor.stats import _psutil_stats, snapshot, tree_stats

pytestmark = pytest.mark.timeout(30)


def test_proc_pass_and_psutil_agree_on_a_real_tree() -> None:
    # A Python process with two sleeping children: a stable tree.
    code = (
        "import subprocess, time\n"
        "kids = [subprocess.Popen(['sleep', '30']) for _ in range(2)]\n"
        "print('up', flush=True)\n"
        "time.sleep(30)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
        # The children may still be paging in after exec: the one-pass reading must
        # fall between two psutil readings taken around it.
        _, before = _psutil_stats(proc.pid)
        fast_cpu, fast_rss = tree_stats(proc.pid, snapshot())
        slow_cpu, slow_rss = _psutil_stats(proc.pid)
        assert fast_rss is not None and slow_rss is not None and fast_cpu is not None
        assert before is not None
        low, high = min(before, slow_rss), max(before, slow_rss)
        assert 0.95 * low <= fast_rss <= 1.05 * high, (before, fast_rss, slow_rss)
        assert fast_rss > 3 * 1024 * 1024  # the interpreter and two sleeps, summed
        # A young process's lifetime average swings with the clock's 10 ms ticks:
        # both readings are percentages of at most the machine's CPUs.
        assert slow_cpu is not None
        import os

        for cpu in (fast_cpu, slow_cpu):
            assert 0.0 <= cpu <= 100.0 * (os.cpu_count() or 1)
    finally:
        subprocess.run(["pkill", "-KILL", "-P", str(proc.pid)], check=False)
        proc.kill()
        proc.wait()


def test_a_gone_process_has_no_figures() -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert tree_stats(proc.pid, snapshot()) == (None, None)
    assert _psutil_stats(proc.pid) == (None, None)
