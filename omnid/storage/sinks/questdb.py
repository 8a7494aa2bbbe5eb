"""QuestDB through its official Python client (InfluxDB line protocol over HTTP).

Tables are created up front over QuestDB's REST endpoint (``/exec``) with a designated timestamp
``ts`` (the row's integer-ns time), day partitions, WAL and ``DEDUP UPSERT KEYS`` on the natural
key: the client retries recoverable HTTP errors on its own, and QuestDB's deduplication is what
makes those retries, and our spool replays, exactly-once. Table names carry the group as a prefix
(``md_trades``), as in SQLite.

The loop builds each batch's ILP buffer in slices; only the HTTP flush runs on a worker thread
(the client releases the GIL during network I/O).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp

from omnid.errors import StorageError, TransientError
from omnid.storage.catalog import TableSpec
from omnid.storage.ddl import sqlite_name
from omnid.storage.sinks.base import Batch, iter_rows

log = logging.getLogger("omnid.storage")

#: Text columns stored as QuestDB SYMBOLs (few distinct values, indexed): the rest are VARCHAR.
SYMBOL_COLUMNS = frozenset({"instrument_id", "side", "status", "venue", "strategy_id", "account_id",
                            "currency", "type", "action", "order_type", "tif", "liquidity",
                            "commission_currency", "symbol", "asset_class", "quote_currency",
                            "base_currency"})
_QDB = {"real": "DOUBLE", "int": "LONG", "json": "VARCHAR", "text": "VARCHAR"}
#: Error codes of the client that mean "the server is not reachable right now".
_TRANSIENT_CODES = {"CouldNotResolveAddr", "SocketError", "ConnectTimeout", "FailoverRetry"}


def http_address(conf: str) -> str:
    """``http://host:port`` from a client configuration string (``http::addr=host:port;...``)."""
    scheme, _, rest = conf.partition("::")
    params = dict(p.split("=", 1) for p in rest.split(";") if "=" in p)
    addr = params.get("addr", "localhost:9000")
    return f"{'https' if scheme == 'https' else 'http'}://{addr}"


def questdb_ddl(spec: TableSpec) -> str:
    name = sqlite_name(spec)
    cols = []
    for c in spec.columns:
        typ = "SYMBOL" if c.kind == "text" and c.name in SYMBOL_COLUMNS else _QDB[c.kind]
        cols.append(f"{c.name} {typ}")
    cols.append("ts TIMESTAMP")
    sql = f"CREATE TABLE IF NOT EXISTS '{name}' ({', '.join(cols)}) TIMESTAMP(ts) PARTITION BY DAY WAL"
    if spec.ts_column:
        keys = ["ts", *[k for k in spec.key if k != spec.ts_column]]
        sql += f" DEDUP UPSERT KEYS({', '.join(keys)})"
    return sql


def _text(v: Any) -> Any:
    """The client takes exact ``str`` only: enum members (``Side.BUY``) become their value."""
    return v.value if isinstance(v, enum.Enum) else v


class _Plan:
    """How one table's row tuple becomes a ``Buffer.row`` call."""

    __slots__ = ("fields", "name", "symbols", "ts")

    def __init__(self, spec: TableSpec) -> None:
        self.name = sqlite_name(spec)
        names = spec.column_names
        self.symbols = [(i, n) for i, n in enumerate(names)
                        if spec.columns[i].kind == "text" and n in SYMBOL_COLUMNS]
        sym_idx = {i for i, _ in self.symbols}
        self.fields = [(i, n) for i, n in enumerate(names) if i not in sym_idx]
        self.ts = names.index(spec.ts_column) if spec.ts_column else -1


class QuestdbSink:
    name = "questdb"

    def __init__(self, conf: str, *, slice_s: float = 0.0005, timeout_s: float = 10.0) -> None:
        self.conf = conf
        self.base_url = http_address(conf)
        self.slice_s = slice_s
        self.timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="omnid-questdb")
        self._sender: Any = None
        self._plans: dict[str, _Plan] = {}
        self._created: set[str] = set()
        self.requests = 0

    async def _thread(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def _create(self, tables: list[TableSpec]) -> None:
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http:
                for spec in tables:
                    if spec.full_name in self._created:
                        continue
                    async with http.get(f"{self.base_url}/exec", params={"query": questdb_ddl(spec)}) as r:
                        body = await r.text()
                        if r.status >= 500:
                            raise TransientError(f"questdb: /exec answered {r.status}: {body[:200]}")
                        if r.status != 200:
                            raise StorageError(f"questdb: cannot create {spec.full_name}: {r.status} "
                                               f"{body[:300]}", table=spec.full_name)
                    self._created.add(spec.full_name)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise TransientError(f"questdb: {self.base_url} unreachable: {exc!r}") from exc

    def _open_sender(self) -> Any:
        from questdb import Sender

        sender: Any = Sender.from_conf(self.conf)
        sender.establish()
        return sender

    async def start(self, tables: list[TableSpec]) -> None:
        await self._create(tables)
        if self._sender is None:
            try:
                self._sender = await self._thread(self._open_sender)
            except Exception as exc:
                raise self._translate(exc, "connect") from exc

    def _translate(self, exc: Exception, table: str) -> Exception:
        """Client error → ours. The client has already retried 5xx and refused connections for
        ``retry_timeout``; what still fails is transient unless the server pinned it to a line of
        our data (a parse or cast error: ``[... line: N]``), which no retry will fix."""
        code = getattr(getattr(exc, "code", None), "name", "")
        text = str(exc)
        if code in _TRANSIENT_CODES:
            return TransientError(f"questdb: {table}: {text}", table=table)
        if code == "ServerFlushError" and "line: " not in text:
            return TransientError(f"questdb: {table}: {text}", table=table)
        return StorageError(f"questdb: {table}: {text}", table=table, code=code)

    async def write(self, batch: Batch) -> None:
        if not len(batch):
            return
        spec = batch.spec
        if self._sender is None:
            await self.start([spec])
        if spec.full_name not in self._created:
            await self._create([spec])
        from questdb import ServerTimestamp, TimestampNanos

        plan = self._plans.get(spec.full_name)
        if plan is None:
            plan = self._plans[spec.full_name] = _Plan(spec)
        buf = self._sender.new_buffer()
        name, symbols, fields, ts = plan.name, plan.symbols, plan.fields, plan.ts
        try:
            async for chunk in iter_rows(batch, self.slice_s / 4):  # a row costs ~4x here
                for r in chunk:
                    buf.row(
                        name,
                        symbols={k: _text(r[i]) for i, k in symbols},
                        columns={k: _text(r[i]) for i, k in fields},
                        at=TimestampNanos(r[ts]) if ts >= 0 else ServerTimestamp,
                    )
        except Exception as exc:
            raise StorageError(f"questdb: {spec.full_name}: cannot encode a row: {exc}",
                               table=spec.full_name) from exc
        try:
            await self._thread(self._sender.flush, buf)
        except Exception as exc:
            raise self._translate(exc, spec.full_name) from exc
        self.requests += 1

    async def ping(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http, \
                    http.get(f"{self.base_url}/ping") as r:
                if r.status >= 300:
                    raise TransientError(f"questdb: /ping answered {r.status}")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise TransientError(f"questdb: {self.base_url} unreachable: {exc!r}") from exc

    async def close(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            try:
                await self._thread(sender.close)
            except Exception as exc:
                log.warning("questdb: closing the sender: %s", exc)
        self._pool.shutdown(wait=True)
