"""Who listens on a port: the kernel's listening sockets against a process tree's open fds.

``ready = "port"`` means a listening socket on 127.0.0.1:PORT (or on the
wildcard address) that one of the instance's processes holds: a port that
someone else took keeps the instance starting. Both halves are cheap enough
for every readiness try. The listening sockets come from a sock_diag netlink
dump of the LISTEN state only (about 70 us for both families); reading
/proc/net/tcp{,6}, the fallback where netlink is refused, makes the kernel
walk its whole connection table (10-20 ms on a 23 GiB machine, even for an
empty tcp6). The tree is walked down from the instance through
/proc/PID/task/TID/children, not by a scan of /proc.
"""

from __future__ import annotations

import contextlib
import enum
import os
import socket
import struct
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from keelrun.supervisor import procscan

_LISTEN = b"0A"
_SYN_RECV = b"03"  # kernels before 4.4 listed pending connections under their listener


def _hex_words(packed: bytes) -> bytes:
    """An address as /proc/net/tcp{,6} prints it: 32-bit words in host order, upper hex."""
    words = (packed[i : i + 4] for i in range(0, len(packed), 4))
    return b"".join(b"%08X" % int.from_bytes(w, sys.byteorder) for w in words)


# Addresses that 127.0.0.1:PORT reaches: loopback, the wildcard, and their
# IPv4-mapped forms on an IPv6 socket.
_V4 = frozenset(_hex_words(bytes(a)) for a in ([127, 0, 0, 1], [0, 0, 0, 0]))
_V6 = frozenset(
    _hex_words(bytes(10) + b"\xff\xff" + bytes(a)) for a in ([127, 0, 0, 1], [0, 0, 0, 0])
) | {_hex_words(bytes(16))}


def parse_listeners(
    lines: Iterable[bytes], port: int, addresses: frozenset[bytes]
) -> dict[int, int]:
    """Listening sockets on ``port`` at one of ``addresses``: inode -> uid.

    ``lines`` are those of /proc/net/tcp or tcp6, header first. Listening
    sockets come first; reading ends at the first socket in another state.
    """
    suffix = b":%04X" % port
    found: dict[int, int] = {}
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
            break
        local = fields[1]
        if local.endswith(suffix) and local[: -len(suffix)] in addresses:
            inode = int(fields[9])
            if inode:
                found[inode] = int(fields[7])
    return found


_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST_DUMP = 0x1 | 0x300
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_TCP_LISTEN = 10
_NLMSG = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_MSG_SIZE = 72  # struct inet_diag_msg
_netlink_works = True

_ANY_V4 = {bytes([127, 0, 0, 1]), bytes(4)}
_ANY_V6 = {
    bytes(16),
    bytes(10) + b"\xff\xff" + bytes([127, 0, 0, 1]),
    bytes(10) + b"\xff\xff" + bytes(4),
}


def _diag_listeners(family: int, port: int) -> dict[int, int]:
    """inode -> uid of the TCP sockets of ``family`` listening on ``port`` (sock_diag)."""
    with socket.socket(
        socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, _NETLINK_SOCK_DIAG
    ) as nl:
        nl.settimeout(0.5)  # the kernel answers at once; never let a surprise hold the loop
        # struct inet_diag_req_v2: family, protocol, ext, pad, states; an empty sockid.
        request = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, 1 << _TCP_LISTEN)
        request += bytes(48)
        nl.sendto(
            _NLMSG.pack(_NLMSG.size + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST_DUMP, 1, 0)
            + request,
            (0, 0),
        )
        wanted = _ANY_V4 if family == socket.AF_INET else _ANY_V6
        found: dict[int, int] = {}
        while True:
            data = nl.recv(65536)
            if not data:
                return found
            off = 0
            while off + _NLMSG.size <= len(data):
                length, kind = _NLMSG.unpack_from(data, off)[:2]
                if kind == _NLMSG_DONE:
                    return found
                if kind == _NLMSG_ERROR or length < _NLMSG.size:
                    raise OSError("sock_diag refused the dump")
                msg = off + _NLMSG.size
                if length >= _NLMSG.size + _MSG_SIZE and data[msg + 1] == _TCP_LISTEN:
                    # inet_diag_msg: 4 bytes, then sockid (sport, dport, src[16], ...)
                    sport = int.from_bytes(data[msg + 4 : msg + 6], "big")
                    src = data[msg + 8 : msg + 8 + (4 if family == socket.AF_INET else 16)]
                    uid, inode = struct.unpack_from("=II", data, msg + 64)
                    if sport == port and src in wanted and inode:
                        found[inode] = uid
                off += (length + 3) & ~3


def _proc_listeners(port: int) -> dict[int, int] | None:
    found: dict[int, int] = {}
    readable = False
    for path, addresses in (("/proc/net/tcp", _V4), ("/proc/net/tcp6", _V6)):
        try:
            with open(path, "rb") as f:
                found.update(parse_listeners(f, port, addresses))
            readable = True
        except OSError:
            continue  # tcp6 is missing on a kernel without IPv6
    return found if readable else None


def listeners(port: int) -> dict[int, int] | None:
    """inode -> uid of every socket listening where 127.0.0.1:port reaches; None when the
    system cannot say (not Linux)."""
    global _netlink_works
    if _netlink_works and sys.platform.startswith("linux"):
        try:
            found = _diag_listeners(socket.AF_INET, port)
            if socket.has_ipv6:
                with contextlib.suppress(OSError):  # no IPv6 in this kernel
                    found.update(_diag_listeners(socket.AF_INET6, port))
            return found
        except OSError:
            _netlink_works = False  # a sandbox without sock_diag: /proc from now on
    return _proc_listeners(port)


def _children(pid: int) -> list[int] | None:
    """Children of pid from /proc/PID/task/*/children; None when the kernel has no such file."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []  # gone
    kids: list[int] = []
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                kids.extend(int(p) for p in f.read().split())
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}/task/{tid}"):
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


class Owner(enum.Enum):
    TREE = "tree"  # a process of the tree holds a listening socket on the port
    NOBODY = "nobody"  # nothing listens there
    OTHER = "other"  # something listens, but not a process of the tree
    UNKNOWN = "unknown"  # no /proc/net/tcp (not Linux)


@dataclass(frozen=True, slots=True)
class PortCheck:
    owner: Owner
    pid: int | None = None  # the process of the tree found holding it

    def describe(self, port: int) -> str:
        if self.owner is Owner.TREE:
            return f"port {port} is listening (pid {self.pid})"
        if self.owner is Owner.OTHER:
            return f"port {port} is held by a process that is not this instance's"
        if self.owner is Owner.NOBODY:
            return f"nothing listens on port {port}"
        return f"cannot tell who listens on port {port}"


def _holds(pid: int, wanted: set[bytes]) -> bool | None:
    """Whether pid has one of the wanted socket links open; None if its fds are unreadable."""
    fd_dir = f"/proc/{pid}/fd/"
    try:
        names = os.listdir(fd_dir)
    except PermissionError:
        return None
    except OSError:
        return False  # gone
    readlink = os.readlink
    for name in names:
        try:
            if readlink(fd_dir + name).encode() in wanted:
                return True
        except OSError:
            continue  # closed meanwhile
    return False


def check_port(port: int, root: int) -> PortCheck:
    """Does the process tree under ``root`` listen where 127.0.0.1:port reaches?"""
    found = listeners(port)
    if found is None:
        return PortCheck(Owner.UNKNOWN)
    if not found:
        return PortCheck(Owner.NOBODY)
    wanted = {b"socket:[%d]" % inode for inode in found}
    hidden_uids: set[int] = set()
    for pid in tree(root):
        holds = _holds(pid, wanted)
        if holds:
            return PortCheck(Owner.TREE, pid)
        if holds is None:
            # Its fds are closed to us (it changed uid and we lack CAP_SYS_PTRACE):
            # a listener of that same uid is taken to be its.
            try:
                hidden_uids.add(os.stat(f"/proc/{pid}").st_uid)
            except OSError:
                continue
    for pid_uid in hidden_uids:
        if pid_uid in found.values():
            return PortCheck(Owner.TREE, None)
    return PortCheck(Owner.OTHER)
