"""The log path for tty instances: LogPipes, reading pty masters with read_pty.

What reading a pty changes in the log path, in one place until it is folded
into logpipes.py: the master is one stream (named "stdout": the app's stdout
and stderr are the same terminal), its framer is the Terminal's TtyFramer,
and it is read with `terminal.read_pty` instead of `os.readv`. Everything
else (formatting, history, followers, back-pressure, EIO as end of file) is
LogPipes' own.
"""

from __future__ import annotations

from keelrun.supervisor.instance import Instance, Stream
from keelrun.supervisor.logpipes import LogPipes
from keelrun.supervisor.terminal import Terminal, TtyFramer, read_pty


class TtyLogPipes(LogPipes):
    def add_tty(self, inst: Instance, terminal: Terminal) -> None:
        self.add(inst, terminal.master, "stdout")
        inst.streams[-1].framer = terminal.framer

    def read(self, stream: Stream) -> int:
        if not isinstance(stream.framer, TtyFramer):
            return super().read(stream)
        if stream.closed:
            return 0
        try:
            n = read_pty(stream.fd, [self._view])
        except BlockingIOError:
            return -1
        except OSError:
            n = 0
        if not n:
            tail = stream.framer.finish()
            if tail:
                self.emit(stream, tail)
            self.close(stream)
            return 0
        block = stream.framer.feed(self._view[:n].tobytes())
        if block:
            self.emit(stream, block)
        return n
