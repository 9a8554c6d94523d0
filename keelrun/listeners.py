"""Who listens on TCP ports, and whether a process tree holds the socket.

Two readers share this module: `keelrun check` and `start` warn about ports of
the formation that another program already listens on (``taken_by_others``),
and ``ready = "port"`` counts a port when a process of the instance's tree
holds the listening socket, or when the listener appeared after the instance
started (a proxy it asked for, such as `docker run -p`), so that a port
someone else held before keeps the instance starting (``check_port``).

The listening sockets come from a sock_diag netlink dump of the LISTEN state
(about 70 us for both families): no connection is made, so the other program
never sees one. Where netlink is refused, /proc/net/tcp{,6} (10-20 ms on a big
machine: the kernel walks its whole connection table); where neither exists
(not Linux), a connect to 127.0.0.1 tells, and ownership is unknown. A
socket's owner is found by its inode among the /proc/PID/fd links of a tree
walked down from its root through /proc/PID/task/TID/children.
"""

from __future__ import annotations

import contextlib
import enum
import os
import socket
import struct
import sys
from collections.abc import Collection, Iterable, Iterator
from typing import NamedTuple

from keelrun.supervisor import procscan

PROC = "/proc"
MAX_PROBES = 256  # connects without /proc: a bound on the time they take

_V4_MAPPED = bytes(10) + b"\xff\xff"
# Addresses a local client reaches (loopback and wildcard, IPv4-mapped forms too):
# the only ones that take a port of the formation. 127.0.0.1:PORT reaches all
# of them but [::1], which a probe of 127.0.0.1 never reaches.
_LOCAL = {
    bytes(4): "0.0.0.0",
    bytes([127, 0, 0, 1]): "127.0.0.1",
    bytes(16): "[::]",
    bytes(15) + b"\x01": "[::1]",
    _V4_MAPPED + bytes(4): "0.0.0.0",
    _V4_MAPPED + bytes([127, 0, 0, 1]): "127.0.0.1",
}
_REACHED_BY_LOOPBACK = frozenset(("0.0.0.0", "127.0.0.1", "[::]"))


# NamedTuples, not dataclasses: this module is imported by every start (its port
# warnings), and a dataclass costs about a millisecond (and inspect) to build.
class Listener(NamedTuple):
    port: int
    address: str  # as a person reads it: "0.0.0.0", "127.0.0.1", "[::]", "[::1]"
    inode: int  # 0: unknown (found by a connect)
    uid: int = -1

    @property
    def reached_by_loopback(self) -> bool:
        """Whether a connection to 127.0.0.1:port lands on this socket."""
        return self.address in _REACHED_BY_LOOPBACK


# -- the netlink dump ------------------------------------------------------

_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST_DUMP = 0x1 | 0x300
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_TCP_LISTEN = 10
_NLMSG = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_MSG_SIZE = 72  # struct inet_diag_msg
_netlink_works = True


def _diag(family: int, ports: Collection[int]) -> Iterator[Listener]:
    """The TCP sockets of ``family`` listening on ``ports`` at a local address (sock_diag)."""
    with socket.socket(
        socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, _NETLINK_SOCK_DIAG
    ) as nl:
        nl.settimeout(0.5)  # the kernel answers at once; never let a surprise hold the loop
        # struct inet_diag_req_v2: family, protocol, ext, pad, states; an empty sockid.
        request = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, 1 << _TCP_LISTEN)
        request += bytes(48)
        header = _NLMSG.pack(
            _NLMSG.size + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST_DUMP, 1, 0
        )
        nl.sendto(header + request, (0, 0))
        size = 4 if family == socket.AF_INET else 16
        while True:
            data = nl.recv(65536)
            if not data:
                return
            off = 0
            while off + _NLMSG.size <= len(data):
                length, kind = _NLMSG.unpack_from(data, off)[:2]
                if kind == _NLMSG_DONE:
                    return
                if kind == _NLMSG_ERROR or length < _NLMSG.size:
                    raise OSError("sock_diag refused the dump")
                msg = off + _NLMSG.size
                if length >= _NLMSG.size + _MSG_SIZE and data[msg + 1] == _TCP_LISTEN:
                    # inet_diag_msg: 4 bytes, then sockid (sport, dport, src[16], ...)
                    port = int.from_bytes(data[msg + 4 : msg + 6], "big")
                    address = _LOCAL.get(data[msg + 8 : msg + 8 + size])
                    uid, inode = struct.unpack_from("=II", data, msg + 64)
                    if port in ports and address is not None and inode:
                        yield Listener(port, address, inode, uid)
                off += (length + 3) & ~3


# -- the /proc fallback ----------------------------------------------------

_LISTEN = b"0A"
_SYN_RECV = b"03"  # kernels before 4.4 listed pending connections under their listener


def proc_address(text: bytes) -> bytes:
    """An address of /proc/net/tcp{,6} (32-bit words in host order, hex) as packed bytes."""
    words = (text[i : i + 8] for i in range(0, len(text), 8))
    return b"".join(int(w, 16).to_bytes(4, sys.byteorder) for w in words)


def parse_table(lines: Iterable[bytes], ports: Collection[int]) -> Iterator[Listener]:
    """The listeners on ``ports`` at a local address in /proc/net/tcp or tcp6, header first.

    Listening sockets come first in those files; reading ends at the first
    socket in another state.
    """
    it = iter(lines)
    next(it, None)  # the header
    for line in it:
        fields = line.split()
        if len(fields) < 10:
            continue
        state = fields[3]
        if state != _LISTEN:
            if state == _SYN_RECV:
                continue
            return
        address, _, port_hex = fields[1].partition(b":")
        port = int(port_hex, 16)
        if port not in ports:
            continue
        name = _LOCAL.get(proc_address(address))
        inode = int(fields[9])
        if name is not None and inode:
            yield Listener(port, name, inode, int(fields[7]))


def _proc_table(ports: Collection[int]) -> list[Listener] | None:
    found: list[Listener] = []
    readable = False
    for name in ("tcp", "tcp6"):
        try:
            with open(f"{PROC}/net/{name}", "rb") as f:
                found += parse_table(f, ports)
            readable = True
        except OSError:
            continue  # tcp6 is missing on a kernel without IPv6
    return found if readable else None


def table(ports: Collection[int]) -> list[Listener] | None:
    """The listeners on ``ports`` at a local address; None when the system cannot say."""
    global _netlink_works
    if _netlink_works and sys.platform.startswith("linux"):
        try:
            found = list(_diag(socket.AF_INET, ports))
            if socket.has_ipv6:
                with contextlib.suppress(OSError):  # no IPv6 in this kernel
                    found += _diag(socket.AF_INET6, ports)
            return found
        except OSError:
            _netlink_works = False  # a sandbox without sock_diag: /proc from now on
    return _proc_table(ports)


def _accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def listening(ports: Collection[int]) -> dict[int, list[Listener]]:
    """port -> its listeners. Where the kernel cannot be asked, a port that accepts a
    connection on 127.0.0.1 is reported with inode 0 (ownership unknown)."""
    found = table(ports)
    if found is None:
        found = [
            Listener(port, "127.0.0.1", 0) for port in sorted(ports)[:MAX_PROBES] if _accepts(port)
        ]
    by_port: dict[int, list[Listener]] = {}
    for listener in found:
        by_port.setdefault(listener.port, []).append(listener)
    return by_port


# -- whose socket ----------------------------------------------------------


def _children(pid: int) -> list[int] | None:
    """Children of pid from /proc/PID/task/*/children; None when the kernel has no such file."""
    try:
        tasks = os.listdir(f"{PROC}/{pid}/task")
    except OSError:
        return []  # gone
    kids: list[int] = []
    for tid in tasks:
        try:
            with open(f"{PROC}/{pid}/task/{tid}/children", "rb") as f:
                kids.extend(int(p) for p in f.read().split())
        except FileNotFoundError:
            if not os.path.exists(f"{PROC}/{pid}/task/{tid}"):
                continue  # the thread ended meanwhile
            return None
        except OSError:
            continue
    return kids


def tree(root: int) -> Iterator[int]:
    """root, then its descendants, walking down (a full /proc scan only as a fallback)."""
    yield root
    stack = [root]
    while stack:
        kids = _children(stack.pop())
        if kids is None:
            # A kernel without CONFIG_PROC_CHILDREN: one pass over /proc.
            yield from (pid for pid, _ in procscan.descendants(root))
            return
        yield from kids
        stack.extend(kids)


def _holds(pid: int, wanted: set[str]) -> bool | None:
    """Whether pid has one of the wanted socket links open; None if its fds are unreadable."""
    fd_dir = f"{PROC}/{pid}/fd/"
    try:
        names = os.listdir(fd_dir)
    except PermissionError:
        return None
    except OSError:
        return False  # gone
    readlink = os.readlink
    for name in names:
        try:
            if readlink(fd_dir + name) in wanted:
                return True
        except OSError:
            continue  # closed meanwhile
    return False


def taken_by_others(ports: Collection[int], tree_of: int | None = None) -> dict[int, str]:
    """port -> address, for ports that a process listens on that is not a descendant of
    ``tree_of`` (so that an instance keelrun started and that bound its port early is
    not taken for another program)."""
    found = listening(ports)
    if found and tree_of is not None:
        below = tree(tree_of)
        next(below)  # tree_of itself is not its own descendant
        ours = {link for pid in below for link in _socket_links(pid)}
        found = {
            port: [x for x in socks if not x.inode or f"socket:[{x.inode}]" not in ours]
            for port, socks in found.items()
        }
    return {port: socks[0].address + f":{port}" for port, socks in sorted(found.items()) if socks}


def _socket_links(pid: int) -> list[str]:
    fd_dir = f"{PROC}/{pid}/fd/"
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return []  # gone, or not ours to read
    links = []
    for name in names:
        with contextlib.suppress(OSError):
            link = os.readlink(fd_dir + name)
            if link.startswith("socket:["):
                links.append(link)
    return links


class Owner(enum.Enum):
    TREE = "tree"  # a process of the tree holds a listening socket on the port
    NOBODY = "nobody"  # nothing listens there
    OTHER = "other"  # something listens, but not a process of the tree
    LATER = "later"  # not the tree's, but it began listening after the instance started
    UNKNOWN = "unknown"  # the kernel cannot be asked (not Linux)


class PortCheck(NamedTuple):
    owner: Owner
    pid: int | None = None  # the process of the tree found holding it

    def describe(self, port: int) -> str:
        if self.owner is Owner.TREE:
            return f"port {port} is listening (pid {self.pid})"
        if self.owner is Owner.LATER:
            return f"port {port} is listening (opened after this instance started)"
        if self.owner is Owner.OTHER:
            return f"port {port} is held by a process that is not this instance's"
        if self.owner is Owner.NOBODY:
            return f"nothing listens on port {port}"
        return f"cannot tell who listens on port {port}"


def loopback_listeners(ports: Collection[int]) -> dict[int, frozenset[int]] | None:
    """port -> the inodes of the sockets 127.0.0.1:port reaches now, in one dump;
    None where the system cannot say. Taken when instances start, for
    ``check_port``'s ``before``."""
    found = table(ports)
    if found is None:
        return None
    inodes: dict[int, set[int]] = {port: set() for port in ports}
    for x in found:
        if x.reached_by_loopback and x.port in inodes:
            inodes[x.port].add(x.inode)
    return {port: frozenset(held) for port, held in inodes.items()}


def check_port(port: int, root: int, before: frozenset[int] | None = None) -> PortCheck:
    """Does the process tree under ``root`` listen where 127.0.0.1:port reaches?

    ``before``: the listeners at the instance's start (``loopback_listeners``); one
    that is not among them and not the tree's counts as ``LATER``.
    """
    found = table((port,))
    if found is None:
        return PortCheck(Owner.UNKNOWN)
    found = [x for x in found if x.reached_by_loopback]
    if not found:
        return PortCheck(Owner.NOBODY)
    wanted = {f"socket:[{x.inode}]" for x in found}
    hidden_uids: set[int] = set()
    for pid in tree(root):
        holds = _holds(pid, wanted)
        if holds:
            return PortCheck(Owner.TREE, pid)
        if holds is None:
            # Its fds are closed to us (it changed uid and we lack CAP_SYS_PTRACE):
            # a listener of that same uid is taken to be its.
            try:
                hidden_uids.add(os.stat(f"{PROC}/{pid}").st_uid)
            except OSError:
                continue
    if hidden_uids & {x.uid for x in found}:
        return PortCheck(Owner.TREE, None)
    if before is not None and any(x.inode not in before for x in found):
        return PortCheck(Owner.LATER)
    return PortCheck(Owner.OTHER)
