"""The file watcher: watchfiles in one helper thread, batches handed to the loop.

The thread only reads the file system and writes to a pipe: it never touches
the supervisor's state and never starts a process (the parent-death signal of
a child belongs to the thread that spawned it). It sends one JSON object a
line: `{"ready": N}` once N directories are watched, `{"changes": ...}` for a
batch that matters (see `rules.Changes`), `{"error": "..."}` when watching
failed. The loop thread reads them, merges batches until the changes have
been quiet for 300 ms, and calls back once per merged batch.

Timing: watchfiles hands over a batch once its change set has not grown for
one step (25 ms), so a batch reaches the loop one to two steps after its last
change. The callback is due QUIET + STEP after the last arrival: a change
that comes less than QUIET after the one before is in the loop by then, so it
merges into the same callback, and the callback runs 350-375 ms after the
last change. A burst merges into one callback however long it lasts (README
"The development loop").

Idle cost: watchfiles' Rust loop wakes every step to look at its change set,
so the thread calls it only while something is happening and otherwise
sleeps in poll() on an inotify descriptor of its own (`gate.py`).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import stat
import threading
from collections.abc import Callable
from typing import Any

from keelrun.loop import Loop, Timer
from keelrun.watch.gate import Gate, open_gate
from keelrun.watch.rules import Changes, WatchRules, skip_dir

QUIET = 0.3  # seconds without a change before the callback
STEP_MS = 25  # watchfiles: a batch is complete after this long without a new change
DEBOUNCE_MS = 1000  # watchfiles: a batch is handed over after this long whatever happens
SETTLE_MS = 150  # after the gate opened: how long watchfiles may find nothing
JOIN_TIMEOUT = 2.0
_ADDED = 1  # watchfiles.Change.added


class Watcher:
    """Owned by the loop thread: the pipe's read end, the quiet timer and the merged batch.

    ``on_change(changes)`` runs on the loop thread; ``on_error(message)`` too,
    when the thread could not watch (some or all) directories; ``on_ready(n)``
    once ``n`` directories are watched (changes before that are not seen).
    """

    def __init__(
        self,
        loop: Loop,
        rules: WatchRules,
        on_change: Callable[[Changes], None],
        on_error: Callable[[str], None] | None = None,
        on_ready: Callable[[int], None] | None = None,
    ) -> None:
        self.loop = loop
        self.rules = rules
        self.on_change = on_change
        self.on_error = on_error
        self.on_ready = on_ready
        self._pending = Changes()
        self._timer: Timer | None = None
        self._buf = b""
        self._read_fd = -1
        self._stop_w = -1
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        from watchfiles._rust_notify import RustNotify  # only when a watch is configured

        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(read_fd, False)
        stop_r, self._stop_w = os.pipe2(os.O_CLOEXEC)
        self._read_fd = read_fd
        self.loop.add_reader(read_fd, self._on_readable)
        session = _Session(RustNotify, self.rules, write_fd, stop_r, self._stop_event)
        self._thread = threading.Thread(target=session.run, name="keelrun-watch", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = JOIN_TIMEOUT) -> bool:
        """Stop the thread and drop what is pending; False if it did not end within timeout."""
        self._stop_event.set()
        if self._stop_w >= 0:
            os.close(self._stop_w)  # wakes the thread's poll()
            self._stop_w = -1
        self._close_reader()  # a thread blocked writing to the pipe gets EPIPE
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- loop thread --------------------------------------------------------
    def _close_reader(self) -> None:
        if self._read_fd >= 0:
            self.loop.remove(self._read_fd)
            os.close(self._read_fd)
            self._read_fd = -1

    def _on_readable(self, mask: int) -> None:
        try:
            data = os.read(self._read_fd, 65536)
        except BlockingIOError:
            return
        if not data:  # the thread ended
            self._close_reader()
            return
        *lines, self._buf = (self._buf + data).split(b"\n")
        for line in lines:
            self._message(json.loads(line))

    def _message(self, msg: dict[str, Any]) -> None:
        if "changes" in msg:
            changes = Changes.from_wire(msg["changes"])
            self._pending = self._pending.merged(changes)
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self.loop.call_later(QUIET + STEP_MS / 1000, self._fire)
        elif "ready" in msg:
            if self.on_ready is not None:
                self.on_ready(int(msg["ready"]))
        elif "error" in msg and self.on_error is not None:
            self.on_error(str(msg["error"]))

    def _fire(self) -> None:
        changes, self._pending = self._pending, Changes()
        self._timer = None
        if changes:
            self.on_change(changes)


# -- helper thread ----------------------------------------------------------------


def scan_dirs(rules: WatchRules) -> set[str]:
    """Every directory below the root that is not ignored (symlinks not followed),
    plus the directories of the reload files."""
    found = {rules.root}
    stack = [rules.root]
    while stack:
        top = stack.pop()
        try:
            with os.scandir(top) as entries:
                for entry in entries:
                    if not skip_dir(entry.name) and entry.is_dir(follow_symlinks=False):
                        found.add(entry.path)
                        stack.append(entry.path)
        except OSError:  # vanished or unreadable: not watched
            continue
    found.update(d for d in rules.watched_parents() if os.path.isdir(d))
    return found


def _files_below(directory: str) -> list[str]:
    """Files already in a directory that appeared (written before it was watched)."""
    out: list[str] = []
    stack = [directory]
    while stack:
        top = stack.pop()
        try:
            with os.scandir(top) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        if not skip_dir(entry.name):
                            stack.append(entry.path)
                    else:
                        out.append(entry.path)
        except OSError:
            continue
    return out


def _is_real_dir(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


class _Session:
    """Everything the helper thread owns: its watchers, its gate and the pipe's write end."""

    def __init__(
        self,
        rust_notify: Any,
        rules: WatchRules,
        out_fd: int,
        stop_r: int,
        stop_event: threading.Event,
    ) -> None:
        self.rust_notify = rust_notify
        self.rules = rules
        self.out_fd = out_fd
        self.stop_r = stop_r
        self.stop_event = stop_event
        self.dirs: set[str] = set()
        self.notify: Any = None
        self.gate: Gate | None = None

    def run(self) -> None:
        # Signals are for the loop thread (its wakeup fd); none should interrupt this one.
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        try:
            self.dirs = scan_dirs(self.rules)
            self.notify, self.gate = self._open(self.dirs)
            self._send({"ready": len(self.dirs)})
            self._loop()
        except BrokenPipeError:  # the loop stopped listening
            pass
        except Exception as e:  # cannot watch at all
            with contextlib.suppress(OSError):
                self._send({"error": f"file watching stopped: {e}"})
        finally:
            self._close(self.notify, self.gate)
            os.close(self.out_fd)
            os.close(self.stop_r)

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            if self.gate is not None:
                # poll, not select: with 1,000 instances the fds are past FD_SETSIZE.
                poller = select.poll()
                poller.register(self.gate.fd, select.POLLIN)
                poller.register(self.stop_r, select.POLLIN)
                if any(fd == self.stop_r for fd, _ in poller.poll()):
                    return
                self.gate.drain()
            try:
                result = self.notify.watch(
                    DEBOUNCE_MS, STEP_MS, SETTLE_MS if self.gate else 0, self.stop_event
                )
            except Exception as e:
                # watchfiles' error (a name that is not UTF-8) sticks to its watcher:
                # a new one watches on; changes in between are lost, so say so.
                self._rewatch(drain=False)
                self._send({"error": f"file watching: {e}; changes may have been missed"})
                continue
            if result == "stop":
                return
            if isinstance(result, set) and result:
                self._batch(result)

    def _batch(self, raw: set[tuple[int, str]]) -> None:
        paths = {path for _, path in raw}
        if any(change == _ADDED and self._new_dir(path) for change, path in raw):
            paths |= self._rewatch()
        changes = self.rules.classify(paths)
        if changes:
            self._send({"changes": changes.to_wire()})

    def _new_dir(self, path: str) -> bool:
        rel = self.rules.relative(path)
        return rel is not None and not self.rules.ignored(rel) and _is_real_dir(path)

    def _rewatch(self, drain: bool = True) -> set[str]:
        """Watch the directories that appeared; returns the files found in them and
        (with ``drain``) the changes the old watcher still held."""
        dirs = scan_dirs(self.rules)
        notify, gate = self._open(dirs)  # the new watches exist before the old ones go
        leftover = self.notify.watch(10, 1, 1, None) if drain else None
        self._close(self.notify, self.gate)
        self.notify, self.gate = notify, gate
        found = {p for _, p in leftover} if isinstance(leftover, set) else set()
        for directory in dirs - self.dirs:
            found.update(_files_below(directory))
        self.dirs = dirs
        return found

    def _open(self, dirs: set[str]) -> tuple[Any, Gate | None]:
        paths = sorted(dirs)
        try:
            notify = self.rust_notify(paths, False, False, 300, False, False)
        except FileNotFoundError:  # a directory vanished since the scan: skip what is gone
            notify = self.rust_notify(paths, False, False, 300, False, True)
        except OSError as e:  # e.g. the inotify watch limit: watch what can be watched
            self._send({"error": f"some directories are not watched: {e}"})
            notify = self.rust_notify(paths, False, False, 300, False, True)
        gate = open_gate()
        if gate is not None:
            try:
                gate.add(paths)
            except OSError:  # no gate: poll watchfiles instead (costs a little CPU)
                gate.close()
                gate = None
        return notify, gate

    @staticmethod
    def _close(notify: Any, gate: Gate | None) -> None:
        if notify is not None:
            notify.close()
        if gate is not None:
            gate.close()

    def _send(self, msg: dict[str, Any]) -> None:
        data = (json.dumps(msg) + "\n").encode()
        while data:
            data = data[os.write(self.out_fd, data) :]
