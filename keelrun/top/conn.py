"""The control socket without blocking textual's event loop: asyncio streams.

The socket itself comes from `Client` (so its checks of the server apply);
only the connect, which is bounded, runs in a thread. A frozen keelrun can
therefore never make `q` wait: every read is a cancellable coroutine.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from keelrun.control.client import Client
from keelrun.control.protocol import VERSION
from keelrun.errors import InputError, RuntimeFailure

REPLY_TIMEOUT = 5.0
# A log line is at most 1 MiB of text; escaped as JSON it can grow sixfold.
LINE_LIMIT = 8 * 1024 * 1024


class Connection:
    def __init__(self, client: Client) -> None:
        self.client = client

    async def _open(self, cmd: str, args: dict[str, Any]) -> tuple[Any, asyncio.StreamWriter]:
        sock = await asyncio.to_thread(self.client.connect)
        sock.setblocking(False)
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=LINE_LIMIT)
        writer.write((json.dumps({"v": VERSION, "cmd": cmd, "args": args}) + "\n").encode())
        await writer.drain()
        return reader, writer

    async def _reply(self, reader: asyncio.StreamReader) -> Any:
        try:
            line = await asyncio.wait_for(reader.readline(), REPLY_TIMEOUT)
        except TimeoutError:
            raise RuntimeFailure(f"no reply from keelrun on {self.client.path}") from None
        if not line:
            raise RuntimeFailure(f"keelrun on {self.client.path} closed the connection")
        return result_of(json.loads(line))

    async def call(self, cmd: str, args: dict[str, Any]) -> Any:
        """One request, one reply; an error reply raises InputError or RuntimeFailure."""
        reader, writer = await self._open(cmd, args)
        try:
            return await self._reply(reader)
        finally:
            writer.close()

    async def follow(self, name: str, lines: int) -> AsyncIterator[dict[str, Any]]:
        """The last ``lines`` log records of instance ``name``, then every new one,
        until keelrun closes the stream (or the consumer stops iterating)."""
        reader, writer = await self._open("logs", {"names": [name], "lines": lines, "follow": True})
        try:
            await self._reply(reader)
            while line := await reader.readline():
                msg = json.loads(line)
                if "log" in msg:
                    yield msg["log"]
                elif msg.get("end"):
                    return
        finally:
            writer.close()


def result_of(reply: dict[str, Any]) -> Any:
    if reply.get("ok"):
        return reply.get("result")
    message = str(reply.get("error", "request failed"))
    if reply.get("kind") == "input":
        raise InputError("", message)
    raise RuntimeFailure(message)
