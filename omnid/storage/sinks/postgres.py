"""PostgreSQL through asyncpg: binary COPY, day partitions for ticks, versioned migrations.

Writing a fresh batch is one binary ``COPY`` straight into the table (PostgreSQL routes tick rows
to their day partition). That is safe because the natural key makes a duplicate fail loudly
rather than store twice: if the COPY meets a row already stored (a venue re-sent a trade), or the
batch is a replay from the spool (an earlier attempt may or may not have committed), the rows go
through the idempotent path instead: ``COPY`` into a per-connection temporary staging table, then
``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` into the table, in one transaction.

Batch-keyed tables (the tick tables) have no unique index: keeping one cost the server more per
row than the COPY. Each batch for them carries unit ids (:class:`Batch`); a part is written in one
transaction that first inserts its unit ids into the schema's ``written_batches`` ledger with
``ON CONFLICT DO NOTHING RETURNING``, then COPYs the rows of only the units that insert returned.
A unit already stored is skipped; a unit being stored by another transaction at that moment makes
the insert wait for it (the ledger's primary key), so a unit is stored exactly once. A batch for
these tables without unit ids is COPYed as it is if fresh, and refused if it is a replay.

Rows are built and encoded into binary COPY data here (:mod:`omnid.storage.sinks.pgcopy`), a
piece at a time, and handed to asyncpg as bytes: one piece is what half a ``slice_s`` encodes,
shared by all the sink's connections copying at once, and its send gets a loop turn of its own, so
a loop turn spends well under ``slice_s`` on PostgreSQL however many COPYs run (asyncpg's own
record encoding sends 512 KB bursts of ~1 ms). A row that cannot be encoded is logged and left
out. Timestamps are bigint nanoseconds: no ``datetime`` is built per row.

Anything that means "the server is not there" (refused, reset, timed out, connection lost) or
"it cannot take a write now" whatever the rows (a deadlock, a full disk, a cancelled statement, a
read-only server, a lock timeout: :func:`server_busy`) becomes :class:`TransientError` so the
flusher spools and retries; the connection is dropped and made again on the next :meth:`ping`.

The ledger is pruned so it does not grow for ever, never while the spool holds batches, by a
:class:`omnid.storage.sinks.pg_ledger.LedgerPruner` on a connection of its own (that module says
why this cannot break exactly-once).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable
from importlib import resources
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from omnid.errors import StorageError, TransientError
from omnid.storage.catalog import CATALOG, GROUPS, Catalog, TableSpec
from omnid.storage.ddl import LEDGER, pg_create, pg_schema
from omnid.storage.sinks.base import Batch, careful_rows
from omnid.storage.sinks.pg_ledger import (
    LEDGER_KEEP_S,
    PRUNE_CHUNK,
    PRUNE_EVERY_S,
    LedgerPruner,
    LedgerRetention,
)
from omnid.storage.sinks.pgcopy import HEADER, TRAILER, CopyEncoder

log = logging.getLogger("omnid.storage")

DAY_NS = 86_400_000_000_000
#: Batches at least this big are split across the sink's connections and written in parallel.
PARALLEL_ROWS = 20_000
#: Rows built and encoded between clock checks (~25 µs of work).
STEP = 32
#: Rows per piece when no loop is to be protected (the writer process): ~100-200 KB of COPY data.
PIECE_ROWS = 2048
_MIGRATION_LOCK = 0x6F6D6E6964  # advisory lock key ("omnid"): one migrator at a time

#: Errors that say the server is unreachable or the connection is gone.
_DOWN = (
    OSError,
    TimeoutError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.TooManyConnectionsError,
)


#: SQLSTATE classes, and codes, of server errors that say nothing about the rows: the server cannot
#: take a write now (connection lost, transaction rollback such as a deadlock, insufficient
#: resources such as a full disk, operator intervention such as a cancelled statement, system I/O
#: error, a read-only server after a failover, a lock not granted in time). A write failing so is
#: transient: the batch is spooled and replayed once the server takes writes again, not dropped.
_BUSY_CLASSES = frozenset({"08", "40", "53", "57", "58"})
_BUSY_CODES = frozenset({"25006", "55P03"})


def server_busy(exc: BaseException) -> bool:
    """Whether a PostgreSQL error is the server's state rather than the data's (see above)."""
    code = str(getattr(exc, "sqlstate", "") or "")
    return code[:2] in _BUSY_CLASSES or code in _BUSY_CODES


def migrations() -> list[tuple[int, str, str]]:
    """``(version, name, sql)`` of every packaged migration, in order."""
    root = resources.files("omnid.storage") / "migrations" / "postgres"
    out = []
    for entry in root.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            out.append((int(name[:4]), name, entry.read_text(encoding="utf-8")))
    return sorted(out)


def render(sql: str, prefix: str) -> str:
    for g in GROUPS:
        sql = sql.replace("{" + g + "}", f'"{pg_schema(prefix, g)}"')
    return sql


async def migrate(conn: asyncpg.Connection, prefix: str = "") -> list[int]:
    """Apply every migration not yet applied; return the versions applied now."""
    meta = f'"{prefix}meta"'
    applied_now: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {meta}")
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {meta}.schema_migrations (version int PRIMARY KEY, "
            "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r[0] for r in await conn.fetch(f"SELECT version FROM {meta}.schema_migrations")}
        for version, name, sql in migrations():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(render(sql, prefix))
                await conn.execute(
                    f"INSERT INTO {meta}.schema_migrations (version, name) VALUES ($1, $2)", version, name
                )
            applied_now.append(version)
            log.info("postgres: applied migration %s", name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied_now


#: The days an int64 nanosecond time can fall on.
_MIN_DAY = -(2**63) // DAY_NS
_MAX_DAY = (2**63 - 1) // DAY_NS


def day_of(ts_ns: int) -> int:
    return ts_ns // DAY_NS


def _day(row: Any, where: int | str) -> int | None:
    """The day of a row's (``where``: index) or an item's (attribute) partition time; None
    unless that is an int64 (such a row is not stored)."""
    try:
        ts = row[where] if isinstance(where, int) else getattr(row, where)
    except Exception:
        return None
    return ts // DAY_NS if type(ts) is int and -(2**63) <= ts < 2**63 else None


def partition_name(spec: TableSpec, day: int) -> str:
    return f"{spec.name}_p{time.strftime('%Y%m%d', time.gmtime(day * 86_400))}"


class PostgresSink(LedgerRetention):
    """Used by one flusher worker at a time. ``connections`` > 1 splits a big batch across that
    many connections written in parallel: worth it only with cores to spare, since every COPY
    backend also needs a core. On 2 cores one connection measured faster (997k against 913k
    rows/s) with far shorter stalls of the loop (2.3 against 5.1 ms wall), so it is the default;
    the writer process sets its own."""

    name = "postgres"

    def __init__(
        self,
        dsn: str,
        *,
        schema_prefix: str = "",
        migrate_on_start: bool = True,
        timeout_s: float = 10.0,
        partitions_ahead_days: int = 2,
        slice_s: float = 0.00025,
        connections: int = 1,
        catalog: Catalog | None = None,
        ledger_keep_s: float = LEDGER_KEEP_S,
        prune_every_s: float = PRUNE_EVERY_S,
        prune_chunk: int = PRUNE_CHUNK,
    ) -> None:
        self.dsn = dsn
        self.prefix = schema_prefix
        self.migrate_on_start = migrate_on_start
        self.timeout_s = timeout_s
        self.ahead = partitions_ahead_days
        self.slice_s = slice_s
        self.catalog = catalog or CATALOG
        self.connections = max(1, connections)
        self._conns: list[asyncpg.Connection | None] = [None] * self.connections
        self._tables: list[TableSpec] = []
        self._ready: set[str] = set()  # tables known to exist
        self._days: dict[str, set[int]] = {}  # partitioned table → days with a partition
        self._staging: list[set[str]] = [set() for _ in range(self.connections)]  # per connection
        self._ddl_lock = asyncio.Lock()
        self._encoders: dict[str, CopyEncoder] = {}
        self._rejected_before = 0  # counted by encoders since replaced
        self._streams = 0  # COPYs streaming now: they share one slice per loop turn
        self.copies = 0
        self.upserts = 0
        #: Batch-keyed writes of replays (through the ledger), and units skipped because the ledger
        #: had them already.
        self.replays = 0
        self.units_skipped = 0
        #: Prunes the batch ledger once the flusher that owns this sink's spool watches it.
        self.pruner = LedgerPruner(dsn, schema_prefix=schema_prefix, timeout_s=timeout_s,
                                   keep_s=ledger_keep_s, every_s=prune_every_s, chunk=prune_chunk)

    def qualified(self, spec: TableSpec) -> str:
        return f'"{pg_schema(self.prefix, spec.group)}"."{spec.name}"'

    async def _connect(self, i: int = 0) -> asyncpg.Connection:
        conn = self._conns[i]
        if conn is not None and not conn.is_closed():
            return conn
        try:
            conn = await asyncpg.connect(self.dsn, timeout=self.timeout_s, command_timeout=self.timeout_s)
        except _DOWN as exc:
            raise TransientError(f"postgres: cannot connect: {exc!r}") from exc
        except asyncpg.InvalidAuthorizationSpecificationError as exc:
            raise StorageError(f"postgres: login refused: {exc}") from exc
        self._conns[i] = conn
        self._staging[i] = set()
        return conn

    async def _drop(self) -> None:
        """Forget every connection (one failing means the server or the path to it is in trouble)."""
        conns, self._conns = self._conns, [None] * self.connections
        for conn in conns:
            if conn is not None:
                conn.terminate()

    async def start(self, tables: list[TableSpec]) -> None:
        self._tables = tables
        for spec in tables:  # now: generating an encoder holds the loop ~0.5 ms
            self.encoder(spec)
        conn = await self._connect()
        for i in range(1, self.connections):  # now, not mid-stream: a connect holds the loop ~5 ms
            await self._connect(i)
        try:
            if self.migrate_on_start:
                await migrate(conn, self.prefix)
            for spec in tables:
                await self._ensure_table(conn, spec)
            today = day_of(time.time_ns())
            for spec in tables:
                if spec.partition_ts:
                    await self._ensure_days(conn, spec, range(today, today + self.ahead + 1))
        except _DOWN as exc:
            await self._drop()
            raise TransientError(f"postgres: lost during start-up: {exc!r}") from exc
        self.pruner.set_tables(tables)
        await self.pruner.schedule(connect=True)

    async def _ensure_table(self, conn: asyncpg.Connection, spec: TableSpec) -> None:
        if spec.full_name in self._ready:
            return
        schema = pg_schema(self.prefix, spec.group)
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        for stmt in pg_create(spec, schema):
            await conn.execute(stmt)
        self._ready.add(spec.full_name)

    async def _ensure_days(self, conn: asyncpg.Connection, spec: TableSpec, days: Iterable[int]) -> None:
        async with self._ddl_lock:  # two connections creating one partition at once would clash
            await self._create_days(conn, spec, days)

    async def _create_days(self, conn: asyncpg.Connection, spec: TableSpec, days: Iterable[int]) -> None:
        have = self._days.setdefault(spec.full_name, set())
        schema = pg_schema(self.prefix, spec.group)
        for day in sorted(set(days) - have):
            part = partition_name(spec, day)
            lo, hi = day * DAY_NS, (day + 1) * DAY_NS
            await conn.execute(
                f'CREATE TABLE IF NOT EXISTS "{schema}"."{part}" PARTITION OF {self.qualified(spec)} '
                f"FOR VALUES FROM ({lo}) TO ({hi})"
            )
            have.add(day)

    @property
    def rejected(self) -> int:
        """Rows left out because they could not be encoded (each one logged)."""
        return self._rejected_before + sum(enc.rejected for enc in self._encoders.values())

    def encoder(self, spec: TableSpec) -> CopyEncoder:
        enc = self._encoders.get(spec.full_name)
        if enc is None or enc.spec is not spec:
            if enc is not None:  # a table registered again: keep what the old encoder counted
                self._rejected_before += enc.rejected
            enc = self._encoders[spec.full_name] = CopyEncoder(spec)
        return enc

    async def _pieces(self, batch: Batch) -> AsyncIterator[bytes]:
        """Binary COPY data of ``batch``, the loop running between pieces. A piece is what half
        of the sink's slice encodes (split between the COPYs streaming at once). asyncpg sends a
        piece the moment it has it, so that happens in a loop turn of its own: usually ~20 µs,
        but the kernel's loopback work for one send has taken up to ~0.4 ms. With ``slice_s`` 0
        (the writer process: no loop to protect) a piece is :data:`PIECE_ROWS` rows, no yields."""
        spec = batch.spec
        enc = self.encoder(spec)
        make = spec.row
        items = batch.items
        built = batch.built
        whole = self.slice_s <= 0
        perf = time.perf_counter
        out: list[bytes] = [HEADER]
        start = perf()
        for i in range(0, len(items), PIECE_ROWS if whole else STEP):
            part = items[i : i + (PIECE_ROWS if whole else STEP)]
            if built:
                enc.encode(part, out)
            else:
                try:
                    rows = list(map(make, part))
                except Exception:  # an item that cannot become a row: left out
                    rows = careful_rows(spec, part)
                enc.encode(rows, out)
            if whole:
                piece = b"".join(out)
                out.clear()
                yield piece
            elif perf() - start >= self.slice_s / (2 * max(1, self._streams)):
                piece = b"".join(out)
                out.clear()
                await asyncio.sleep(0)  # asyncpg sends the piece at once: in a turn of its own
                yield piece
                await asyncio.sleep(0)  # and asks for the next one at once
                start = perf()
        out.append(TRAILER)
        yield b"".join(out)

    async def _copy_to(self, conn: asyncpg.Connection, table: str, schema: str | None, spec: TableSpec,
                       batch: Batch) -> None:
        """One binary COPY of our own encoding (a row that cannot be encoded is logged and left
        out, the rest stored), on the loop and in the writer process alike."""
        self._streams += 1
        try:
            await conn.copy_to_table(table, schema_name=schema, columns=spec.column_names,
                                     source=self._pieces(batch), format="binary", timeout=self.timeout_s)
        finally:
            self._streams -= 1

    async def _copy(self, conn: asyncpg.Connection, spec: TableSpec, batch: Batch) -> None:
        await self._copy_to(conn, spec.name, pg_schema(self.prefix, spec.group), spec, batch)

    async def _upsert(self, i: int, conn: asyncpg.Connection, spec: TableSpec, batch: Batch) -> None:
        stg = f"stg_{spec.group}_{spec.name}"
        staging = self._staging[i]
        cols = ", ".join(f'"{c}"' for c in spec.column_names)
        try:
            async with conn.transaction():
                if stg not in staging:
                    await conn.execute(
                        f'CREATE TEMP TABLE IF NOT EXISTS "{stg}" (LIKE {self.qualified(spec)}) '
                        "ON COMMIT DELETE ROWS"
                    )
                    staging.add(stg)
                await self._copy_to(conn, stg, None, spec, batch)
                await conn.execute(
                    f"INSERT INTO {self.qualified(spec)} ({cols}) "
                    f'SELECT {cols} FROM "{stg}" ON CONFLICT DO NOTHING'
                )
        except BaseException:
            staging.discard(stg)  # a rollback also undid the CREATE TEMP TABLE
            raise
        self.upserts += 1

    async def write(self, batch: Batch) -> None:
        """A big batch is split across the connections and written in parallel (each part its own
        transaction: if any part fails the whole batch is retried later, idempotently)."""
        n = len(batch)
        if not n:
            return
        spec = batch.spec
        try:
            conn = await self._connect(0)
            await self._ensure_table(conn, spec)
            if self.connections == 1 or n < PARALLEL_ROWS:
                await self._write_on(0, conn, batch)
                return
            parts = batch.split(self.connections, copy=False)  # views: no big young lists
            conns = [await self._connect(i) for i in range(len(parts))]
            results = await asyncio.gather(
                *(self._write_on(i, c, p) for i, (c, p) in enumerate(zip(conns, parts, strict=True))),
                return_exceptions=True,
            )
            for r in results:
                if isinstance(r, BaseException):
                    raise r
        except _DOWN as exc:
            await self._drop()
            raise TransientError(f"postgres: {spec.full_name}: {exc!r}", table=spec.full_name) from exc
        except asyncpg.PostgresError as exc:
            if server_busy(exc):  # a fresh connection on the retry (a failover may have moved it)
                await self._drop()
                raise TransientError(f"postgres: {spec.full_name}: {exc!r}", table=spec.full_name) from exc
            raise StorageError(f"postgres: {spec.full_name}: {exc}", table=spec.full_name) from exc
        except (ValueError, TypeError, OverflowError) as exc:  # a value asyncpg refuses
            raise StorageError(f"postgres: {spec.full_name}: bad row: {exc}", table=spec.full_name) from exc

    async def write_on(self, i: int, batch: Batch) -> None:
        """Write all of ``batch`` on connection ``i`` in one transaction, errors mapped as by
        :meth:`write`: the writer process runs one such part per connection at a time."""
        spec = batch.spec
        try:
            conn = await self._connect(i)
            if spec.full_name not in self._ready:
                async with self._ddl_lock:
                    await self._ensure_table(conn, spec)
            await self._write_on(i, conn, batch)
        except _DOWN as exc:
            await self._drop()
            raise TransientError(f"postgres: {spec.full_name}: {exc!r}", table=spec.full_name) from exc
        except asyncpg.PostgresError as exc:
            if server_busy(exc):  # a fresh connection on the retry (a failover may have moved it)
                await self._drop()
                raise TransientError(f"postgres: {spec.full_name}: {exc!r}", table=spec.full_name) from exc
            raise StorageError(f"postgres: {spec.full_name}: {exc}", table=spec.full_name) from exc
        except (ValueError, TypeError, OverflowError) as exc:  # a value asyncpg refuses
            raise StorageError(f"postgres: {spec.full_name}: bad row: {exc}", table=spec.full_name) from exc

    async def _write_on(self, i: int, conn: asyncpg.Connection, batch: Batch) -> None:
        spec = batch.spec
        enc = self.encoder(spec)
        for attempt in range(2):
            counted = enc.rejected  # a retry below meets the same bad rows again: count them once
            try:
                if spec.batch_keyed:
                    await self._write_keyed(conn, spec, batch)
                elif batch.replay:
                    await self._upsert(i, conn, spec, batch)
                else:
                    try:
                        await self._copy(conn, spec, batch)
                        self.copies += 1
                    except asyncpg.UniqueViolationError:
                        await self._upsert(i, conn, spec, batch)
                return
            except asyncpg.CheckViolationError as exc:
                if attempt or not spec.partition_ts or "no partition" not in str(exc):
                    raise
                enc.rejected = counted
                await self._ensure_days(conn, spec, await self._days_of(batch))
            except asyncpg.UndefinedTableError:
                if attempt:
                    raise
                enc.rejected = counted
                self._ready.discard(spec.full_name)
                self._staging[i].clear()
                await self._ensure_table(conn, spec)

    async def _write_keyed(self, conn: asyncpg.Connection, spec: TableSpec, batch: Batch) -> None:
        """Store the units of ``batch`` not in the ledger, and record them there, atomically."""
        if batch.units is None:
            if batch.replay:
                raise StorageError(f"postgres: {spec.full_name}: a replayed batch needs unit ids "
                                   "(the table has no unique key to make a replay idempotent)",
                                   table=spec.full_name)
            await self._copy(conn, spec, batch)
            self.copies += 1
            return
        ids = [u for u, _ in batch.units]
        if batch.replay:
            self.replays += 1
        ledger = f'"{pg_schema(self.prefix, spec.group)}"."{LEDGER}"'
        async with conn.transaction():
            new = await conn.fetch(
                f"INSERT INTO {ledger} (batch_id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING "
                "RETURNING batch_id", ids, timeout=self.timeout_s)
            if new:
                if len(new) < len(ids):
                    batch = batch.only({r[0] for r in new})
                await self._copy(conn, spec, batch)
        # counted once committed: a transaction retried (a partition made first) counts once
        self.units_skipped += len(ids) - len(new)
        if new:
            self.copies += 1

    async def _days_of(self, batch: Batch) -> set[int]:
        """The days a batch's rows fall on, scanned in slices (a big batch is hundreds of ms)."""
        spec = batch.spec
        col = spec.partition_ts
        idx = spec.column_names.index(col)
        days: set[int] = set()
        items = batch.items
        for i in range(0, len(items), 4096):
            part = items[i : i + 4096]
            try:
                if batch.built:
                    days.update({r[idx] // DAY_NS for r in part})
                else:
                    days.update({getattr(x, col) // DAY_NS for x in part})
            except Exception:  # a row the encoder will leave out (short, no int time): skip it
                for r in part:
                    d = _day(r, idx if batch.built else col)
                    if d is not None:
                        days.add(d)
            await asyncio.sleep(0)
        # The fast path above reads any int or float: a time beyond int64 (or not an int) has no
        # partition, and asking for one would fail the whole batch ("bigint out of range"); the
        # encoder leaves such a row out, so its day is dropped here.
        return {d for d in days if type(d) is int and _MIN_DAY <= d <= _MAX_DAY}

    async def ping(self) -> None:
        conn = await self._connect()
        try:
            await conn.fetchval("SELECT 1", timeout=self.timeout_s)
            for i in range(1, self.connections):
                await self._connect(i)
            if not self._ready and self._tables:
                await self.start(self._tables)
        except _DOWN as exc:
            await self._drop()
            raise TransientError(f"postgres: not answering: {exc!r}") from exc
        await self.pruner.schedule()  # a start-up that failed part way never started it

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Run a read on the sink's connection (queries and tests)."""
        conn = await self._connect()
        return list(await conn.fetch(sql, *args))

    async def close(self) -> None:
        await self.pruner.close()
        conns, self._conns = self._conns, [None] * self.connections
        for conn in conns:
            if conn is None:
                continue
            try:
                await asyncio.wait_for(conn.close(), self.timeout_s)
            except (*_DOWN, asyncpg.PostgresError):
                conn.terminate()
