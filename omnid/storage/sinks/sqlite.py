"""SQLite, the embedded default: WAL mode, every statement on one worker thread off the loop.

The loop only builds rows (in slices); the thread binds and inserts them with ``INSERT OR IGNORE``
on each table's natural key, so a replayed batch never duplicates a row.
"""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from omnid.errors import StorageError
from omnid.storage.catalog import Row, TableSpec
from omnid.storage.ddl import sqlite_create, sqlite_insert
from omnid.storage.sinks.base import Batch, iter_rows

T = TypeVar("T")

#: Rows handed to the SQLite thread per call (amortises the hop; small enough to release the GIL
#: often: the sqlite3 module drops it around every step).
THREAD_ROWS = 4096


class SqliteSink:
    """One connection, owned by one thread."""

    name = "sqlite"

    def __init__(self, path: Path, *, synchronous: str = "normal", slice_s: float = 0.0005) -> None:
        self.path = path
        self.slice_s = slice_s
        self.synchronous = synchronous
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="omnid-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._insert: dict[str, str] = {}

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _open(self, tables: list[TableSpec]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("CREATE TABLE IF NOT EXISTS omnid_schema (version INTEGER NOT NULL, applied TEXT)")
        conn.execute("BEGIN")
        for spec in tables:
            for stmt in sqlite_create(spec):
                conn.execute(stmt)
        if conn.execute("SELECT count(*) FROM omnid_schema").fetchone()[0] == 0:
            conn.execute("INSERT INTO omnid_schema VALUES (1, datetime('now'))")
        conn.execute("COMMIT")
        self._conn = conn

    async def start(self, tables: list[TableSpec]) -> None:
        try:
            await self._call(self._open, tables)
        except sqlite3.Error as exc:
            raise StorageError(f"sqlite {self.path}: cannot open: {exc}", path=str(self.path)) from exc

    def _sql(self, spec: TableSpec) -> str:
        sql = self._insert.get(spec.full_name)
        if sql is None:
            sql = self._insert[spec.full_name] = sqlite_insert(spec)
        return sql

    def _exec(self, sql: str, rows: list[Row] | None = None) -> None:
        conn = self._conn
        if conn is None:
            raise StorageError("sqlite sink used before start()")
        if rows is None:
            conn.execute(sql)
        else:
            conn.executemany(sql, rows)

    async def ensure_table(self, spec: TableSpec) -> None:
        """Create a table registered after start-up."""
        for stmt in sqlite_create(spec):
            await self._call(self._exec, stmt)

    async def _insert_batch(self, batch: Batch) -> None:
        """One transaction; rows go to the thread in chunks of about :data:`THREAD_ROWS`."""
        sql = self._sql(batch.spec)
        await self._call(self._exec, "BEGIN")
        try:
            pending: list[Row] = []
            async for chunk in iter_rows(batch, self.slice_s):
                pending.extend(chunk)
                if len(pending) >= THREAD_ROWS:
                    await self._call(self._exec, sql, pending)
                    pending = []
            if pending:
                await self._call(self._exec, sql, pending)
        except BaseException:
            await self._call(self._exec, "ROLLBACK")
            raise
        await self._call(self._exec, "COMMIT")

    async def write(self, batch: Batch) -> None:
        spec = batch.spec
        try:
            try:
                await self._insert_batch(batch)
            except sqlite3.OperationalError as exc:
                if "no such table" not in str(exc):
                    raise
                await self.ensure_table(spec)
                await self._insert_batch(batch)
        except (sqlite3.Error, ValueError, TypeError, OverflowError) as exc:
            raise StorageError(f"sqlite {spec.full_name}: {exc}", table=spec.full_name) from exc

    async def ping(self) -> None:
        return None

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run a read on a fresh connection (WAL lets readers run beside the writer)."""
        with sqlite3.connect(self.path) as conn:
            return conn.execute(sql, params).fetchall()

    async def close(self) -> None:
        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        await self._call(shut)
        self._pool.shutdown(wait=True)
