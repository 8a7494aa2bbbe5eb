"""Retention of the PostgreSQL batch ledger (md.written_batches) against the real server: old
flusher ids are pruned in chunks, recent ones and file imports' ids stay, replays within the
retention stay exactly once, nothing is pruned while the spool holds batches, and a failed prune is
recorded while writes go on. For both writers: the loop's and the writer process's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest
from omnid.config import load_config
from omnid.errors import ConfigError
from omnid.storage.catalog import Catalog
from omnid.storage.flusher import Flusher, SinkWorker
from omnid.storage.recorder import BatchRecorder
from omnid.storage.sinks.base import Batch, make_units
from omnid.storage.sinks.pg_process import PostgresProcessSink
from omnid.storage.sinks.postgres import PostgresSink
from omnid.storage.spool import Spool

from tests.storage.conftest import PG_DSN, trades

pytestmark = pytest.mark.postgres

PgSink = PostgresSink | PostgresProcessSink
#: `writer` in [storage.postgres]: every test that takes `writer` runs against both sinks.
WRITERS = ["loop", "process"]


@pytest.fixture(params=WRITERS)
def writer(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def new_sink(writer: str, prefix: str, cat: Catalog, **kw: float) -> PgSink:
    if writer == "loop":
        return PostgresSink(PG_DSN, schema_prefix=prefix, catalog=cat, **kw)  # type: ignore[arg-type]
    return PostgresProcessSink(PG_DSN, schema_prefix=prefix, **kw)  # type: ignore[arg-type]


@pytest.fixture
async def admin() -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(PG_DSN)
    yield conn
    await conn.close()


def ledger(prefix: str) -> str:
    return f'"{prefix}md".written_batches'


async def add_ids(conn: asyncpg.Connection, prefix: str, ids: list[str], age_h: float) -> None:
    """Ledger rows as if written ``age_h`` hours ago."""
    await conn.execute(
        f"INSERT INTO {ledger(prefix)} (batch_id, written_at) "
        "SELECT unnest($1::text[]), now() - make_interval(secs => $2)", ids, age_h * 3600.0)


async def ids_in(conn: asyncpg.Connection, prefix: str) -> set[str]:
    return {r[0] for r in await conn.fetch(f"SELECT batch_id FROM {ledger(prefix)}")}


def run_id(tmp_path: Path) -> str:
    """A run id exactly as the flusher makes them (its unit ids are what gets pruned)."""
    return Flusher(BatchRecorder(Catalog()), {}, default_sink="none", spool_dir=tmp_path).run_id


async def started(prefix: str, cat: Catalog, writer: str = "loop", **kw: float) -> PgSink:
    sink = new_sink(writer, prefix, cat, **kw)
    await sink.start(cat.tables())
    return sink


async def until(cond: Callable[[], bool], timeout_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not cond():
        assert loop.time() < end, "condition not reached in time"
        await asyncio.sleep(0.01)


async def prune_waiting(admin: asyncpg.Connection, prefix: str) -> int:
    """The pid of the sink's prune connection once its DELETE waits on a lock."""
    for _ in range(1000):
        await admin.execute("SELECT pg_stat_clear_snapshot()")  # inside a transaction it is kept
        pid = await admin.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'omnid ledger prune' "
            "AND wait_event_type = 'Lock' AND query LIKE 'DELETE%' AND query LIKE $1", f"%{prefix}%")
        if pid:
            return int(pid)
        await asyncio.sleep(0.01)
    raise AssertionError("the prune never waited on the lock")


async def test_old_flusher_ids_are_pruned_in_chunks_and_the_rest_stays(
        tmp_path: Path, pg_prefix: str, admin: asyncpg.Connection, writer: str) -> None:
    cat = Catalog()
    sink = await started(pg_prefix, cat, writer, ledger_keep_s=24 * 3600, prune_chunk=3)
    try:
        rid = run_id(tmp_path)
        old = [u for u, _ in make_units(f"{rid}:0", 7000)] + ["spool:" + "ab" * 16, "spool:" + "cd" * 16]
        recent = [u for u, _ in make_units(f"{rid}:1", 3000)]
        imports = ["import:" + "ef" * 16 + ":0:0:0", "import:" + "ef" * 16 + ":0:0:1"]
        await add_ids(admin, pg_prefix, [*old, "other:1", *imports], age_h=24 * 10)
        await add_ids(admin, pg_prefix, recent, age_h=23)
        assert await sink.prune_ledger() is None  # no flusher watches the spool: never pruned
        assert await ids_in(admin, pg_prefix) == {*old, *recent, *imports, "other:1"}
        sink.watch_spool(lambda: False)
        assert await sink.prune_ledger() == 9
        assert await ids_in(admin, pg_prefix) == {*recent, *imports, "other:1"}
        st = sink.ledger_stats()
        assert st["pruned"] == 9 and st["chunks"] == 4  # three full chunks of 3, then an empty one
        assert st["passes"] == 1 and st["failures"] == 0 and st["last_prune"] > 0
        assert await sink.prune_ledger() == 0
    finally:
        await sink.close()


async def test_chunks_use_the_partial_index(pg_prefix: str, admin: asyncpg.Connection) -> None:
    """A chunk finds the oldest prunable ids through migration 0004's index, not a ledger scan."""
    cat = Catalog()
    sink = await started(pg_prefix, cat)
    await sink.close()
    led = ledger(pg_prefix)
    await admin.execute("SET enable_seqscan = off")  # a tiny table: make the planner show its option
    plan = "\n".join(r[0] for r in await admin.fetch(
        f"EXPLAIN SELECT ctid FROM {led} WHERE written_at < now() AND "
        "batch_id ~ '^([0-9a-f]{16}|spool):' ORDER BY written_at LIMIT 10"))
    assert "written_batches_prune" in plan, plan


async def test_replay_within_retention_is_still_stored_once(
        tmp_path: Path, pg_prefix: str, admin: asyncpg.Connection, writer: str) -> None:
    cat = Catalog()
    spec = cat.table("md.trades")
    sink = await started(pg_prefix, cat, writer, ledger_keep_s=3600)
    sink.watch_spool(lambda: False)
    try:
        rows = trades(2500)
        units = make_units(f"{run_id(tmp_path)}:0", len(rows))
        await sink.write(Batch(spec, rows, units=units))
        await add_ids(admin, pg_prefix, [f"{'0' * 16}:{k}:0" for k in range(5)], age_h=2)
        assert await sink.prune_ledger() == 5
        await sink.write(Batch(spec, [spec.row(t) for t in rows], built=True, replay=True, units=units))
        assert sink.units_skipped == len(units)
        assert await admin.fetchval(f'SELECT count(*) FROM "{pg_prefix}md".trades') == 2500
    finally:
        await sink.close()


async def test_nothing_is_pruned_while_the_spool_holds_batches(
        tmp_path: Path, pg_prefix: str, admin: asyncpg.Connection, writer: str) -> None:
    """The flusher's worker tells the sink its spool is waiting: a month-old id stays until the
    spool is empty again."""
    cat = Catalog()
    sink = new_sink(writer, pg_prefix, cat, ledger_keep_s=3600)
    spool = Spool(tmp_path / "postgres.spool")
    spool.append("md.trades", [("x",)], "u:1")
    worker = SinkWorker(sink, spool, cat, slice_s=0.001, max_queued_rows=10)  # binds watch_spool
    await sink.start(cat.tables())
    try:
        await add_ids(admin, pg_prefix, ["f" * 16 + ":0:0"], age_h=24 * 30)
        assert worker.spool_pending()
        assert await sink.prune_ledger() is None
        assert await ids_in(admin, pg_prefix) == {"f" * 16 + ":0:0"}
        assert sink.ledger_stats()["held_by_spool"] >= 1
        spool.clear()  # replayed ...
        assert worker.spool_pending()  # ... but not yet marked done
        assert await sink.prune_ledger() is None
        worker.spooling = False  # as the drain does after clearing the spool
        assert not worker.spool_pending()
        assert await sink.prune_ledger() == 1
    finally:
        await sink.close()
        spool.close()


async def test_a_month_old_spool_replays_once_then_the_ledger_is_pruned(
        tmp_path: Path, pg_prefix: str, admin: asyncpg.Connection, writer: str) -> None:
    """A spool left by a run a month ago holds units whose write had committed before the crash
    (their ledger rows are a month old): the daemon starts with pruning scheduled at once, yet
    every row is stored once; the old ids go only after the spool has been replayed."""
    cat = Catalog()
    spec = cat.table("md.trades")
    rows = trades(3000)
    units = make_units(f"{'a' * 16}:0", len(rows))
    sink = await started(pg_prefix, cat)
    await sink.write(Batch(spec, rows, units=units))  # committed ...
    await sink.close()
    await admin.execute(f"UPDATE {ledger(pg_prefix)} SET written_at = now() - interval '30 days'")
    sp = Spool(tmp_path / "postgres.spool")  # ... and spooled all the same (cut off after commit)
    for uid, a, b in Batch(spec, rows, units=units).unit_slices():
        sp.append(spec.full_name, [spec.row(t) for t in rows[a:b]], uid)
    sp.close()
    sink = new_sink(writer, pg_prefix, cat, ledger_keep_s=3600, prune_every_s=0.02)
    fl = Flusher(BatchRecorder(cat), {"postgres": sink}, default_sink="postgres", spool_dir=tmp_path,
                 catalog=cat, flush_ms=10, retry_s=0.05)
    await fl.start()
    try:
        await fl.flush(timeout_s=30)
        await until(lambda: sink.pruner.pruned >= len(units))
        assert sink.units_skipped == len(units)
        assert await admin.fetchval(f'SELECT count(*) FROM "{pg_prefix}md".trades') == 3000
        assert await ids_in(admin, pg_prefix) == set()
        assert fl.stats()["sinks"]["postgres"]["ledger"]["pruned"] == len(units)
    finally:
        await fl.stop()


async def test_failed_prunes_are_recorded_and_writes_go_on(
        tmp_path: Path, pg_prefix: str, admin: asyncpg.Connection, writer: str) -> None:
    """The prune connection killed, a statement timing out behind a lock, the ledger dropped:
    each is counted with its error, never reaches a write, and the next pass succeeds."""
    cat = Catalog()
    spec = cat.table("md.trades")
    sink = await started(pg_prefix, cat, writer, ledger_keep_s=3600)
    sink.watch_spool(lambda: False)
    rid = run_id(tmp_path)
    try:
        assert await sink.prune_ledger() == 0
        assert sink.pruner._conn is not None  # an idle prune connection killed is made again
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", sink.pruner._conn.get_server_pid())
        await add_ids(admin, pg_prefix, ["a" * 16 + ":0:0"], age_h=2)
        await until(lambda: sink.pruner._conn is None or sink.pruner._conn.is_closed())
        assert await sink.prune_ledger() == 1 and sink.ledger_stats()["failures"] == 0

        await add_ids(admin, pg_prefix, ["b" * 16 + ":0:0"], age_h=2)
        async with admin.transaction():  # killed in the middle of a chunk
            await admin.execute(f"LOCK TABLE {ledger(pg_prefix)} IN ACCESS EXCLUSIVE MODE")
            task = asyncio.create_task(sink.prune_ledger())
            pid = await prune_waiting(admin, pg_prefix)
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
            assert await task == 0
        st = sink.ledger_stats()
        assert st["failures"] == 1 and st["last_error"], st
        await sink.write(Batch(spec, trades(10), units=make_units(f"{rid}:0", 10)))
        assert await sink.prune_ledger() == 1  # a fresh connection
        assert sink.ledger_stats()["last_error"] == ""

        sink.pruner.timeout_s = 0.3  # a chunk stuck behind a lock times out
        await add_ids(admin, pg_prefix, ["c" * 16 + ":0:0"], age_h=2)
        async with admin.transaction():
            await admin.execute(f"LOCK TABLE {ledger(pg_prefix)} IN ACCESS EXCLUSIVE MODE")
            assert await sink.prune_ledger() == 0
        assert sink.ledger_stats()["failures"] == 2
        assert sink.ledger_stats()["last_error"] == "TimeoutError: no answer within 0.3 s"
        sink.pruner.timeout_s = 10.0

        await admin.execute(f"DROP TABLE {ledger(pg_prefix)}")
        assert await sink.prune_ledger() == 0
        st = sink.ledger_stats()
        assert st["failures"] == 3 and "written_batches" in st["last_error"], st
        await sink.write(Batch(spec, trades(10), units=make_units(f"{rid}:1", 10)))
        assert await admin.fetchval(f'SELECT count(*) FROM "{pg_prefix}md".trades') == 20
        assert await sink.prune_ledger() == 0 and sink.ledger_stats()["last_error"] == ""
        assert sink.ledger_stats()["passes"] == 4
    finally:
        await sink.close()


async def test_scheduled_pruning_survives_a_killed_connection_while_the_flusher_writes(
        tmp_path: Path, pg_prefix: str, admin: asyncpg.Connection, writer: str) -> None:
    cat = Catalog()
    rec = BatchRecorder(cat, flush_rows=100)
    sink = new_sink(writer, pg_prefix, cat, ledger_keep_s=3600, prune_every_s=0.02)
    fl = Flusher(rec, {"postgres": sink}, default_sink="postgres", spool_dir=tmp_path / "spool",
                 catalog=cat, flush_ms=10, retry_s=0.05)
    worker = fl.workers["postgres"]
    paused = [False]  # the real guard, and a pause while the row below is set up
    sink.watch_spool(lambda: paused[0] or worker.spool_pending())
    await fl.start()
    try:
        await until(lambda: sink.pruner.passes >= 1)  # the pass at start
        paused[0] = True
        old = "d" * 16 + ":0:0"
        await add_ids(admin, pg_prefix, [old], age_h=2)
        async with admin.transaction():  # the scheduled prune's DELETE waits on this row ...
            await admin.execute(f"SELECT 1 FROM {ledger(pg_prefix)} WHERE batch_id = $1 FOR UPDATE", old)
            paused[0] = False
            pid = await prune_waiting(admin, pg_prefix)
            for t in trades(500):
                rec.record(t)
            await fl.flush(timeout_s=30)  # ... while the flusher writes on ...
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)  # ... and is killed
            await until(lambda: sink.pruner.failures == 1)
        passes = sink.pruner.passes
        for t in trades(500):
            rec.record(t)
        await fl.flush(timeout_s=30)
        await until(lambda: sink.pruner.passes > passes and sink.pruner.pruned == 1)
        stats = fl.stats()["sinks"]["postgres"]
        assert stats["written"] == 1000 and not stats["spooling"] and stats["failed"] == 0
        assert stats["ledger"]["failures"] == 1 and stats["ledger"]["pruning"]
        assert await admin.fetchval(f'SELECT count(*) FROM "{pg_prefix}md".trades') == 1000
        assert old not in await ids_in(admin, pg_prefix)
    finally:
        await fl.stop()
    assert sink.pruner._task is None and sink.pruner._conn is None


def test_keep_hours_below_one_is_a_config_error(tmp_path: Path) -> None:
    p = tmp_path / "omnid.toml"
    p.write_text("[storage.postgres]\nledger_keep_hours = 0\n")
    with pytest.raises(ConfigError, match="ledger_keep_hours must be between 1 and"):
        load_config(p, env={})
    p.write_text("[storage.postgres]\nledger_keep_hours = 1\ntimeout_s = 600\n")
    with pytest.raises(ConfigError, match="at least 20 x timeout_s"):
        load_config(p, env={})
    p.write_text("[storage.postgres]\nledger_keep_hours = 36.5\n")
    assert load_config(p, env={}).storage.postgres.ledger_keep_hours == 36.5
