"""The PostgreSQL sink that writes through a separate process, against the real server."""

from __future__ import annotations

import asyncio
import os
import signal
from itertools import zip_longest
from pathlib import Path

import asyncpg
import msgspec
import pytest
from omnid.config import load_config
from omnid.daemon import Daemon
from omnid.errors import TransientError
from omnid.ops.engine_core import EngineCore
from omnid.storage.catalog import Catalog, Row, TableSpec, register_table
from omnid.storage.flusher import Flusher
from omnid.storage.recorder import BatchRecorder
from omnid.storage.sinks.base import Batch, make_units
from omnid.storage.sinks.pg_process import PostgresProcessSink
from omnid.storage.sinks.pg_writer import spec_from_wire, spec_to_wire
from omnid.storage.sinks.postgres import DAY_NS

from tests.storage.conftest import PG_DSN, T0, trades
from tests.storage.tcpproxy import TcpProxy
from tests.storage.test_pgcopy import BAD, GOOD, assert_good, stored
from tests.storage.test_pgcopy import _spec as enc_spec

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
    refuses is left out (counted) and the others of its batch stored, and the writer keeps working."""

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
        await sink.write(Batch(spec, [("b", 1, "not a number"), ("b", 2, 2.0)], built=True))
        assert sink.rejected == sink.rejected_writer == 1
        await sink.write(Batch(spec, [Tick("b", i, 2.5) for i in range(3, 8)]))
        got = await sink.fetch(f'SELECT count(*) FROM "{pg_prefix}md".ticks_x')
    finally:
        await sink.close()
    assert got[0][0] == 16


async def test_bad_rows_are_left_out_and_the_rest_stored_as_on_the_loop(
        pg_prefix: str, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    """The loop writer's encoder test, through the writer process: every row that cannot be stored
    (int64 overflow, NULL key, NUL in text, wrong type or arity, a lone surrogate) is logged and left
    out, here (what msgpack cannot carry) or in the writer (what PostgreSQL cannot hold); every other
    row comes back as written, fresh and as a replay through the staging path alike."""
    spec = enc_spec()
    sink = PostgresProcessSink(PG_DSN, schema_prefix=pg_prefix, frame_rows=3)
    await sink.start([spec])
    mixed = [r for pair in zip_longest(GOOD, BAD) for r in pair if r is not None]
    try:
        await sink.write(Batch(spec, mixed, built=True))
        first = await stored(sink, pg_prefix)
        await sink.write(Batch(spec, mixed, built=True, replay=True))
        again = await stored(sink, pg_prefix)
        n = await sink.fetch(f'SELECT count(*) FROM "{pg_prefix}strategy".enc_probe')
    finally:
        await sink.close()
    assert sink.rejected == 2 * len(BAD) and sink.rejected_here == 2 * 2  # below int64, surrogate
    assert set(first) == set(again) == {r[0] for r in GOOD} and n[0][0] == len(GOOD)
    assert_good(first)
    assert_good(again)
    logged = sum("cannot store a row in strategy.enc_probe" in m for m in caplog.messages)
    logged += capfd.readouterr().err.count("cannot store a row in strategy.enc_probe")
    assert logged == 2 * len(BAD)


@pytest.mark.parametrize("built", [False, True])  # fresh items, and a spool replay's rows
async def test_bad_rows_shorten_their_units_and_each_unit_is_stored_once(pg_prefix: str, built: bool) -> None:
    """Bad rows inside units, units ending mid-frame and frames ending mid-unit, some rows left out
    here and some in the writer: units whose ids the ledger has already are skipped and the others
    stored whole, minus their bad rows, so the unit offsets line up with the rows actually sent."""
    cat = Catalog()
    spec = cat.table("md.trades")
    items = trades(5000)
    for i in range(0, 5000, 97):  # left out here: msgpack cannot carry it
        items[i] = msgspec.structs.replace(items[i], trade_id="bad\ud800")
    for i in range(50, 5000, 89):  # left out by the writer's encoder: a text size
        items[i] = msgspec.structs.replace(items[i], size="x")
    rows: list[Row] = [spec.row(t) for t in items]
    units = make_units("u:0", len(rows), 90)
    done = {uid for k, (uid, _) in enumerate(units) if k % 3 == 1}
    conn = await asyncpg.connect(PG_DSN)
    sink = PostgresProcessSink(PG_DSN, schema_prefix=pg_prefix, frame_rows=200, part_rows=1000)
    await sink.start(cat.tables())
    try:
        await conn.execute(f'INSERT INTO "{pg_prefix}md".written_batches (batch_id) SELECT unnest($1::text[])',
                           sorted(done))
        batch = Batch(spec, rows, built=True, replay=True, units=units) if built else Batch(spec, items, units=units)
        await sink.write(batch)
        got = {r[0] for r in await conn.fetch(f'SELECT trade_id FROM "{pg_prefix}md".trades')}
    finally:
        await sink.close()
        await conn.close()
    expected = set()
    for uid, a, b in Batch(spec, rows, units=units).unit_slices():
        if uid not in done:
            expected |= {r[6] for r in rows[a:b] if r[2] != "x" and not r[6].startswith("bad")}
    assert got == expected and sink.units_skipped == len(done)
    assert sink.rejected_here == len(range(0, 5000, 97))


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


async def copy_running(admin: asyncpg.Connection, prefix: str) -> bool:
    """Whether a COPY into the prefix's tick table is streaming now."""
    return bool(await admin.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'COPY%' "
        "AND query LIKE $1", f'%"{prefix}md"%'))


async def test_cut_mid_copy_in_the_writer_spools_the_batch_and_replays_it_once(
        pg_prefix: str, tmp_path: Path) -> None:
    """The server goes away while the writer's COPY streams (not a row's fault): the write fails
    as transient, the whole batch (parts committed before the cut included) goes to the spool, and
    once the server is back the replay stores every row exactly once."""
    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.start()
    admin = await asyncpg.connect(PG_DSN)
    cat = Catalog()
    rec = BatchRecorder(cat, flush_rows=200_000)
    sink = PostgresProcessSink(f"postgresql://postgres@127.0.0.1:{proxy.port}/test", schema_prefix=pg_prefix,
                               timeout_s=5.0, part_rows=10_000)
    fl = Flusher(rec, {"postgres": sink}, default_sink="postgres", spool_dir=tmp_path, catalog=cat,
                 flush_ms=10, retry_s=0.05)
    worker = fl.workers["postgres"]
    await fl.start()
    try:
        for t in trades(200_000):
            rec.record(t)
        for _ in range(5000):
            if await copy_running(admin, pg_prefix):
                break
            await asyncio.sleep(0.002)
        else:
            raise AssertionError("no COPY seen streaming")
        await proxy.cut()
        for _ in range(1000):
            if worker.spool.rows_spooled >= 200_000:
                break
            await asyncio.sleep(0.01)
        assert worker.spooling and worker.spool.rows_spooled == 200_000  # the whole batch
        assert worker.rows_written == 0 and worker.rows_failed == 0 and sink._proc is not None
        await proxy.restore()
        await fl.flush(timeout_s=60)
        assert not worker.spooling and worker.spool.size() == 0 and sink.replays > 0
        assert worker.rows_written == 200_000 and worker.rows_failed == 0
    finally:
        await fl.stop()
        await proxy.close()
        await admin.close()
    assert await _counts(pg_prefix) == (200_000, 200_000)


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



async def test_status_shows_the_ledger_retention_with_the_writer_process(tmp_path: Path, pg_prefix: str) -> None:
    """With writer = "process", `omnid status` carries the same ledger counters as with the loop
    writer, and the daemon's flusher has pruning running (it watches the spool)."""
    root = Path(__file__).resolve().parents[2]
    env = {
        "OMNID__OMNID__DATA_DIR": str(tmp_path / "var"),
        "OMNID__STORAGE__DEFAULT_SINK": "postgres",
        "OMNID__STORAGE__POSTGRES__DSN": PG_DSN,
        "OMNID__STORAGE__POSTGRES__SCHEMA_PREFIX": pg_prefix,
        "OMNID__STORAGE__POSTGRES__WRITER": "process",
        "OMNID__STORAGE__POSTGRES__LEDGER_KEEP_HOURS": "36",
    }
    cfg = load_config(root / "omnid.toml.example", env=env)
    core = EngineCore(Daemon(cfg, root / "omnid.toml.example"))
    await core.start()
    try:
        assert isinstance(core.flusher.workers["postgres"].sink, PostgresProcessSink)
        ledger = core.storage_status()["ledger"]["postgres"]
        assert ledger["keep_hours"] == 36.0 and ledger["pruning"] is True
        assert ledger["failures"] == 0 and ledger["last_error"] == ""
    finally:
        await core.flush()
