"""The admin socket: a Unix stream socket (mode 0600) speaking :mod:`omnid.ops.protocol`.

The server answers each request line with one reply line, any number of clients at once. A
malformed line, an unknown command or a handler that raises gets an error reply; the connection
and the daemon carry on. A line longer than ``max_request_bytes`` gets an error and the
connection is closed (the stream cannot be resynchronised cheaply). The client is
:mod:`omnid.ops.client` (re-exported here).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import structlog

from omnid.errors import OmnidError, RejectedError
from omnid.ops.client import AdminProtocolError, DaemonNotRunning, request, socket_alive
from omnid.ops.protocol import (
    PROTOCOL_VERSION,
    AdminReply,
    AdminRequest,
    encode_reply,
    error_reply,
    request_decoder,
    to_builtins,
)

__all__ = ["AdminProtocolError", "AdminServer", "DaemonNotRunning", "request", "socket_alive"]

log = structlog.get_logger("omnid.admin")

Handler = Callable[[AdminRequest], Awaitable[Any]]


class AdminServer:
    """Serves ``handlers`` (command → coroutine returning plain data) on a Unix socket."""

    def __init__(self, path: Path, handlers: dict[str, Handler], *, max_request_bytes: int = 65_536) -> None:
        self.path = path
        self.handlers = handlers
        self.max_request_bytes = max_request_bytes
        self.requests = 0
        self.errors = 0
        self.clients = 0
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        """Bind with mode 0600 (set through the umask, so it is never briefly wider)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(self.path), limit=self.max_request_bytes
            )
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    async def close(self) -> None:
        """Stop serving and remove the socket file (only if this server bound it)."""
        if self._server is None:
            return
        self._server.close()
        for t in list(self._conns):
            t.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2.0)
        self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._conns.add(task)
        self.clients += 1
        try:
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError as exc:
                    if exc.partial.strip():
                        writer.write(await self.handle_line(exc.partial))
                        await writer.drain()
                    return
                except asyncio.LimitOverrunError:
                    self.errors += 1
                    writer.write(
                        encode_reply(
                            error_reply("bad_request", f"request longer than {self.max_request_bytes} bytes")
                        )
                    )
                    await writer.drain()
                    return
                if not line.strip():
                    continue
                writer.write(await self.handle_line(line))
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            self.clients -= 1
            if task is not None:
                self._conns.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def handle_line(self, line: bytes) -> bytes:
        """One request line in, one encoded reply line out (never raises)."""
        self.requests += 1
        try:
            req = request_decoder.decode(line)
        except msgspec.DecodeError as exc:
            self.errors += 1
            return encode_reply(error_reply("bad_request", f"malformed request: {exc}"))
        handler = self.handlers.get(req.cmd)
        if handler is None:
            self.errors += 1
            known = ", ".join(sorted(self.handlers))
            return encode_reply(
                error_reply("unknown_command", f"unknown command {req.cmd!r} (known: {known})", req_id=req.id)
            )
        try:
            data = await handler(req)
            return encode_reply(
                AdminReply(v=PROTOCOL_VERSION, ok=True, cmd=req.cmd, id=req.id, data=to_builtins(data))
            )
        except RejectedError as exc:
            self.errors += 1
            return encode_reply(error_reply("rejected", exc.message, cmd=req.cmd, req_id=req.id))
        except OmnidError as exc:
            self.errors += 1
            return encode_reply(error_reply("failed", exc.message, cmd=req.cmd, req_id=req.id))
        except Exception as exc:
            self.errors += 1
            log.exception("admin command failed", cmd=req.cmd)
            return encode_reply(
                error_reply("internal", f"{type(exc).__name__}: {exc}", cmd=req.cmd, req_id=req.id)
            )
