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

Anything that means "the server is not there" (refused, reset, timed out, connection lost) becomes
:class:`TransientError` so the flusher spools and retries; the connection is dropped and made
again on the next :meth:`ping`.

The ledger is pruned so it does not grow for ever: at start and then every ``prune_every_s``
(an hour), a task of its own, on a connection of its own (never the writes'), deletes the
flusher's unit ids older than ``ledger_keep_s`` (``[storage.postgres] ledger_keep_hours``, 7 days)
in chunks of ``prune_chunk`` rows, each its own short statement, found through a partial index on
``written_at`` (migration 0004). A failed prune (server down, timeout, no permission, ledger gone)
is logged, counted and kept in :meth:`ledger_stats`, and tried again at the next scheduled time: it
never touches a write. File imports' ids (``import:...``) are never pruned: they are what makes
re-importing the same file store nothing twice, whenever that happens.

Why pruning cannot break exactly-once: a ledger row matters only while its unit may be written
again, and a unit is written again only by a retry inside one write (bounded by ``timeout_s``) or
by a spool replay. The spool has no age limit (a sink down for a month, or a daemon stopped with a
full spool, replays month-old units, some of which may have committed before the failure that
spooled them), and its frames carry no time, so the cutoff cannot be tied to the oldest spooled
batch. Instead pruning is impossible by construction while the spool holds anything: the sink
prunes only when the flusher that owns its spool has bound :meth:`watch_spool` (a sink started by
an import, a backfill or ``omnid db migrate`` never prunes, since it cannot see the spool), and it
asks before every chunk; while the spool is non-empty (a spool left by the last run counts, until
it has been replayed) the pass is put off and retried within a minute. A unit spooled after the
check has a ledger row, if any, from its own write, seconds old, far newer than the cutoff (the
retention is at least an hour). One daemon per schema prefix is assumed: another daemon's spool is
not visible here.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from importlib import resources
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from omnid.errors import StorageError, TransientError
from omnid.storage.catalog import CATALOG, GROUPS, Catalog, Row, TableSpec
from omnid.storage.ddl import LEDGER, pg_create, pg_schema
from omnid.storage.sinks.base import Batch, careful_rows, iter_rows
from omnid.storage.sinks.pgcopy import HEADER, TRAILER, CopyEncoder

log = logging.getLogger("omnid.storage")

DAY_NS = 86_400_000_000_000
#: Batches at least this big are split across the sink's connections and written in parallel.
PARALLEL_ROWS = 20_000
#: Rows built and encoded between clock checks (~25 µs of work).
STEP = 32
_MIGRATION_LOCK = 0x6F6D6E6964  # advisory lock key ("omnid"): one migrator at a time

#: How long ledger rows are kept by default (``[storage.postgres] ledger_keep_hours``).
LEDGER_KEEP_S = 7 * 86_400.0
#: Time between two prunes of the ledger.
PRUNE_EVERY_S = 3600.0
#: A prune put off because the spool holds batches is tried again this soon.
PRUNE_RECHECK_S = 60.0
#: Ledger rows deleted per statement, and the pause between two statements (the server's time is
#: the writes' first).
PRUNE_CHUNK = 2000
PRUNE_PAUSE_S = 0.02
#: The ledger ids the flusher makes (``<run id, 16 hex>:<batch>:<unit>``, and ``spool:<hash>`` for
#: tick frames spooled before frames carried ids): the only ones pruned. The same text is the
#: predicate of the partial index of migration 0004, so the planner can use it.
PRUNABLE = "batch_id ~ '^([0-9a-f]{16}|spool):'"

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


def day_of(ts_ns: int) -> int:
    return ts_ns // DAY_NS


def partition_name(spec: TableSpec, day: int) -> str:
    return f"{spec.name}_p{time.strftime('%Y%m%d', time.gmtime(day * 86_400))}"


class PostgresSink:
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
        self._streams = 0  # COPYs streaming now: they share one slice per loop turn
        self.copies = 0
        self.upserts = 0
        #: Batch-keyed writes of replays (through the ledger), and units skipped because the ledger
        #: had them already.
        self.replays = 0
        self.units_skipped = 0
        self.ledger_keep_s = ledger_keep_s
        self.prune_every_s = prune_every_s
        self.prune_chunk = max(1, prune_chunk)
        self._spool_pending: Callable[[], bool] | None = None
        self._prune_conn: asyncpg.Connection | None = None
        self._prune_task: asyncio.Task[None] | None = None
        self._prune_lock = asyncio.Lock()
        #: Ledger rows pruned in all, passes completed, passes put off by a waiting spool, passes
        #: failed; wall time (unix s) of the last completed pass; the last failure ("" once a
        #: later pass succeeds).
        self.ledger_pruned = 0
        self.ledger_chunks = 0  # DELETE statements run
        self.ledger_prunes = 0
        self.ledger_held = 0
        self.ledger_prune_failures = 0
        self.ledger_last_prune = 0.0
        self.ledger_last_error = ""

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
        await self._schedule_prune(connect=True)

    # ---------------------------------------------------------------------------------------------
    # Ledger retention (see the module docstring for why it is safe)

    def watch_spool(self, pending: Callable[[], bool]) -> None:
        """Allow the ledger to be pruned, asking ``pending()`` (true while the spool of this sink
        holds batches) before every chunk. Only the flusher that owns the spool calls this."""
        self._spool_pending = pending

    def _spool_held(self) -> bool:
        pending = self._spool_pending
        if pending is None:
            return True
        try:
            return bool(pending())
        except Exception:  # cannot tell: assume the spool holds batches
            log.exception("postgres: cannot tell whether the spool is empty; not pruning")
            return True

    def _ledgers(self) -> list[str]:
        groups = sorted({spec.group for spec in self._tables if spec.batch_keyed})
        return [f'"{pg_schema(self.prefix, g)}"."{LEDGER}"' for g in groups]

    async def _schedule_prune(self, *, connect: bool = False) -> None:
        """Start the prune task if pruning is allowed and it is not running. ``connect``: open its
        connection now (start-up, before the flusher writes: a connect holds the loop ~5 ms)."""
        if self._spool_pending is None or not self._ledgers():
            return
        if connect:
            try:
                await self._prune_connect()
            except Exception as exc:  # the pass itself will try again and record it
                log.warning("postgres: ledger prune connection: %r", exc)
        if self._prune_task is None or self._prune_task.done():
            self._prune_task = asyncio.get_running_loop().create_task(
                self._prune_loop(), name="postgres-ledger-prune")

    async def _prune_connect(self) -> asyncpg.Connection:
        conn = self._prune_conn
        if conn is not None and not conn.is_closed():
            return conn
        conn = await asyncpg.connect(self.dsn, timeout=self.timeout_s, command_timeout=self.timeout_s,
                                     server_settings={"application_name": "omnid ledger prune"})
        self._prune_conn = conn
        return conn

    async def _prune_loop(self) -> None:
        while True:
            wait = self.prune_every_s
            try:
                if await self.prune_ledger() is None:
                    wait = min(wait, PRUNE_RECHECK_S)
            except Exception:  # prune_ledger records its own failures; this task must not die
                log.exception("postgres: ledger prune task")
            await asyncio.sleep(wait)

    async def prune_ledger(self) -> int | None:
        """One pass: delete the flusher's ledger ids older than ``ledger_keep_s``, a chunk per
        statement. Returns the rows deleted, or None if the pass was put off (the spool holds
        batches, or no flusher watches it). Never raises (but for cancellation): a failure is
        logged, counted and kept in ``ledger_last_error``, and the next pass tries again."""
        async with self._prune_lock:  # one pass at a time on the prune connection
            return await self._prune_pass()

    async def _prune_pass(self) -> int | None:
        if self._spool_held():
            self.ledger_held += 1
            return None
        deleted = 0
        try:
            conn = await self._prune_connect()
            keep = datetime.timedelta(seconds=self.ledger_keep_s)
            for ledger in self._ledgers():
                cutoff = await conn.fetchval("SELECT now() - $1::interval", keep, timeout=self.timeout_s)
                sql = (f"DELETE FROM {ledger} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {ledger} "
                       f"WHERE written_at < $1 AND {PRUNABLE} ORDER BY written_at LIMIT $2))")
                while True:
                    if self._spool_held():  # a failure spooled batches since the pass began
                        self.ledger_held += 1
                        return None
                    status = await conn.execute(sql, cutoff, self.prune_chunk, timeout=self.timeout_s)
                    n = int(status.rsplit(" ", 1)[-1])
                    self.ledger_chunks += 1
                    deleted += n
                    self.ledger_pruned += n
                    if n < self.prune_chunk:
                        break
                    await asyncio.sleep(PRUNE_PAUSE_S)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # server down, timeout, permission, ledger gone: next pass retries
            self.ledger_prune_failures += 1
            detail = str(exc) or f"no answer within {self.timeout_s} s"  # a timeout says nothing
            self.ledger_last_error = f"{type(exc).__name__}: {detail}"
            log.warning("postgres: pruning the batch ledger failed (%d rows pruned first); trying "
                        "again in %.0f s: %s", deleted, self.prune_every_s, self.ledger_last_error)
            conn, self._prune_conn = self._prune_conn, None
            if conn is not None:  # a fresh connection next time, whatever state this one is in
                conn.terminate()
            return deleted
        self.ledger_prunes += 1
        self.ledger_last_prune = time.time()
        self.ledger_last_error = ""
        if deleted:
            log.info("postgres: pruned %d batch ledger rows older than %.0f h", deleted,
                     self.ledger_keep_s / 3600)
        return deleted

    def ledger_stats(self) -> dict[str, Any]:
        """The ledger's retention counters, for the flusher's stats."""
        return {
            "keep_hours": self.ledger_keep_s / 3600,
            "pruning": self._prune_task is not None and not self._prune_task.done(),
            "pruned": self.ledger_pruned,
            "chunks": self.ledger_chunks,
            "passes": self.ledger_prunes,
            "held_by_spool": self.ledger_held,
            "failures": self.ledger_prune_failures,
            "last_prune": self.ledger_last_prune,
            "last_error": self.ledger_last_error,
        }

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

    async def _stream(self, batch: Batch) -> AsyncIterator[Row]:
        """Rows for asyncpg's record COPY (the writer process, ``slice_s`` 0), built a chunk at a
        time."""
        async for chunk in iter_rows(batch, self.slice_s):
            for r in chunk:
                yield r

    def encoder(self, spec: TableSpec) -> CopyEncoder:
        enc = self._encoders.get(spec.full_name)
        if enc is None or enc.spec is not spec:
            enc = self._encoders[spec.full_name] = CopyEncoder(spec)
        return enc

    async def _pieces(self, batch: Batch) -> AsyncIterator[bytes]:
        """Binary COPY data of ``batch``, the loop running between pieces. A piece is what half
        of the sink's slice encodes (split between the COPYs streaming at once). asyncpg sends a
        piece the moment it has it, so that happens in a loop turn of its own: usually ~20 µs,
        but the kernel's loopback work for one send has taken up to ~0.4 ms."""
        spec = batch.spec
        enc = self.encoder(spec)
        make = spec.row
        items = batch.items
        built = batch.built
        perf = time.perf_counter
        out: list[bytes] = [HEADER]
        start = perf()
        for i in range(0, len(items), STEP):
            part = items[i : i + STEP]
            if built:
                enc.encode(part, out)
            else:
                try:
                    rows = list(map(make, part))
                except Exception:  # an item that cannot become a row: left out
                    rows = careful_rows(spec, part)
                enc.encode(rows, out)
            if perf() - start >= self.slice_s / (2 * max(1, self._streams)):
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
        if self.slice_s <= 0:  # no loop to protect (the writer process): asyncpg encodes
            records = batch.items if batch.built else self._stream(batch)
            await conn.copy_records_to_table(table, schema_name=schema, columns=spec.column_names,
                                             records=records, timeout=self.timeout_s)
            return
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
            raise StorageError(f"postgres: {spec.full_name}: {exc}", table=spec.full_name) from exc
        except (ValueError, TypeError, OverflowError) as exc:  # a row asyncpg cannot encode
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
            raise StorageError(f"postgres: {spec.full_name}: {exc}", table=spec.full_name) from exc
        except (ValueError, TypeError, OverflowError) as exc:  # a row asyncpg cannot encode
            raise StorageError(f"postgres: {spec.full_name}: bad row: {exc}", table=spec.full_name) from exc

    async def _write_on(self, i: int, conn: asyncpg.Connection, batch: Batch) -> None:
        spec = batch.spec
        for attempt in range(2):
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
                await self._ensure_days(conn, spec, await self._days_of(batch))
            except asyncpg.UndefinedTableError:
                if attempt:
                    raise
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
            if len(new) < len(ids):
                self.units_skipped += len(ids) - len(new)
                if not new:
                    return
                batch = batch.only({r[0] for r in new})
            await self._copy(conn, spec, batch)
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
            if batch.built:
                days.update({r[idx] // DAY_NS for r in part})
            else:
                days.update({getattr(x, col) // DAY_NS for x in part})
            await asyncio.sleep(0)
        return days

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
        await self._schedule_prune()  # a start-up that failed part way never started it

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Run a read on the sink's connection (queries and tests)."""
        conn = await self._connect()
        return list(await conn.fetch(sql, *args))

    async def close(self) -> None:
        task, self._prune_task = self._prune_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        prune, self._prune_conn = self._prune_conn, None
        conns, self._conns = self._conns, [None] * self.connections
        for conn in [*conns, prune]:
            if conn is None:
                continue
            try:
                await asyncio.wait_for(conn.close(), self.timeout_s)
            except (*_DOWN, asyncpg.PostgresError):
                conn.terminate()
