"""The recorder → flusher → SQLite path, end to end on a real file."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import msgspec
from omnid.model import Order, OrderStatus, Side
from omnid.storage.catalog import Catalog, register_table
from omnid.storage.flusher import Flusher
from omnid.storage.recorder import BatchRecorder
from omnid.storage.sinks.sqlite import SqliteSink

from tests.storage.conftest import T0, sample_records, trades


class Alert(msgspec.Struct):
    channel: str
    text: str
    ts_event: int


class Denial(msgspec.Struct):
    rule: str
    strategy_id: str
    ts_event: int


def _count(db: Path, table: str) -> int:
    with sqlite3.connect(db) as c:
        return int(c.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])


async def _setup(tmp_path: Path, catalog: Catalog, **kw: int) -> tuple[BatchRecorder, Flusher, Path]:
    db = tmp_path / "omnid.sqlite"
    rec = BatchRecorder(catalog, flush_rows=kw.pop("flush_rows", 1000))
    fl = Flusher(rec, {"sqlite": SqliteSink(db)}, spool_dir=tmp_path / "spool", catalog=catalog,
                 flush_ms=kw.pop("flush_ms", 20))
    await fl.start()
    return rec, fl, db


async def test_every_kind_lands_in_its_table(tmp_path: Path) -> None:
    """Trades, intents, orders, fills and bars each reach their prefixed table; WAL mode is on."""
    cat = Catalog()
    rec, fl, db = await _setup(tmp_path, cat)
    for t in trades(2500):
        rec.record(t)
    for r in sample_records():
        rec.record(r)  # type: ignore[arg-type]
    await fl.flush()
    await fl.stop()
    assert _count(db, "md_trades") == 2500
    assert _count(db, "strategy_intents") == 1
    assert _count(db, "exec_orders") == 1
    assert _count(db, "exec_fills") == 1
    assert _count(db, "md_bars") == 1
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        row = c.execute("SELECT numbers, reason FROM strategy_intents").fetchone()
    assert msgspec.json.decode(row[0]) == {"ema": 101.5} and row[1] == "cross"


async def test_flushes_on_time_without_reaching_row_count(tmp_path: Path) -> None:
    """A handful of rows is written within a few flush intervals, not held for flush_rows."""
    rec, fl, db = await _setup(tmp_path, Catalog(), flush_rows=100_000, flush_ms=20)
    for t in trades(3):
        rec.record(t)
    for _ in range(100):
        await asyncio.sleep(0.01)
        if fl.workers["sqlite"].rows_written == 3:
            break
    assert fl.workers["sqlite"].rows_written == 3
    await fl.stop()
    assert _count(db, "md_trades") == 3


async def test_order_state_changes_are_snapshots(tmp_path: Path) -> None:
    """Recording the same Order object after each transition keeps every state as its own row."""
    rec, fl, db = await _setup(tmp_path, Catalog())
    o = Order(client_order_id="c-1", instrument_id="X.SIM", strategy_id="s", side=Side.BUY, qty=2.0,
              ts_created=T0, ts_last=T0)
    rec.record(o)
    o.transition(OrderStatus.SUBMITTED, T0 + 1)
    rec.record(o)
    o.transition(OrderStatus.ACCEPTED, T0 + 2)
    rec.record(o)
    o.apply_fill(2.0, 10.0, T0 + 3)
    rec.record(o)
    await fl.stop()
    with sqlite3.connect(db) as c:
        got = c.execute("SELECT status, filled_qty FROM exec_orders ORDER BY ts_last").fetchall()
    assert got == [("new", 0.0), ("submitted", 0.0), ("accepted", 0.0), ("filled", 2.0)]


async def test_rewriting_rows_is_idempotent(tmp_path: Path) -> None:
    """The same trades recorded twice (a replay) are stored once, by natural key."""
    rec, fl, db = await _setup(tmp_path, Catalog())
    batch = trades(500)
    for t in batch + batch:
        rec.record(t)
    await fl.stop()
    assert _count(db, "md_trades") == 500


async def test_registered_and_generic_types(tmp_path: Path) -> None:
    """A registered type gets its own table; an unknown one goes to the JSON records table."""
    cat = Catalog()
    register_table(Denial, "strategy", "risk_denials",
                   [("strategy_id", "text"), ("ts_event", "int"), ("rule", "text")],
                   ("strategy_id", "ts_event", "rule"),
                   lambda d: (d.strategy_id, d.ts_event, d.rule), ts_column="ts_event", catalog=cat)
    rec, fl, db = await _setup(tmp_path, cat)
    rec.record(Denial("max_pos", "s1", T0))
    rec.record(Alert("telegram", "halted", T0))
    rec.record(Alert("telegram", "halted", T0))  # identical: one row
    rec.record(Alert("telegram", "resumed", T0))
    await fl.stop()
    assert _count(db, "strategy_risk_denials") == 1
    with sqlite3.connect(db) as c:
        got = c.execute("SELECT type, ts, payload FROM strategy_records ORDER BY payload").fetchall()
    assert [(t, ts, msgspec.json.decode(p)["text"]) for t, ts, p in got] == [
        ("Alert", T0, "halted"), ("Alert", T0, "resumed")]


async def test_recorder_bounds_memory() -> None:
    """Past the hard limit records are counted as dropped, never buffered."""
    rec = BatchRecorder(Catalog(), flush_rows=10, hard_limit=100)
    for t in trades(150):
        rec.record(t)
    assert rec.pending == 100 and rec.dropped == 50
    taken = rec.take()
    assert sum(len(items) for _, items in taken) == 100 and rec.pending == 0


async def test_take_hands_over_lists_and_keeps_snapshots() -> None:
    """take() hands over the buffers themselves; later records go to fresh lists, and a mutable
    record is still copied on the way in, so a later change cannot rewrite an earlier row."""
    rec = BatchRecorder(Catalog())
    order = Order(client_order_id="c1", instrument_id="X.SIM", strategy_id="s", side=Side.BUY, qty=1.0,
                  ts_created=T0, ts_last=T0)
    ts = trades(3)
    rec.record(ts[0])
    rec.record(order)
    first = dict((spec.full_name, items) for spec, items in rec.take())
    order.status = OrderStatus.ACCEPTED
    rec.record(order)
    rec.record(ts[1])
    rec.record(ts[2])
    second = dict((spec.full_name, items) for spec, items in rec.take())
    assert first["md.trades"] == [ts[0]] and second["md.trades"] == ts[1:]
    assert first["md.trades"] is not second["md.trades"]
    assert [o.status for o in first["exec.orders"] + second["exec.orders"]] == [
        OrderStatus.NEW, OrderStatus.ACCEPTED]
    assert rec.take() == [] and rec.recorded == 5


class Weird(msgspec.Struct):
    x: object
    ts_event: int = 0


async def test_unencodable_item_spares_its_batch(tmp_path: Path) -> None:
    """A struct that cannot become a row is left out; the rest of its batch is still stored."""
    rec, fl, db = await _setup(tmp_path, Catalog())
    rec.record(Weird(1, T0))
    rec.record(Weird(object(), T0))  # recording never raises; encoding fails later, in the flusher
    rec.record(Weird(2, T0))
    await fl.stop()
    assert _count(db, "strategy_records") == 2


async def test_writer_process_killed_mid_run_loses_nothing(tmp_path: Path) -> None:
    """SIGKILL the SQLite writer process while batches flow: they spool, a new writer starts,
    and every row is stored exactly once."""
    cat = Catalog()
    db = tmp_path / "omnid.sqlite"
    sink = SqliteSink(db)
    rec = BatchRecorder(cat, flush_rows=1000)
    fl = Flusher(rec, {"sqlite": sink}, spool_dir=tmp_path / "spool", catalog=cat, flush_ms=5, retry_s=0.02)
    await fl.start()
    everything = trades(20_000)
    for i in range(0, 20_000, 1000):
        for t in everything[i : i + 1000]:
            rec.record(t)
        await asyncio.sleep(0.002)
        if i == 8000 and sink._proc is not None:
            sink._proc.kill()
    await fl.flush(timeout_s=30)
    spooled = fl.workers["sqlite"].spool.rows_spooled
    await fl.stop()
    assert spooled > 0  # the kill was noticed and its batches went through the spool
    assert _count(db, "md_trades") == 20_000


async def test_merged_batches_keep_every_unit_id(tmp_path: Path) -> None:
    """Queued tick batches merged into one write keep every constituent unit's id, with its end
    offset moved into the merged batch; batches without units are never merged with them."""
    from omnid.storage.flusher import SinkWorker
    from omnid.storage.sinks.base import Batch, make_units
    from omnid.storage.sinks.sqlite import SqliteSink
    from omnid.storage.spool import Spool

    cat = Catalog()
    spec = cat.table("md.trades")
    w = SinkWorker(SqliteSink(tmp_path / "x.sqlite"), Spool(tmp_path / "s.spool"), cat,
                   slice_s=0.0005, max_queued_rows=10**6)
    a, b, c = trades(1500), trades(700, start=T0 + 10**9), trades(10, start=T0 + 2 * 10**9)
    w.put(Batch(spec, a, units=make_units("r:0", len(a))))
    w.put(Batch(spec, b, units=make_units("r:1", len(b))))
    w.put(Batch(spec, c))  # no units: written on its own
    merged = w._next_batch()
    assert list(merged.items) == a + b
    assert merged.units == [("r:0:0", 1000), ("r:0:1", 1500), ("r:1:0", 2200)]
    assert [(u, len(p)) for u, p in ((u, merged.items[s:e]) for u, s, e in merged.unit_slices())] == [
        ("r:0:0", 1000), ("r:0:1", 500), ("r:1:0", 700)]
    parts = merged.split(2)
    assert [p.units for p in parts] == [[("r:0:0", 1000), ("r:0:1", 1500)], [("r:1:0", 700)]]
    assert w._next_batch().units is None
    w.spool.close()
