"""Which of some TCP ports a process already listens on, on a loopback or wildcard address.

On Linux this reads /proc/net/tcp and tcp6: no connection is made, so the
other program never sees one, and each socket's inode tells whether it is
one of keelrun's own children's. Elsewhere a connect to 127.0.0.1 tells
(refused at once when nothing listens).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable

LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's "st" column
# Local addresses as /proc/net/tcp{,6} spell them (32-bit words in host order, here
# little-endian): a listener on any of these takes the port of 127.0.0.1 or 0.0.0.0.
ADDRESSES = {
    "00000000": "0.0.0.0",
    "0100007F": "127.0.0.1",
    "00000000000000000000000000000000": "[::]",
    "00000000000000000000000001000000": "[::1]",
    "0000000000000000FFFF000000000000": "0.0.0.0",
    "0000000000000000FFFF00000100007F": "127.0.0.1",
}
MAX_PROBES = 256  # connects without /proc: a bound on the time it takes


def listening(ports: Collection[int], proc: str = "/proc") -> dict[int, list[tuple[str, int]]]:
    """port -> [(address, socket inode)] of the listeners on ``ports``.

    Without /proc/net/tcp, a port that accepts a connection on 127.0.0.1 is
    reported with inode 0 (ownership unknown).
    """
    found: dict[int, list[tuple[str, int]]] = {}
    tables = [f"{proc}/net/tcp", f"{proc}/net/tcp6"]
    read_any = False
    for table in tables:
        try:
            with open(table, "rb") as f:
                data = f.read().decode("ascii", "replace")
        except OSError:
            continue
        read_any = True
        for line in data.splitlines()[1:]:
            fields = line.split()
            if len(fields) < 10 or fields[3] != LISTEN:
                continue
            address, _, port_hex = fields[1].partition(":")
            port = int(port_hex, 16)
            if port in ports and address in ADDRESSES:
                found.setdefault(port, []).append((f"{ADDRESSES[address]}:{port}", int(fields[9])))
    if not read_any:
        for port in sorted(ports)[:MAX_PROBES]:
            if _accepts(port):
                found[port] = [(f"127.0.0.1:{port}", 0)]
    return found


def _accepts(port: int) -> bool:
    import socket  # only where there is no /proc: no import cost for `check` on Linux

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def socket_inodes(pids: Iterable[int], proc: str = "/proc") -> set[int]:
    """The inodes of the sockets the processes ``pids`` hold open."""
    inodes: set[int] = set()
    for pid in pids:
        fd_dir = f"{proc}/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue  # gone, or not ours to read
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    return inodes


def taken_by_others(ports: Collection[int], tree_of: int | None = None) -> dict[int, str]:
    """port -> address, for ports some process listens on that is not ``tree_of``'s
    descendant (so that an instance keelrun started and that bound its own port
    early is not taken for another program)."""
    found = listening(ports)
    if found and tree_of is not None:
        from keelrun.supervisor.procscan import descendants

        ours = socket_inodes(pid for pid, _pgid in descendants(tree_of))
        found = {
            port: [(addr, inode) for addr, inode in socks if inode == 0 or inode not in ours]
            for port, socks in found.items()
        }
    return {port: socks[0][0] for port, socks in sorted(found.items()) if socks}
