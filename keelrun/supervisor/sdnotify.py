"""keelrun itself as a systemd service (``Type=notify``): the sending side of sd_notify(3).

systemd gives keelrun NOTIFY_SOCKET (and WATCHDOG_USEC/WATCHDOG_PID when the
unit has WatchdogSec=). ``ServiceNotifier.from_environ`` takes them out of
keelrun's environment before anything reads it, so no instance ever sees
systemd's socket (an app that sent READY=1 there would speak for keelrun).
keelrun then sends READY=1 once the formation is up, STOPPING=1 when it
begins to stop, and WATCHDOG=1 at half the watchdog interval.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, MutableMapping

from keelrun.loop import Loop, Timer
from keelrun.supervisor.notify import NOTIFY_VARS


def socket_address(value: str) -> str | None:
    """NOTIFY_SOCKET as a socket address: an absolute path, or ``@name`` (abstract)."""
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # vsock and relative paths: not for keelrun


def send(address: str, text: str, sock: socket.socket | None = None) -> bool:
    """One datagram to a notify socket; False when it could not be sent (never raises,
    never blocks: a systemd too busy to take it must not stall keelrun)."""
    own = sock is None
    try:
        if sock is None:
            sock = socket.socket(
                socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
            )
        sock.sendto(text.encode("utf-8"), address)
        return True
    except OSError:
        return False
    finally:
        if own and sock is not None:
            sock.close()


class ServiceNotifier:
    def __init__(self, address: str, watchdog_usec: int | None = None) -> None:
        self.address = address
        self.watchdog_usec = watchdog_usec
        self.sent: list[str] = []  # READY and STOPPING messages sent, in order
        self.pings = 0  # WATCHDOG=1 sent
        self._sock: socket.socket | None = None
        self._watchdog: Timer | None = None

    @classmethod
    def from_environ(cls, environ: MutableMapping[str, str]) -> ServiceNotifier | None:
        """Take systemd's variables out of ``environ`` (os.environ at start-up, before the
        config reads it); a notifier when NOTIFY_SOCKET names a usable socket."""
        values = {k: environ.pop(k) for k in NOTIFY_VARS if k in environ}
        address = socket_address(values.get("NOTIFY_SOCKET", ""))
        if address is None:
            return None
        usec = None
        wd_pid = values.get("WATCHDOG_PID", "")
        if values.get("WATCHDOG_USEC", "").isdigit() and wd_pid in ("", str(os.getpid())):
            usec = int(values["WATCHDOG_USEC"]) or None
        return cls(address, usec)

    def _send(self, text: str) -> bool:
        if self._sock is None:
            try:
                self._sock = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
                )
            except OSError:
                return False
        return send(self.address, text, self._sock)

    @property
    def ready_sent(self) -> bool:
        return any(s.startswith("READY=1") for s in self.sent)

    def ready(self, status: str | None = None) -> None:
        """READY=1, once: when every instance is ready (or running, without a check)."""
        text = "READY=1" + (f"\nSTATUS={status}" if status else "")
        if not self.ready_sent and self._send(text):
            self.sent.append(text)

    def stopping(self) -> None:
        """STOPPING=1, once, as keelrun begins to stop."""
        if "STOPPING=1" not in self.sent and self._send("STOPPING=1"):
            self.sent.append("STOPPING=1")
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def start_watchdog(self, loop: Loop) -> None:
        """WATCHDOG=1 every half interval while keelrun runs (only when systemd asked)."""
        if self.watchdog_usec is None:
            return
        every = self.watchdog_usec / 2_000_000

        def ping() -> None:
            if self._send("WATCHDOG=1"):
                self.pings += 1
            self._watchdog = loop.call_later(every, ping)

        ping()

    def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._sock is not None:
            self._sock.close()
            self._sock = None


SETTLED = ("ready", "exited", "stopped")


def formation_settled(instances: Iterable[tuple[str, bool]]) -> bool:
    """Whether keelrun may tell systemd READY=1: every instance, as (public state, whether
    its type has a ``ready`` check), is ready, running without a check, or ended."""
    for state, has_ready in instances:
        if state in SETTLED or (state == "running" and not has_ready):
            continue
        return False
    return True
