"""The file watcher (keelrun/watch/watcher.py) with real files and a real inotify.

Each test runs keelrun's own loop on the test's thread, as the supervisor
would, and waits on the watcher's callbacks, every wait bounded.
"""

from __future__ import annotations

import itertools
import os
import resource
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.procs import poll_until

from keelrun.loop import Loop
from keelrun.watch.rules import Changes, WatchRules
from keelrun.watch.watcher import QUIET, Watcher

pytestmark = pytest.mark.timeout(30)


class Harness:
    """A loop, a watcher on ``root`` and what its callbacks delivered."""

    def __init__(self, root: Path, patterns: dict[str, list[str]], reload: list[Path]) -> None:
        self.root = root
        self.loop = Loop()
        self.batches: list[tuple[float, Changes]] = []
        self.errors: list[str] = []
        self.ready: int | None = None
        rules = WatchRules.build(
            str(root),
            patterns,
            reload_files=[str(p) for p in reload],
            never=[str(root / ".keelrun.sock")],
        )
        self.watcher = Watcher(self.loop, rules, self._changed, self._error, self._ready)

    def _changed(self, changes: Changes) -> None:
        self.batches.append((time.monotonic(), changes))
        self.loop.stop()

    def _error(self, message: str) -> None:
        self.errors.append(message)
        self.loop.stop()

    def _ready(self, n: int) -> None:
        self.ready = n
        self.loop.stop()

    def run(self, seconds: float) -> None:
        """Run the loop until a callback stops it or ``seconds`` pass."""
        timer = self.loop.call_later(seconds, self.loop.stop)
        self.loop.run()
        timer.cancel()

    def start(self) -> None:
        self.fds_before_start = open_fds()
        self.watcher.start()
        self.run(10)
        assert self.ready is not None, f"the watcher never became ready: {self.errors}"

    def next_batch(self, within: float = 5.0) -> Changes:
        seen = len(self.batches)
        self.run(within)
        assert len(self.batches) > seen, f"no batch within {within}s (errors: {self.errors})"
        return self.batches[-1][1]

    def no_batch(self, during: float) -> None:
        """Run the loop for ``during`` seconds: nothing may arrive (an absence has no event)."""
        seen = len(self.batches)
        self.run(during)
        assert len(self.batches) == seen, f"unexpected batch: {self.batches[seen:]}"


@pytest.fixture
def watch(tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(
        patterns: dict[str, list[str]],
        reload: list[Path] | None = None,
        before: Callable[[Path], None] | None = None,
    ) -> Harness:
        root = tmp_path / "app"
        root.mkdir(exist_ok=True)
        (root / "Procfile").write_text("web: python app.py\n")
        if before is not None:
            before(root)
        h = Harness(root, patterns, reload if reload is not None else [root / "Procfile"])
        made.append(h)
        h.start()
        return h

    yield make
    for h in made:
        assert h.watcher.stop(), "the watcher thread did not end"
        h.loop.close()


def write(path: Path, text: str = "x = 1\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_write_to_app_py_restarts_the_type_watching_py_files(watch) -> None:
    h = watch({"web": ["**/*.py"], "worker": ["worker/**"]})
    wrote = time.monotonic()
    write(h.root / "app.py")
    changes = h.next_batch()
    assert dict(changes.types) == {"web": ("app.py",)}
    assert changes.reload == () and changes.examples() == ("app.py",)
    # Not before the quiet period, and not long after it.
    waited = h.batches[-1][0] - wrote
    assert QUIET <= waited < QUIET + 1.0, waited


def test_a_burst_of_writes_is_one_batch(watch) -> None:
    h = watch({"web": ["**/*.py"]})
    times = []
    for i in range(20):
        write(h.root / f"m{i:02d}.py")
        times.append(time.monotonic())
        time.sleep(0.004)  # spreads the burst over ~100 ms, as an editor or git does
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) < QUIET / 2, f"the machine is too slow for a burst: {gaps}"
    changes = h.next_batch()
    assert dict(changes.types) == {"web": ("m00.py", "m01.py", "m02.py")}
    h.no_batch(2 * QUIET + 0.5)


def test_changes_closer_than_the_quiet_period_merge(watch) -> None:
    h = watch({"web": ["**/*.py"]})
    write(h.root / "a.py")
    pause = threading.Event()
    pause.wait(QUIET * 0.6)  # the gap under test, not a wait for something
    write(h.root / "b.py")
    changes = h.next_batch()
    assert dict(changes.types) == {"web": ("a.py", "b.py")}
    h.no_batch(2 * QUIET + 0.5)


@pytest.mark.parametrize("gap", [0.6, 0.9])
def test_a_change_within_the_quiet_period_merges_with_the_loop_running(watch, gap: float) -> None:
    """The second write comes while the loop already holds the first batch."""
    h = watch({"web": ["**/*.py"]})
    second: list[float] = []

    def writes() -> None:
        write(h.root / "a.py")
        threading.Event().wait(gap * QUIET)  # the gap under test, not a wait for something
        write(h.root / "b.py")
        second.append(time.monotonic())

    writer = threading.Thread(target=writes)
    writer.start()
    changes = h.next_batch(within=5)
    writer.join(5)
    assert dict(changes.types) == {"web": ("a.py", "b.py")}, h.batches
    assert QUIET <= h.batches[0][0] - second[0] < QUIET + 1.0
    h.no_batch(2 * QUIET + 0.5)


def test_a_long_burst_is_one_batch_after_its_last_change(watch) -> None:
    """Longer than watchfiles' own 1 s hand-over, with the loop running all along:
    still one batch, QUIET after the last change."""
    h = watch({"web": ["**/*.py"]})
    last: list[float] = []

    def burst() -> None:
        pace = threading.Event()
        ends = time.monotonic() + 2.5
        while time.monotonic() < ends:
            write(h.root / "app.py", f"x = {time.monotonic()}\n")
            last.append(time.monotonic())
            pace.wait(0.1)  # the burst's rhythm (an editor saving), not a wait for something

    writer = threading.Thread(target=burst)
    writer.start()
    changes = h.next_batch(within=10)
    writer.join(5)
    assert not writer.is_alive()
    assert dict(changes.types) == {"web": ("app.py",)}
    waited = h.batches[0][0] - last[-1]
    assert QUIET <= waited < QUIET + 1.0, f"{waited:.2f}s after the last change"
    h.no_batch(2 * QUIET + 0.5)


def test_ignored_directories_and_the_socket_give_nothing(watch) -> None:
    ignored = {
        "git": [".git/**"],
        "pycache": ["**/__pycache__/**"],
        "venvs": [".venv/**", "venv/**"],
        "node": ["**/node_modules/**"],
        "dot": [".cache/**", "pkg/.hidden/**"],
        "sock": [".keelrun.sock"],
        "app": ["app.py"],
    }
    root_dirs = [".git", "__pycache__", ".venv", "venv", "node_modules", ".cache", "pkg/.hidden"]

    def some_exist_already(root: Path) -> None:
        for d in root_dirs[:4]:
            write(root / d / "old.py")

    # Some exist before the watcher starts, the others appear while it runs.
    h = watch(ignored, before=some_exist_already)
    for d in root_dirs:
        write(h.root / d / "x.py")
        write(h.root / d / "sub" / "y.py")
    write(h.root / "node_modules" / "pkg" / "__pycache__" / "z.pyc")
    write(h.root / "pkg" / "__pycache__" / "m.cpython-311.pyc")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(h.root / ".keelrun.sock"))
    h.no_batch(2 * QUIET + 0.5)
    # The watcher was live all along: the next real change comes alone.
    write(h.root / "app.py")
    assert dict(h.next_batch().types) == {"app": ("app.py",)}


def test_a_directory_that_appears_is_watched(watch) -> None:
    h = watch({"web": ["**/*.py"]})
    write(h.root / "pkg" / "new" / "mod.py")  # the directory and its file, at once
    assert dict(h.next_batch().types) == {"web": ("pkg/new/mod.py",)}
    write(h.root / "pkg" / "new" / "later.py")  # written once the new directory is watched
    assert dict(h.next_batch().types) == {"web": ("pkg/new/later.py",)}


def test_procfile_and_env_changes_ask_for_a_reload(watch, tmp_path: Path) -> None:
    shared = tmp_path / "shared" / "common.env"
    write(shared, "A=1\n")
    root = tmp_path / "app"
    h = watch({"web": ["**/*.py"]}, reload=[root / "Procfile", root / ".env", shared])
    write(h.root / "Procfile", "web: python app.py --port $PORT\n")
    changes = h.next_batch()
    assert changes.reload == ("Procfile",) and not changes.types
    write(h.root / ".env", "DEBUG=1\n")  # did not exist: its creation counts
    assert h.next_batch().reload == (".env",)
    write(shared, "A=2\n")  # outside the app root
    assert h.next_batch().reload == (str(shared.resolve()),)
    # An editor's save: write a temporary file, then rename it over the Procfile.
    tmp = h.root / ".Procfile.swp"
    tmp.write_text("web: python app.py\n")
    os.replace(tmp, h.root / "Procfile")
    changes = h.next_batch()
    assert changes.reload == ("Procfile",) and not changes.types


def test_a_name_that_is_not_utf8_is_reported_and_watching_goes_on(watch) -> None:
    h = watch({"web": ["**"]})
    with open(os.fsencode(h.root) + b"/bad\xff.txt", "w") as f:
        f.write("x")
    h.run(5)  # the error stops the loop
    assert h.errors and "Unable to decode path" in h.errors[0], h.errors
    assert "changes may have been missed" in h.errors[0]
    write(h.root / "good.txt")
    assert dict(h.next_batch().types) == {"web": ("good.txt",)}


def test_no_cpu_when_idle(watch) -> None:
    h = watch(
        {"web": ["**/*.py"]},
        before=lambda root: [write(root / f"d{i}" / "m.py") for i in range(20)],
    )
    write(h.root / "app.py")
    h.next_batch()  # the watcher has been through a batch and is idle again
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    h.no_batch(1.0)
    after = resource.getrusage(resource.RUSAGE_SELF)
    elapsed = time.monotonic() - started
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    # A watcher that polled (watchfiles alone wakes every 50 ms) costs about 1 ms a second here.
    assert cpu < 0.0005 * elapsed + 0.0002, f"{cpu * 1000:.2f} ms of CPU in {elapsed:.2f} s idle"


def test_stop_ends_the_thread_quickly_even_with_a_batch_pending(watch) -> None:
    h = watch({"web": ["**/*.py"]})
    assert open_fds() - h.fds_before_start  # the watcher's pipes and inotify fds
    write(h.root / "app.py")
    for _ in range(3):  # stop while watchfiles is collecting, or the loop holds a batch
        write(h.root / "app.py", "y = 2\n")
    h.run(0.15)
    assert h.watcher.stop()  # the thread ended within the join bound
    assert not any(t.name == "keelrun-watch" and t.is_alive() for t in threading.enumerate())
    h.no_batch(2 * QUIET + 0.3)  # nothing is delivered after stop
    all_closed(h.fds_before_start)


def test_stop_right_after_start(tmp_path: Path) -> None:
    loop = Loop()
    fds_before = open_fds()
    w = Watcher(loop, WatchRules.build(str(tmp_path), {"web": ["**"]}), lambda c: None)
    w.start()
    assert w.stop()  # the thread ended within the join bound
    all_closed(fds_before)
    loop.close()


def open_fds() -> set[tuple[str, str]]:
    """This process's fds as (number, what it points at): a number reused for
    something else counts as a new fd."""
    fds = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds.add((fd, os.readlink(f"/proc/self/fd/{fd}")))
        except OSError:  # the listing's own fd, closed already
            continue
    return fds


def all_closed(before: set[tuple[str, str]]) -> None:
    """The watcher's pipes and inotify fds are closed: ours at once, those of
    watchfiles' own thread (an epoll and an eventfd) once that thread has seen the close.
    Only new fds count: an earlier test's object closed by the garbage collector
    meanwhile is no concern of the watcher's."""
    if not poll_until(lambda: not open_fds() - before, 10.0):
        raise AssertionError(f"the watcher's fds still open after 10s: {open_fds() - before}")
