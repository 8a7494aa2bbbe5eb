"""The PostgreSQL sink that writes through a separate process, against the real server."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import asyncpg
import msgspec
import pytest
from omnid.errors import StorageError, TransientError
from omnid.storage.catalog import Catalog, TableSpec, register_table
from omnid.storage.flusher import Flusher
from omnid.storage.recorder import BatchRecorder
from omnid.storage.sinks.base import Batch, make_units
from omnid.storage.sinks.pg_process import PostgresProcessSink
from omnid.storage.sinks.pg_writer import spec_from_wire, spec_to_wire
from omnid.storage.sinks.postgres import DAY_NS

from tests.storage.conftest import PG_DSN, T0, trades
from tests.storage.tcpproxy import TcpProxy

pytestmark = pytest.mark.postgres


async def _counts(prefix: str, table: str = "md.trades") -> tuple[int, int]:
    conn = await asyncpg.connect(PG_DSN)
    try:
        row = await conn.fetchrow(f"SELECT count(*), count(DISTINCT trade_id) FROM {prefix}{table}")
    finally:
        await conn.close()
    return int(row[0]), int(row[1])


def test_spec_survives_the_wire() -> None:
    """A table's description reaches the writer with its columns, key and partitioning intact."""
    spec = Catalog().table("md.trades")
    back = spec_from_wire(msgspec.msgpack.decode(msgspec.msgpack.encode(spec_to_wire(spec))))
    assert (back.full_name, back.columns, back.key, back.partition_ts, back.ts_column) == (
        spec.full_name, spec.columns, spec.key, spec.partition_ts, spec.ts_column)


async def test_parts_span_days_and_replays_store_nothing_new(pg_prefix: str) -> None:
    """A batch of several parts across three days is stored once; replayed, and re-sent fresh
    with the same unit ids, it stores nothing new (the ledger has every unit)."""
    cat = Catalog()
    sink = PostgresProcessSink(PG_DSN, schema_prefix=pg_prefix, part_rows=1000, frame_rows=300)
    await sink.start(cat.tables())
    spec = cat.table("md.trades")
    batch = trades(4500, start=T0, step=DAY_NS // 1500)
    rows = [spec.row(t) for t in batch]
    units = make_units("r:0", len(batch), 500)
    try:
        await sink.write(Batch(spec, batch, units=units))
        assert sink.copies >= 4 and sink.upserts == 0  # 4500 rows in parts of ~1000
        copies = sink.copies
        await sink.write(Batch(spec, rows, built=True, replay=True, units=units))
        await sink.write(Batch(spec, batch, units=units))
        days = await sink.fetch(f'SELECT DISTINCT ts_event / {DAY_NS} FROM "{pg_prefix}md".trades')
    finally:
        await sink.close()
    assert sink.copies == copies and sink.units_skipped == 2 * len(units)  # both rewrites skipped
    assert len(days) == 4  # three days of data starting mid-morning
    assert await _counts(pg_prefix) == (4500, 4500)


async def test_table_registered_after_start_and_bad_rows(pg_prefix: str) -> None:
    """A table the writer never saw at start is created on its first write; a row the store
    refuses is a StorageError naming the table, and the writer keeps working."""

    class Tick(msgspec.Struct):
        name: str
        ts: int
        value: float

    cat = Catalog()
    spec: TableSpec = register_table(Tick, "md", "ticks_x", [("name", "text"), ("ts", "int"), ("value", "real")],
                                     key=("name", "ts"), row=lambda x: (x.name, x.ts, x.value), catalog=cat)
    sink = PostgresProcessSink(PG_DSN, schema_prefix=pg_prefix)
    await sink.start([cat.table("md.trades")])
    try:
        await sink.write(Batch(spec, [Tick("a", i, 1.5) for i in range(10)]))
        with pytest.raises(StorageError) as err:
            await sink.write(Batch(spec, [("b", 1, "not a number")], built=True))
        assert err.value.context["table"] == "md.ticks_x"
        await sink.write(Batch(spec, [Tick("b", i, 2.5) for i in range(5)]))
        got = await sink.fetch(f'SELECT count(*) FROM "{pg_prefix}md".ticks_x')
    finally:
        await sink.close()
    assert got[0][0] == 15


async def test_writer_killed_mid_run_loses_and_duplicates_nothing(pg_prefix: str, tmp_path: Path) -> None:
    """The writer process is SIGKILLed while batches are in flight: the write fails as transient,
    the batch is spooled, a fresh writer replays it, and every row is stored exactly once."""
    cat = Catalog()
    rec = BatchRecorder(cat, flush_rows=3000)
    sink = PostgresProcessSink(PG_DSN, schema_prefix=pg_prefix, part_rows=2000)
    fl = Flusher(rec, {"postgres": sink}, default_sink="postgres", spool_dir=tmp_path, catalog=cat,
                 flush_ms=10, retry_s=0.05)
    await fl.start()
    all_trades = trades(40_000)
    killed = False
    for i in range(0, 40_000, 1000):
        for t in all_trades[i : i + 1000]:
            rec.record(t)
        await asyncio.sleep(0.003)
        if i >= 15_000 and not killed and sink._proc is not None:
            os.kill(sink._proc.pid, signal.SIGKILL)
            killed = True
    await fl.flush(timeout_s=60)
    worker = fl.workers["postgres"]
    assert killed and sink.restarts >= 2
    assert not worker.spooling and worker.spool.size() == 0
    await fl.stop()
    assert await _counts(pg_prefix) == (40_000, 40_000)


async def test_outage_through_the_writer_loses_and_duplicates_nothing(pg_prefix: str, tmp_path: Path) -> None:
    """PostgreSQL becomes unreachable mid-run (every connection cut, some mid-COPY) and comes back:
    the writer reports it down, the flusher spools and replays, every row is there exactly once."""
    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.start()
    cat = Catalog()
    rec = BatchRecorder(cat, flush_rows=2000)
    sink = PostgresProcessSink(f"postgresql://postgres@127.0.0.1:{proxy.port}/test", schema_prefix=pg_prefix,
                               timeout_s=2.0, part_rows=1000)
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
    await proxy.cut()
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
    assert worker.spool.rows_spooled >= 10_000 and sink.replays > 0
    await fl.stop()
    await proxy.close()
    assert await _counts(pg_prefix) == (60_000, 60_000)


async def test_cancelled_write_kills_the_writer_and_the_next_write_works(pg_prefix: str) -> None:
    """A write cancelled mid-flight (a stop) leaves no half-read reply behind: the writer is
    replaced, and rewriting the batch (as the spool replay does) stores each row once."""
    cat = Catalog()
    spec = cat.table("md.trades")
    sink = PostgresProcessSink(PG_DSN, schema_prefix=pg_prefix, part_rows=5000)
    await sink.start(cat.tables())
    batch = trades(50_000)
    units = make_units("c:0", len(batch))
    try:
        task = asyncio.create_task(sink.write(Batch(spec, batch, units=units)))
        await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert sink._proc is None
        await sink.write(Batch(spec, [spec.row(t) for t in batch], built=True, replay=True, units=units))
    finally:
        await sink.close()
    assert await _counts(pg_prefix) == (50_000, 50_000)


async def test_unreachable_server_is_transient() -> None:
    """Nothing listening: start raises TransientError (the flusher spools), not a crash."""
    sink = PostgresProcessSink("postgresql://postgres@127.0.0.1:9/test", timeout_s=1.0)
    try:
        with pytest.raises(TransientError):
            await sink.start(Catalog().tables())
        with pytest.raises(TransientError):
            await sink.ping()
    finally:
        await sink.close()

