"""The PostgreSQL sink against the real server on 127.0.0.1:5432 (a fresh schema set per test)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest
from omnid.errors import StorageError
from omnid.storage.catalog import Catalog
from omnid.storage.flusher import Flusher
from omnid.storage.recorder import BatchRecorder
from omnid.storage.sinks.base import Batch, make_units
from omnid.storage.sinks.pg_process import PostgresProcessSink
from omnid.storage.sinks.postgres import DAY_NS, PostgresSink, migrate, migrations, server_busy

from tests.storage.conftest import PG_DSN, T0, sample_records, trades
from tests.storage.tcpproxy import TcpProxy

pytestmark = pytest.mark.postgres


async def _count(prefix: str, table: str) -> int:
    conn = await asyncpg.connect(PG_DSN)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM {prefix}{table}"))
    finally:
        await conn.close()


async def test_migrations_apply_once_and_record_versions(pg_prefix: str) -> None:
    """Every packaged migration is applied on the first run and none on the second."""
    conn = await asyncpg.connect(PG_DSN)
    try:
        first = await migrate(conn, pg_prefix)
        second = await migrate(conn, pg_prefix)
        versions = [r[0] for r in await conn.fetch(
            f'SELECT version FROM "{pg_prefix}meta".schema_migrations ORDER BY 1')]
        schemas = {r[0] for r in await conn.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", pg_prefix + "%")}
    finally:
        await conn.close()
    assert first == [v for v, _, _ in migrations()] and second == []
    assert versions == first
    assert {f"{pg_prefix}{g}" for g in ("md", "derived", "strategy", "exec")} <= schemas


async def test_migration_matches_catalogue(pg_prefix: str) -> None:
    """The SQL migration's columns are exactly the catalogue's, table by table."""
    conn = await asyncpg.connect(PG_DSN)
    try:
        await migrate(conn, pg_prefix)
        for spec in Catalog().tables():
            cols = [r[0] for r in await conn.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_schema=$1 "
                "AND table_name=$2 ORDER BY ordinal_position", f"{pg_prefix}{spec.group}", spec.name)]
            assert cols == spec.column_names, spec.full_name
    finally:
        await conn.close()


async def test_ticks_land_in_day_partitions_and_replays_do_not_duplicate(pg_prefix: str) -> None:
    """Trades across three days go to three partitions; the same batch (same unit ids) replayed,
    or sent fresh again, stores nothing new: the ledger has its units."""
    cat = Catalog()
    sink = PostgresSink(PG_DSN, schema_prefix=pg_prefix, catalog=cat)
    await sink.start(cat.tables())
    spec = cat.table("md.trades")
    batch = trades(3000, start=T0, step=DAY_NS // 1000)  # spans 3 days
    rows = [spec.row(t) for t in batch]
    units = make_units("run1:0", len(batch))
    await sink.write(Batch(spec, batch, units=units))
    await sink.write(Batch(spec, rows, built=True, replay=True, units=units))
    await sink.write(Batch(spec, batch, units=units))  # fresh but already stored: skipped
    parts = await sink.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace "
        "WHERE p.relname = 'trades' AND n.nspname = $1 AND EXISTS (SELECT 1)", f"{pg_prefix}md")
    counts = await sink.fetch(f'SELECT count(*), count(DISTINCT trade_id) FROM "{pg_prefix}md".trades')
    await sink.close()
    assert counts[0][0] == 3000 and counts[0][1] == 3000
    assert sink.copies == 1 and sink.upserts == 0 and sink.units_skipped == 6
    days = {r[0] for r in parts}
    assert {"trades_p20261118", "trades_p20261119", "trades_p20261120"} <= days


async def test_tick_tables_have_no_unique_index_and_units_store_exactly_once(pg_prefix: str) -> None:
    """After the migrations the tick tables carry only a BRIN index (no per-row unique index) and
    a replay that is partly stored already writes only the missing units; a replay without unit
    ids is refused, since nothing else could make it idempotent."""
    cat = Catalog()
    sink = PostgresSink(PG_DSN, schema_prefix=pg_prefix, catalog=cat)
    await sink.start(cat.tables())
    spec = cat.table("md.trades")
    idx = await sink.fetch(
        "SELECT i.relname, ix.indisunique, am.amname FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid "
        "JOIN pg_class t ON t.oid = ix.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace "
        "JOIN pg_am am ON am.oid = i.relam WHERE n.nspname = $1 AND t.relname IN ('trades', 'quotes')",
        f"{pg_prefix}md")
    assert sorted((r[0], r[1], r[2]) for r in idx) == [
        ("quotes_ts_brin", False, "brin"), ("trades_ts_brin", False, "brin")]
    batch = trades(2500, start=T0)
    units = make_units("run2:7", len(batch))  # 1000 + 1000 + 500
    first = Batch(spec, batch, units=units)
    await sink.write(first.only({units[1][0]}))  # only the middle unit got stored before a crash
    rows = [spec.row(t) for t in batch]
    await sink.write(Batch(spec, rows, built=True, replay=True, units=units))
    with pytest.raises(StorageError, match="unit ids"):
        await sink.write(Batch(spec, rows, built=True, replay=True))
    got = await sink.fetch(f'SELECT count(*), count(DISTINCT trade_id) FROM "{pg_prefix}md".trades')
    ledger = await sink.fetch(f'SELECT batch_id FROM "{pg_prefix}md".written_batches ORDER BY 1')
    await sink.close()
    assert tuple(got[0]) == (2500, 2500)
    assert [r[0] for r in ledger] == [u for u, _ in units]
    assert sink.units_skipped == 1 and sink.replays == 1


async def test_flusher_writes_every_kind(pg_prefix: str, tmp_path: Path) -> None:
    """Through recorder and flusher, each kind of record reaches its schema's table once."""
    cat = Catalog()
    rec = BatchRecorder(cat, flush_rows=500)
    fl = Flusher(rec, {"postgres": PostgresSink(PG_DSN, schema_prefix=pg_prefix, catalog=cat)},
                 default_sink="postgres", spool_dir=tmp_path, catalog=cat, flush_ms=20)
    await fl.start()
    for t in trades(1200):
        rec.record(t)
    for r in sample_records() + sample_records():
        rec.record(r)  # type: ignore[arg-type]
    await fl.flush()
    await fl.stop()
    assert await _count(pg_prefix, "md.trades") == 1200
    for table in ("strategy.intents", "exec.orders", "exec.fills", "md.bars"):
        assert await _count(pg_prefix, table) == 1, table


async def test_postgres_outage_mid_run_loses_and_duplicates_nothing(pg_prefix: str, tmp_path: Path) -> None:
    """PostgreSQL becomes unreachable mid-run (the proxy cuts every connection, some mid-COPY)
    and comes back: the spool replays and every row is there exactly once."""
    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.start()
    dsn = f"postgresql://postgres@127.0.0.1:{proxy.port}/test"
    cat = Catalog()
    rec = BatchRecorder(cat, flush_rows=2000)
    sink = PostgresSink(dsn, schema_prefix=pg_prefix, catalog=cat, timeout_s=2.0)
    fl = Flusher(rec, {"postgres": sink}, default_sink="postgres", spool_dir=tmp_path, catalog=cat,
                 flush_ms=10, retry_s=0.05)
    await fl.start()
    worker = fl.workers["postgres"]
    all_trades = trades(60_000)
    fed = 0

    async def feed(n: int) -> None:
        nonlocal fed
        for t in all_trades[fed : fed + n]:
            rec.record(t)
        fed += n
        await asyncio.sleep(0.005)

    for _ in range(10):
        await feed(1000)
    await proxy.cut()  # lands while batches are in flight
    for _ in range(20):
        await feed(1000)
    for _ in range(200):
        if worker.spooling and worker.spool.size() > 0:
            break
        await asyncio.sleep(0.01)
    assert worker.spooling and worker.spool.size() > 0
    await proxy.restore()
    for _ in range(30):
        await feed(1000)
    await fl.flush(timeout_s=60)
    assert not worker.spooling and worker.spool.size() == 0
    assert worker.spool.rows_spooled >= 10_000 and sink.replays > 0  # the replay path really ran
    await fl.stop()
    await proxy.close()
    conn = await asyncpg.connect(PG_DSN)
    try:
        total, distinct = await conn.fetchrow(
            f'SELECT count(*), count(DISTINCT trade_id) FROM "{pg_prefix}md".trades')
    finally:
        await conn.close()
    assert fed == 60_000
    assert (total, distinct) == (60_000, 60_000)


async def test_big_batches_split_across_connections(pg_prefix: str) -> None:
    """A batch over PARALLEL_ROWS goes out as parallel COPYs on two connections, creating missing
    day partitions once; a replay of it stores nothing new."""
    from omnid.storage.sinks.postgres import PARALLEL_ROWS

    cat = Catalog()
    sink = PostgresSink(PG_DSN, schema_prefix=pg_prefix, catalog=cat, connections=2)
    await sink.start(cat.tables())
    spec = cat.table("md.trades")
    n = PARALLEL_ROWS * 2 + 7
    batch = trades(n, start=T0, step=DAY_NS // 10_000)  # spans several days
    units = make_units("big:0", n)
    await sink.write(Batch(spec, batch, units=units))
    assert sink.copies == 2
    rows = [spec.row(t) for t in batch]
    await sink.write(Batch(spec, rows, built=True, replay=True, units=units))
    assert sink.units_skipped == len(units)
    got = await sink.fetch(f'SELECT count(*), count(DISTINCT trade_id) FROM "{pg_prefix}md".trades')
    await sink.close()
    assert tuple(got[0]) == (n, n)


@pytest.mark.parametrize("writer", ["loop", "process"])
async def test_a_server_refusal_that_is_not_the_rows_fault_spools_and_replays_once(
        pg_prefix: str, tmp_path: Path, writer: str) -> None:
    """A write the server refuses for its own state (here its lock timeout, while another session
    holds the table) is transient with either writer: the batch, ledger row and all, is rolled back
    and spooled, and replayed once the table is free; an error about the data still is not."""
    assert server_busy(asyncpg.LockNotAvailableError()) and server_busy(asyncpg.DiskFullError())
    assert server_busy(asyncpg.ReadOnlySQLTransactionError()) and server_busy(asyncpg.DeadlockDetectedError())
    assert server_busy(asyncpg.QueryCanceledError()) and not server_busy(asyncpg.DataError())
    assert not server_busy(asyncpg.InsufficientPrivilegeError()) and not server_busy(ValueError())
    cat = Catalog()
    dsn = PG_DSN + "?lock_timeout=200"
    sink: PostgresSink | PostgresProcessSink
    if writer == "loop":
        sink = PostgresSink(dsn, schema_prefix=pg_prefix, catalog=cat)
    else:
        sink = PostgresProcessSink(dsn, schema_prefix=pg_prefix)
    rec = BatchRecorder(cat, flush_rows=5000)
    fl = Flusher(rec, {"postgres": sink}, default_sink="postgres", spool_dir=tmp_path, catalog=cat,
                 flush_ms=10, retry_s=0.05)
    worker = fl.workers["postgres"]
    admin = await asyncpg.connect(PG_DSN)
    await fl.start()
    try:
        for t in trades(5000):
            rec.record(t)
        await fl.flush(timeout_s=30)
        async with admin.transaction():
            await admin.execute(f'LOCK TABLE "{pg_prefix}md".trades IN ACCESS EXCLUSIVE MODE')
            for t in trades(5000, start=T0 + DAY_NS // 2):
                rec.record(t)
            for _ in range(1000):
                if worker.spool.rows_spooled >= 5000:
                    break
                await asyncio.sleep(0.01)
            assert worker.spooling and worker.spool.rows_spooled == 5000 and worker.rows_failed == 0
            assert "LockNotAvailable" in worker.last_error
        await fl.flush(timeout_s=30)
        assert not worker.spooling and worker.rows_written == 10_000 and worker.rows_failed == 0
        got = await admin.fetchrow(f'SELECT count(*), count(DISTINCT (ts_event, trade_id)) FROM "{pg_prefix}md".trades')
    finally:
        await fl.stop()
        await admin.close()
    assert tuple(got) == (10_000, 10_000)
