"""The spool file, and the flusher's spill-and-replay paths with real sinks."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import asyncpg
import pytest
from omnid.errors import StorageError
from omnid.storage.catalog import Catalog
from omnid.storage.flusher import Flusher
from omnid.storage.recorder import BatchRecorder
from omnid.storage.sinks.postgres import PostgresSink
from omnid.storage.sinks.sqlite import SqliteSink
from omnid.storage.spool import FRAME_ROWS, Spool

from tests.storage.conftest import PG_DSN, trades
from tests.storage.tcpproxy import TcpProxy


def test_frames_come_back_in_order_and_torn_tail_is_dropped(tmp_path: Path) -> None:
    """Frames replay in append order; a half-written last frame is ignored; clear empties it."""
    sp = Spool(tmp_path / "s.spool")
    sp.append("md.trades", [("a", i) for i in range(FRAME_ROWS + 5)])
    sp.append("exec.fills", [("f", 1)])
    got = list(sp.frames())
    assert [(t, len(r)) for t, r in got] == [("md.trades", FRAME_ROWS), ("md.trades", 5), ("exec.fills", 1)]
    assert got[0][1][3] == ("a", 3)
    with (tmp_path / "s.spool").open("ab") as f:
        f.write(b"\x10\x00\x00\x00\x00")  # a torn header
    assert len(list(sp.frames())) == 3
    sp.clear()
    assert sp.size() == 0 and list(sp.frames()) == []
    sp.close()


def test_damage_in_the_middle_is_an_error(tmp_path: Path) -> None:
    """A CRC mismatch with frames after it raises StorageError naming the offset."""
    path = tmp_path / "s.spool"
    sp = Spool(path)
    sp.append("t", [("x",)])
    sp.append("t", [("y",)])
    sp.close()
    data = bytearray(path.read_bytes())
    data[9] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(StorageError) as err:
        list(Spool(path).frames())
    assert err.value.context["offset"] == 0


async def test_too_far_behind_spills_then_drains(tmp_path: Path) -> None:
    """When more rows are queued than max_buffer_rows, batches spill to the spool and are
    replayed; every row lands once."""
    cat = Catalog()
    rec = BatchRecorder(cat, flush_rows=100_000)
    db = tmp_path / "x.sqlite"
    fl = Flusher(rec, {"sqlite": SqliteSink(db)}, spool_dir=tmp_path / "spool", catalog=cat,
                 flush_ms=1, max_buffer_rows=2000, retry_s=0.01)
    await fl.start()
    worker = fl.workers["sqlite"]
    all_trades = trades(20_000)
    for i in range(0, 20_000, 2500):
        for t in all_trades[i : i + 2500]:
            rec.record(t)
        fl.dispatch()  # hand over faster than SQLite writes
    await fl.flush(timeout_s=60)
    await fl.stop()
    assert worker.spool.rows_spooled > 0
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT count(*), count(DISTINCT trade_id) FROM md_trades").fetchone() == (20_000, 20_000)


@pytest.mark.postgres
async def test_spool_left_by_a_stopped_process_replays_on_next_start(tmp_path: Path, pg_prefix: str) -> None:
    """Rows spooled when the daemon stopped with PostgreSQL down are written by the next run."""
    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.start()
    dsn = f"postgresql://postgres@127.0.0.1:{proxy.port}/test"
    cat = Catalog()

    def flusher() -> tuple[BatchRecorder, Flusher]:
        rec = BatchRecorder(cat, flush_rows=1000)
        sink = PostgresSink(dsn, schema_prefix=pg_prefix, catalog=cat, timeout_s=2.0)
        return rec, Flusher(rec, {"postgres": sink}, default_sink="postgres", spool_dir=tmp_path,
                            catalog=cat, flush_ms=10, retry_s=0.05)

    rec, fl = flusher()
    await fl.start()
    first = trades(3000)
    for t in first[:1000]:
        rec.record(t)
    await fl.flush()
    await proxy.cut()
    for t in first[1000:]:
        rec.record(t)
    await asyncio.sleep(0.1)
    await fl.stop(timeout_s=0.5)
    assert (tmp_path / "postgres.spool").stat().st_size > 0
    await proxy.restore()
    rec, fl = flusher()
    await fl.start()
    await fl.flush(timeout_s=30)
    await fl.stop()
    await proxy.close()
    conn = await asyncpg.connect(PG_DSN)
    try:
        n = await conn.fetchval(f'SELECT count(DISTINCT trade_id) FROM "{pg_prefix}md".trades')
        total = await conn.fetchval(f'SELECT count(*) FROM "{pg_prefix}md".trades')
    finally:
        await conn.close()
    assert (total, n) == (3000, 3000)
    assert (tmp_path / "postgres.spool").stat().st_size == 0


async def test_spooled_frames_of_an_unknown_table_are_dropped_not_retried_forever(tmp_path: Path) -> None:
    """A spool frame naming a table this run does not know is logged and counted, and the rest of
    the spool is still replayed."""
    spool_dir = tmp_path / "spool"
    sp = Spool(spool_dir / "sqlite.spool")
    sp.append("strategy.gone", [("x", 1)])
    sp.append("md.trades", [("BTCUSDT.SIM", 1.0, 2.0, "buy", 10, 11, "t1")])
    sp.close()
    cat = Catalog()
    rec = BatchRecorder(cat)
    db = tmp_path / "x.sqlite"
    fl = Flusher(rec, {"sqlite": SqliteSink(db)}, spool_dir=spool_dir, catalog=cat, flush_ms=5, retry_s=0.01)
    await fl.start()
    await fl.flush(timeout_s=10)
    w = fl.workers["sqlite"]
    assert (w.rows_failed, w.rows_written, w.spooling) == (1, 1, False)
    await fl.stop()
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT trade_id FROM md_trades").fetchall() == [("t1",)]


def test_unit_frames_keep_their_ids_and_old_frames_still_read(tmp_path: Path) -> None:
    """A batch unit is one frame carrying its id, however many rows; frames written before ids
    existed (``[table, rows]``) read back with an empty id."""
    import msgspec
    from omnid.storage.framing import frame

    path = tmp_path / "u.spool"
    with path.open("wb") as f:  # the old two-field form
        f.write(frame(msgspec.msgpack.encode(("md.trades", [("old", 1)]))))
    sp = Spool(path)
    sp.append("md.trades", [("a", i) for i in range(FRAME_ROWS + 5)], "run:3:0")
    sp.append("exec.fills", [("f", 1)])
    got = [(t, len(rows), u) for t, rows, u in sp.entries()]
    sp.close()
    assert got == [("md.trades", 1, ""), ("md.trades", FRAME_ROWS + 5, "run:3:0"), ("exec.fills", 1, "")]


@pytest.mark.postgres
async def test_replayed_units_already_stored_are_skipped(tmp_path: Path, pg_prefix: str) -> None:
    """A spool holding units of which some were committed before the crash that spooled them (the
    write was cut off after its commit) replays to exactly one copy of every row."""
    from omnid.storage.sinks.base import Batch, make_units

    cat = Catalog()
    spec = cat.table("md.trades")
    batch = trades(3000)
    units = make_units("crashed:0", len(batch))
    sink = PostgresSink(PG_DSN, schema_prefix=pg_prefix, catalog=cat)
    await sink.start(cat.tables())
    await sink.write(Batch(spec, batch, units=units).only({units[0][0], units[2][0]}))
    await sink.close()
    sp = Spool(tmp_path / "postgres.spool")
    for uid, a, b in Batch(spec, batch, units=units).unit_slices():
        sp.append(spec.full_name, [spec.row(t) for t in batch[a:b]], uid)
    sp.close()
    sink = PostgresSink(PG_DSN, schema_prefix=pg_prefix, catalog=cat)
    fl = Flusher(BatchRecorder(cat), {"postgres": sink}, default_sink="postgres", spool_dir=tmp_path,
                 catalog=cat, flush_ms=10, retry_s=0.05)
    await fl.start()
    await fl.flush(timeout_s=30)
    await fl.stop()
    conn = await asyncpg.connect(PG_DSN)
    try:
        total, n = await conn.fetchrow(
            f'SELECT count(*), count(DISTINCT trade_id) FROM "{pg_prefix}md".trades')
    finally:
        await conn.close()
    assert (total, n) == (3000, 3000)
    assert sink.units_skipped == 2 and sink.replays == 3


@pytest.mark.postgres
async def test_tick_frames_spooled_before_unit_ids_replay_once(tmp_path: Path, pg_prefix: str) -> None:
    """A spool left by a version without unit ids: its tick frames get an id from their content,
    so the same frame replayed twice (a crash mid-drain) stores its rows once."""
    import msgspec
    from omnid.storage.framing import frame

    cat = Catalog()
    spec = cat.table("md.trades")
    rows = [spec.row(t) for t in trades(500)]
    old = frame(msgspec.msgpack.encode(("md.trades", rows)))
    (tmp_path / "postgres.spool").write_bytes(old + old)
    sink = PostgresSink(PG_DSN, schema_prefix=pg_prefix, catalog=cat)
    fl = Flusher(BatchRecorder(cat), {"postgres": sink}, default_sink="postgres", spool_dir=tmp_path,
                 catalog=cat, flush_ms=10, retry_s=0.05)
    await fl.start()
    await fl.flush(timeout_s=30)
    await fl.stop()
    conn = await asyncpg.connect(PG_DSN)
    try:
        total = await conn.fetchval(f'SELECT count(*) FROM "{pg_prefix}md".trades')
    finally:
        await conn.close()
    assert total == 500 and sink.units_skipped == 1
