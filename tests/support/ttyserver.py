"""A small supervisor of tty instances, built from keelrun's own parts (tty tests).

usage: ttyserver.py SOCKET NAME=COMMAND... [--strip]

Until tty instances are wired into keelrun's supervisor, this program plays
its part with the real pieces: keelrun's Loop, LogPipes (TtyLogPipes), Formatter and
Output (lines go to stdout as `web.1   | text`, into each instance's
history ring), terminal.py to spawn each COMMAND on a pty with the
Terminal's framer on its stream, and attach.py's session behind a real
Unix socket (support/peer.py stands in for the control Connection). It
serves `attach` requests only. Its own events are lines `keelrun | ...`:
`listening on PATH`, `attached NAME`, `detached NAME`, `exited NAME status N`. It exits once
every instance has ended; SIGTERM stops them first.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `support` from tests/

from keelrun.errors import RequestError
from keelrun.logformat import LogFormatter
from keelrun.loop import Loop
from keelrun.settings import ProcessTypeSettings
from keelrun.supervisor import attach, spawn, terminal
from keelrun.supervisor.instance import Instance
from keelrun.supervisor.ttylog import TtyLogPipes
from keelrun.supervisor.writer import Writer
from support.peer import SocketPeer


class TtyServer:
    def __init__(self, path: str, commands: dict[str, str], strip: bool) -> None:
        self.loop = Loop()
        self.formatter = LogFormatter(json_mode=False, color=False, timestamp=False, prefix=True)
        self.formatter.set_names(list(commands))
        self.output = Writer(
            on_pressure=lambda paused: self.pipes.set_paused(paused),
            on_broken=self.loop.stop,
            register_writable=self._register_writable,
        )
        self.loop.after_iteration(self.output.flush)
        self.pipes = TtyLogPipes(self.loop, self.formatter, self.output)
        self.instances: dict[str, Instance] = {}
        self.terminals: dict[str, terminal.Terminal] = {}
        self.by_pid: dict[int, Instance] = {}
        self.running: set[str] = set()
        for number, (name, command) in enumerate(commands.items(), 1):
            self._spawn(name, command, number, strip)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.loop.add_reader(self.sock.fileno(), self._accept)
        self.say(f"listening on {path}")

    def _register_writable(self, fd: int, on: bool) -> None:
        self.loop.set_events(fd, selectors.EVENT_WRITE if on else 0, self.output.on_writable)

    def say(self, text: str) -> None:
        self.output.queue(self.formatter.event_text("info", text))

    # -- instances ------------------------------------------------------------
    def _spawn(self, name: str, command: str, number: int, strip: bool) -> None:
        ptype = ProcessTypeSettings(
            name=name.split(".")[0],
            command=command,
            index=number - 1,
            count=1,
            base_port=5000,
            restart="never",
            max_restarts=0,
            grace=5.0,
            stop_signal=signal.SIGTERM,
        )
        inst = Instance(ptype, int(name.rsplit(".", 1)[1]))
        master, slave, path = terminal.open_pty()
        try:
            inst.proc = terminal.spawn_on_tty(command, dict(os.environ), slave, path)
        finally:
            os.close(slave)
        inst.pid = inst.proc.pid
        term = terminal.Terminal(self.loop, master, strip=strip)
        # The wiring this test server stands for: the pty master is one stream
        # of the instance, read by the log path through the Terminal's framer.
        self.pipes.add_tty(inst, term)
        self.instances[inst.name] = inst
        self.terminals[inst.name] = term
        self.by_pid[inst.pid] = inst
        self.running.add(inst.name)

    def reap(self, signum: int) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            inst = self.by_pid.pop(pid, None)
            if inst is None:
                continue
            assert inst.proc is not None
            spawn.reaped(inst.proc, status)
            self.pipes.drain(inst)
            self.pipes.close_all(inst)
            self.terminals[inst.name].close("exited")
            self.say(f"exited {inst.name} status {os.waitstatus_to_exitcode(status)}")
            self.running.discard(inst.name)
        if not self.running:
            self.loop.stop()

    def stop(self, signum: int) -> None:
        for inst in self.by_pid.values():
            spawn.signal_group(inst.pid or 0, signal.SIGTERM)

    # -- the control socket ---------------------------------------------------
    def _accept(self, mask: int) -> None:
        try:
            sock, _ = self.sock.accept()
        except BlockingIOError:
            return
        SocketPeer(self.loop, sock, self._request)

    def _request(self, peer: SocketPeer, line: bytes) -> None:
        try:
            request = json.loads(line)
            if request.get("cmd") != "attach":
                raise RequestError(f"unknown command {request.get('cmd')!r}")
            args = attach.parse_attach_args(request.get("args", {}))
            # As the supervisor's resolve() does: an instance, or a type's instances.
            matches = [
                (n, True) for n, i in self.instances.items() if args.name in (n, i.ptype.name)
            ]
            if not matches:
                raise RequestError(f'unknown process or type "{args.name}"')
            inst = self.instances[attach.choose_instance(args.name, matches)]
            history = [line for _, _, line in inst.ring.tail(args.rows - 1)]
            session = attach.attach(
                self.terminals[inst.name],
                peer,
                args,
                name=inst.name,
                pid=inst.pid,
                client=attach.describe_client(peer.peer_pid, args.tty),
                history=history,
            )
        except RequestError as e:
            reply = {"ok": False, "error": str(e), "kind": e.kind}
            peer.finish_raw((json.dumps(reply) + "\n").encode())
            return
        self.say(f"attached {inst.name}")
        session.on_detached = lambda s: self.say(f"detached {s.name}")

    def run(self) -> None:
        handlers = {signal.SIGCHLD: self.reap, signal.SIGTERM: self.stop}
        with self.loop.signals(handlers):
            self.reap(signal.SIGCHLD)  # a child that ended before the handler was set
            self.output.flush()  # "listening": the loop may have nothing to do for a while
            if self.running:
                self.loop.run()
        self.output.drain(time.monotonic() + 10)


def main() -> None:
    args = sys.argv[1:]
    strip = "--strip" in args
    args = [a for a in args if a != "--strip"]
    path, specs = args[0], args[1:]
    commands = dict(spec.split("=", 1) for spec in specs)
    server = TtyServer(path, commands, strip)
    server.run()
    server.sock.close()
    os.unlink(path)


if __name__ == "__main__":
    main()
