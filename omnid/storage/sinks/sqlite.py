"""SQLite, the embedded default: WAL mode, written by a separate process, never on the loop.

The loop only builds rows (in slices) and sends them, msgpack-framed, to
:mod:`omnid.storage.sinks.sqlite_writer` over a pipe; that process runs ``INSERT OR IGNORE`` on each
table's natural key, so a replayed batch never duplicates a row. A thread was tried first: the
``sqlite3`` module holds the GIL while it binds rows, which stalled the event loop by tens of
milliseconds; a process shares no GIL.

Readers (``omnid data``, reports) open their own connections: WAL lets them read beside the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path
from typing import Any

import msgspec

import omnid
from omnid.errors import StorageError, TransientError
from omnid.storage.catalog import Row, TableSpec
from omnid.storage.ddl import sqlite_create, sqlite_insert
from omnid.storage.framing import HEADER, frame
from omnid.storage.sinks.base import Batch, iter_rows

#: Rows per request to the writer (one transaction each; the batch as a whole is idempotent).
CHUNK_ROWS = 1000

_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder()
_SCHEMA = ["CREATE TABLE IF NOT EXISTS omnid_schema (version INTEGER NOT NULL, applied TEXT)",
           "INSERT INTO omnid_schema SELECT 1, datetime('now') WHERE NOT EXISTS (SELECT 1 FROM omnid_schema)"]


class SqliteSink:
    """Talks to one writer process, started on :meth:`start` and again after it dies."""

    name = "sqlite"

    def __init__(self, path: Path, *, synchronous: str = "normal", slice_s: float = 0.0005) -> None:
        self.path = path
        self.synchronous = synchronous
        self.slice_s = slice_s
        self._proc: asyncio.subprocess.Process | None = None
        self._tables: list[TableSpec] = []
        self._insert: dict[str, str] = {}
        self._lock = asyncio.Lock()
        self.requests = 0

    async def _spawn(self) -> asyncio.subprocess.Process:
        if self._proc is not None and self._proc.returncode is None:
            return self._proc
        root = str(Path(omnid.__file__).resolve().parent.parent)
        path_var = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path_var}
        try:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "omnid.storage.sinks.sqlite_writer", str(self.path), self.synchronous,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
                # Its own session: a Ctrl-C at the terminal signals the daemon's process group, and
                # the writer must outlive it until the daemon has flushed and closed it (it exits on
                # end of input, so it never outlives a daemon that dies).
                start_new_session=True,
            )
        except OSError as exc:
            raise TransientError(f"sqlite: cannot start the writer process: {exc}") from exc
        return self._proc

    async def _request(self, msg: list[Any]) -> Any:
        async with self._lock:
            proc = await self._spawn()
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(frame(_enc.encode(msg)))
                await proc.stdin.drain()
                head = await proc.stdout.readexactly(HEADER.size)
                length, _ = HEADER.unpack(head)
                reply = _dec.decode(await proc.stdout.readexactly(length))
            except (OSError, asyncio.IncompleteReadError, ConnectionError) as exc:
                await self._kill()
                raise TransientError(f"sqlite: the writer process died: {exc!r}",
                                     path=str(self.path)) from exc
            self.requests += 1
        return reply

    async def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    def _check(self, reply: Any, what: str) -> str:
        """'' on success, else the error kind (raises for the ones a caller cannot handle)."""
        if reply[0] == "ok":
            return ""
        kind, text = reply[1], reply[2]
        if kind == "busy":
            raise TransientError(f"sqlite {self.path}: {what}: {text}", path=str(self.path))
        if kind == "no_table":
            return "no_table"
        raise StorageError(f"sqlite {self.path}: {what}: {text}", path=str(self.path))

    async def _ddl(self, statements: list[str]) -> None:
        self._check(await self._request(["ddl", statements]), "creating tables")

    async def start(self, tables: list[TableSpec]) -> None:
        self._tables = list(tables)
        await self._ddl(_SCHEMA + [stmt for spec in tables for stmt in sqlite_create(spec)])

    async def ensure_table(self, spec: TableSpec) -> None:
        """Create a table registered after start-up."""
        await self._ddl(sqlite_create(spec))

    async def _send(self, spec: TableSpec, sql: str, rows: list[Row]) -> None:
        reply = await self._request(["insert", sql, rows])
        if self._check(reply, spec.full_name) == "no_table":
            await self.ensure_table(spec)
            self._check(await self._request(["insert", sql, rows]), spec.full_name)

    async def write(self, batch: Batch) -> None:
        spec = batch.spec
        sql = self._insert.get(spec.full_name)
        if sql is None:
            sql = self._insert[spec.full_name] = sqlite_insert(spec)
        pending: list[Row] = []
        try:
            async for chunk in iter_rows(batch, self.slice_s):
                pending.extend(chunk)
                if len(pending) >= CHUNK_ROWS:
                    await self._send(spec, sql, pending)
                    pending = []
            if pending:
                await self._send(spec, sql, pending)
        except (TypeError, ValueError, OverflowError) as exc:  # a row msgpack cannot encode
            raise StorageError(f"sqlite {spec.full_name}: bad row: {exc}", table=spec.full_name) from exc

    async def ping(self) -> None:
        self._check(await self._request(["ping"]), "ping")
        if self._tables:
            await self.start(self._tables)

    async def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
