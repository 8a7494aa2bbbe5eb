"""The record types' own tables (omnid/storage/tables.py): each one round-trips through the real
SQLite sink and the real PostgreSQL on 127.0.0.1:5432, a repeated or replayed record is stored
once, and odd values are stored (made safe) or, when they cannot be, left out alone."""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import math
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from omnid.engine import RejectedEvent
from omnid.errors import StorageError
from omnid.execution.events import ExecutionIssue, IssueKind
from omnid.model import IntentAction, Side
from omnid.ops.alerts import AlertManager, AlertOutcome
from omnid.ops.config import AlertsConfig, TelegramConfig
from omnid.portfolio import CashAdjustment, PositionAdjustment
from omnid.risk.events import RiskDenial, RiskHaltEvent
from omnid.storage.catalog import GENERIC, Catalog, TableSpec, register_table
from omnid.storage.ddl import sqlite_name
from omnid.storage.flusher import Flusher
from omnid.storage.recorder import BatchRecorder
from omnid.storage.sinks.base import Batch, Sink
from omnid.storage.sinks.pg_process import PostgresProcessSink
from omnid.storage.sinks.postgres import PostgresSink
from omnid.storage.sinks.sqlite import SqliteSink
from omnid.strategies.base import StrategyErrorRecord, StrategyStateChange
from omnid.strategies.builtin.scanner import ScanEntry, ScanRanking

from tests.peers.telegram_peer import TelegramPeer
from tests.storage.conftest import PG_DSN, T0

# ---- what each record should look like in its table, from the record's own fields ---------------

Expect = Callable[[Any], dict[str, Any]]

EXPECT: dict[type[Any], tuple[str, Expect]] = {
    RiskDenial: ("strategy.denials", lambda d: {
        "strategy_id": d.strategy_id, "ts_event": d.ts, "instrument_id": d.instrument_id, "rule": d.rule,
        "side": d.side.value, "action": d.action.value, "message": d.message, "numbers": d.numbers}),
    RiskHaltEvent: ("strategy.halts", lambda h: {
        "ts_event": h.ts, "source": h.source, "halted": int(h.halted), "reason": h.reason,
        "numbers": h.numbers}),
    ScanRanking: ("strategy.scans", lambda r: {
        "scanner": r.scanner, "ts_event": r.ts_event, "target": r.target, "score_name": r.score,
        "selected": r.selected, "ranked": len(r.ranking), "top_instrument_id": r.ranking[0].instrument_id,
        "top_score": r.ranking[0].score,
        "ranking": [{"instrument_id": e.instrument_id, "score": e.score, "rank": e.rank} for e in r.ranking],
        "unscored": r.unscored}),
    StrategyErrorRecord: ("strategy.errors", lambda e: {
        "strategy_id": e.strategy_id, "ts_event": e.ts_event, "hook": e.hook, "kind": e.kind,
        "error_type": e.error_type, "message": e.message, "traceback": e.traceback}),
    StrategyStateChange: ("strategy.states", lambda s: {
        "strategy_id": s.strategy_id, "ts_event": s.ts_event, "state": s.state, "reason": s.reason}),
    ExecutionIssue: ("exec.issues", lambda i: {
        "client_order_id": i.client_order_id, "ts_event": i.ts, "kind": i.kind.value,
        "instrument_id": i.instrument_id, "message": i.message, "detail": i.detail}),
    RejectedEvent: ("md.rejected_events", lambda r: {
        "instrument_id": r.instrument_id, "ts_event": r.ts_event, "kind": r.kind, "reason": r.reason}),
    CashAdjustment: ("exec.cash_adjustments", lambda a: {
        "currency": a.currency, "ts_event": a.ts_event, "cash_before": a.cash_before,
        "cash_after": a.cash_after, "reason": a.reason}),
    PositionAdjustment: ("exec.position_adjustments", lambda a: {
        "instrument_id": a.instrument_id, "ts_event": a.ts_event, "qty_before": a.qty_before,
        "qty_after": a.qty_after, "price": a.price, "cost_change": a.cost_change, "reason": a.reason}),
    AlertOutcome: ("exec.alerts", lambda a: {
        "ts_event": a.ts_event, "kind": a.kind, "channel": a.channel, "outcome": a.outcome,
        "attempts": a.attempts, "error": a.error, "text": a.text, "context": a.context,
        "ts_done": a.ts_done}),
}


def samples() -> list[Any]:
    """One or more ordinary records of every type. The two denials share strategy, instant,
    instrument and rule (two intents refused on one tick): both must be kept."""
    return [
        RiskDenial(ts=T0, strategy_id="s1", instrument_id="BTCUSDT.SIM", side=Side.BUY, rule="max_position",
                   message="position 3 > 2", numbers={"qty": 3.0, "limit": 2.0}),
        RiskDenial(ts=T0, strategy_id="s1", instrument_id="BTCUSDT.SIM", side=Side.BUY, rule="max_position",
                   message="position 4 > 2", numbers={"qty": 4.0, "limit": 2.0}, action=IntentAction.CLOSE),
        RiskHaltEvent(ts=T0 + 1, halted=True, source="daily_loss", reason="loss 510 > 500",
                      numbers={"loss": 510.0, "limit": 500.0}),
        RiskHaltEvent(ts=T0 + 2, halted=False, source="daily_loss", reason="a new trading day"),
        ScanRanking(scanner="scan", target="mom", ts_event=T0, score="mom_10",
                    ranking=[ScanEntry("ETHUSDT.SIM", 2.5, 1), ScanEntry("BTCUSDT.SIM", 1.25, 2)],
                    selected=["ETHUSDT.SIM"], unscored=["SOLUSDT.SIM"]),
        StrategyErrorRecord(strategy_id="s2", kind="ema_cross", hook="on_bar", error_type="ZeroDivisionError",
                            message="division by zero", traceback=["a.py:1 in f", "b.py:2 in g"], ts_event=T0),
        StrategyStateChange(strategy_id="s2", state="running", reason="started", ts_event=T0),
        StrategyStateChange(strategy_id="s2", state="disabled", reason="on_bar raised", ts_event=T0),
        ExecutionIssue(ts=T0, kind=IssueKind.DUPLICATE_FILL, client_order_id="s1-1", message="fill f1 again",
                       instrument_id="BTCUSDT.SIM", detail={"fill_id": "f1"}),
        RejectedEvent(kind="trade", instrument_id="BTCUSDT.SIM", reason="price is not finite", ts_event=T0),
        RejectedEvent(kind="trade", instrument_id="BTCUSDT.SIM", reason="size <= 0", ts_event=T0),
        CashAdjustment(currency="USDT", cash_before="1000.5", cash_after="990.25",
                       reason="reconcile with BINANCE", ts_event=T0),
        PositionAdjustment(instrument_id="BTCUSDT.BINANCE", qty_before="0.1", qty_after="0.15",
                           price="50000.01", cost_change="2500.0005", reason="reconcile with BINANCE",
                           ts_event=T0),
        AlertOutcome(ts_event=T0, kind="halt", text="trading halted", channel="telegram", outcome="sent",
                     attempts=1, context={"reason": "loss"}, ts_done=T0 + 5),
        AlertOutcome(ts_event=T0, kind="halt", text="trading halted", channel="webhook:ops",
                     outcome="gave_up", attempts=4, error="HTTP 502", context={"reason": "loss"},
                     ts_done=T0 + 9),
    ]


# ---- reading back -------------------------------------------------------------------------------


def _decode(spec: TableSpec, row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for c in spec.columns:
        if c.name == "digest":
            continue
        v = row[c.name]
        out[c.name] = json.loads(v) if c.kind == "json" and v is not None else v
    return out


async def read_sqlite(db: Path, spec: TableSpec) -> list[dict[str, Any]]:
    def run() -> list[dict[str, Any]]:
        with sqlite3.connect(db) as c:
            c.row_factory = sqlite3.Row
            return [dict(r) for r in c.execute(f'SELECT * FROM "{sqlite_name(spec)}"')]

    return [_decode(spec, r) for r in await asyncio.to_thread(run)]


async def read_pg(prefix: str, spec: TableSpec) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(PG_DSN)
    try:
        rows = await conn.fetch(f'SELECT * FROM "{prefix}{spec.group}"."{spec.name}"')
    finally:
        await conn.close()
    return [_decode(spec, dict(r)) for r in rows]


def _key(d: dict[str, Any]) -> str:
    return json.dumps(d, sort_keys=True, default=str)


def expected_by_table(records: list[Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        table, fn = EXPECT[type(r)]
        out.setdefault(table, []).append(fn(r))
    return out


async def _run(sink: Sink, tmp_path: Path, cat: Catalog, batches: list[list[Any]]) -> None:
    """Each list of records is recorded and flushed as its own round (so repeats cross batches)."""
    rec = BatchRecorder(cat, flush_rows=10_000)
    fl = Flusher(rec, {"s": sink}, default_sink="s", spool_dir=tmp_path / "spool", catalog=cat, flush_ms=10)
    await fl.start()
    for records in batches:
        for r in records:
            rec.record(r)
        await fl.flush()
    await fl.stop()


PgFactory = Callable[[str, Catalog], Sink]


@pytest.fixture(params=["loop", "process"])
def pg_sink(request: pytest.FixtureRequest) -> PgFactory:
    """Both PostgreSQL writers: on the loop (our COPY encoder) and the child process (asyncpg's)."""
    if request.param == "loop":
        return lambda prefix, cat: PostgresSink(PG_DSN, schema_prefix=prefix, catalog=cat)
    return lambda prefix, cat: PostgresProcessSink(PG_DSN, schema_prefix=prefix)


# ---- the catalogue ------------------------------------------------------------------------------


def test_every_record_path_names_its_real_type() -> None:
    """A moved or renamed record type would silently fall back to strategy.records: every path
    must import, and the real type must resolve to its table."""
    cat = Catalog()
    paths = cat.record_paths()
    assert len(paths) == len(EXPECT)
    for path, spec in paths.items():
        module, _, name = path.rpartition(".")
        typ = getattr(importlib.import_module(module), name)
        assert cat.spec_for(typ) is spec, path
        assert EXPECT[typ][0] == spec.full_name
        assert cat.table(spec.full_name) is spec
        assert spec.ts_column == "ts_event"
    assert cat.spec_for(TelegramConfig) is GENERIC  # an unregistered type still has a home


def test_record_table_names_cannot_be_taken_again() -> None:
    cat = Catalog()
    with pytest.raises(StorageError, match="already registered"):
        register_table(dict, "strategy", "denials", [("x", "text")], ("x",), lambda d: (d,), catalog=cat)


def test_registering_the_same_table_again_binds_to_it() -> None:
    """A part that registered one of these tables itself before they were built in (reconcile's
    adjustments in omnid/ops/engine_core.py) gets the built-in table, not an error."""
    cat = Catalog()
    builtin = cat.spec_for(PositionAdjustment)
    got = register_table(
        PositionAdjustment, "exec", "position_adjustments",
        [("instrument_id", "text"), ("ts_event", "int"), ("qty_before", "text"), ("qty_after", "text"),
         ("price", "text"), ("cost_change", "text"), ("reason", "text")],
        key=("instrument_id", "ts_event", "qty_after"), row=lambda a: (), ts_column="ts_event", catalog=cat)
    assert got is builtin and cat.spec_for(PositionAdjustment) is builtin
    with pytest.raises(StorageError, match="already registered"):  # another key: another table
        register_table(PositionAdjustment, "exec", "position_adjustments",
                       [(c.name, c.kind) for c in builtin.columns], key=("instrument_id", "ts_event"),
                       row=lambda a: (), ts_column="ts_event", catalog=cat)


def test_migration_0003_creates_exactly_what_the_sinks_would() -> None:
    """Keys, collations and indexes too, not only column names: a store made by `omnid db migrate`
    and one made by the sink at start-up must be the same."""
    from omnid.storage.ddl import pg_create
    from omnid.storage.sinks.postgres import migrations

    (sql,) = [text for v, _, text in migrations() if v == 3]
    for spec in Catalog().record_paths().values():
        for stmt in pg_create(spec, "SCHEMA"):
            assert stmt.replace('"SCHEMA"', "{" + spec.group + "}") + ";" in sql, stmt


# ---- round trips --------------------------------------------------------------------------------


async def test_sqlite_round_trip_and_repeats_store_once(tmp_path: Path) -> None:
    """Every sample lands in its table with the record's values; the same records recorded twice
    in one batch, again in a later batch, and replayed as built rows add nothing."""
    cat = Catalog()
    db = tmp_path / "omnid.sqlite"
    recs = samples()
    await _run(SqliteSink(db), tmp_path, cat, [recs + samples(), samples()])
    sink = SqliteSink(db)
    await sink.start(cat.tables())
    for spec, items in _by_spec(cat, samples()).items():
        await sink.write(Batch(spec, [spec.row(x) for x in items], built=True, replay=True))
    await sink.close()
    for table, want in expected_by_table(recs).items():
        got = await read_sqlite(db, cat.table(table))
        assert sorted(map(_key, got)) == sorted(map(_key, want)), table
    assert await read_sqlite(db, GENERIC) == []  # none of them fell back to JSON


@pytest.mark.postgres
async def test_postgres_round_trip_and_repeats_store_once(tmp_path: Path, pg_prefix: str,
                                                          pg_sink: PgFactory) -> None:
    cat = Catalog()
    recs = samples()
    await _run(pg_sink(pg_prefix, cat), tmp_path, cat, [recs + samples(), samples()])
    sink = pg_sink(pg_prefix, cat)
    await sink.start(cat.tables())
    for spec, items in _by_spec(cat, samples()).items():  # a spool replay: the upsert path
        await sink.write(Batch(spec, [spec.row(x) for x in items], built=True, replay=True))
        await sink.write(Batch(spec, items))  # fresh COPY meets the key, falls back to upsert
    await sink.close()
    for table, want in expected_by_table(recs).items():
        got = await read_pg(pg_prefix, cat.table(table))
        assert sorted(map(_key, got)) == sorted(map(_key, want)), table
    assert await read_pg(pg_prefix, GENERIC) == []


def _by_spec(cat: Catalog, records: list[Any]) -> dict[TableSpec, list[Any]]:
    out: dict[TableSpec, list[Any]] = {}
    for r in records:
        out.setdefault(cat.spec_for(type(r)), []).append(r)
    return out


# ---- odd values ---------------------------------------------------------------------------------

HUGE = {f"k{i}": i * 0.5 for i in range(20_000)}


def odd() -> tuple[list[Any], Any]:
    """Records with odd values that must be stored, and one that cannot be (its timestamp does not
    fit in 64 bits), all in the same batches."""
    keep = [
        RiskDenial(ts=T0, strategy_id="", instrument_id="", side=Side.SELL, rule="",
                   message="", numbers={"price": math.nan, "limit": math.inf, "floor": -math.inf}),
        RiskDenial(ts=T0 + 1, strategy_id="stratégie-é", instrument_id="BTC€.SIM", side=Side.BUY,
                   rule="bande_de_prix", message="prix hors bande ±5 % — 注文拒否", numbers=HUGE),
        ExecutionIssue(ts=T0, kind=IssueKind.BAD_FILL, client_order_id="c\x00d", message="nul\x00byte",
                       detail={"k\x00": "v\x00"}),
        RejectedEvent(kind="trade", instrument_id="X.SIM", reason="lone \ud800 surrogate", ts_event=T0),
        StrategyErrorRecord(strategy_id="s", kind="k", hook="on_trade", error_type="E", message="x" * 100_000,
                            traceback=[], ts_event=T0),
        ScanRanking(scanner="scan", target="", ts_event=T0, score="return_60m",
                    ranking=[ScanEntry("A.SIM", math.nan, 1)], selected=[], unscored=[]),
    ]
    bad = StrategyStateChange(strategy_id="s", state="running", reason="started", ts_event=1 << 64)
    return keep, bad


def _check_odd(got: dict[str, list[dict[str, Any]]]) -> None:
    denials = sorted(got["strategy.denials"], key=lambda d: d["ts_event"])
    assert [d["strategy_id"] for d in denials] == ["", "stratégie-é"]
    assert denials[0]["numbers"] == {"price": "NaN", "limit": "Infinity", "floor": "-Infinity"}
    assert denials[1]["numbers"] == HUGE and denials[1]["message"] == "prix hors bande ±5 % — 注文拒否"
    assert denials[1]["instrument_id"] == "BTC€.SIM"
    (issue,) = got["exec.issues"]
    assert issue["client_order_id"] == "c\ufffdd" and issue["message"] == "nul\ufffdbyte"
    assert issue["detail"] == {"k\ufffd": "v\ufffd"}
    (rej,) = got["md.rejected_events"]
    assert rej["reason"] == "lone ? surrogate"
    (err,) = got["strategy.errors"]
    assert len(err["message"]) == 100_000  # long text is never part of a key
    (scan,) = got["strategy.scans"]
    assert scan["ranking"] == [{"instrument_id": "A.SIM", "score": "NaN", "rank": 1}]
    assert scan["top_score"] is None or math.isnan(scan["top_score"])  # SQLite keeps NaN as NULL
    assert got["strategy.states"] == [{"strategy_id": "s", "state": "running", "reason": "fine",
                                       "ts_event": T0}]


async def test_sqlite_odd_values_stored_or_left_out_alone(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cat = Catalog()
    keep, bad = odd()
    fine = StrategyStateChange(strategy_id="s", state="running", reason="fine", ts_event=T0)
    db = tmp_path / "omnid.sqlite"
    with caplog.at_level(logging.ERROR, logger="omnid.storage"):
        await _run(SqliteSink(db), tmp_path, cat, [[*keep, bad, fine], [*keep, bad]])
    assert "cannot store a StrategyStateChange in strategy.states" in caplog.text
    names = ("strategy.denials", "exec.issues", "md.rejected_events", "strategy.errors", "strategy.scans",
             "strategy.states")
    _check_odd({n: await read_sqlite(db, cat.table(n)) for n in names})


@pytest.mark.postgres
async def test_postgres_odd_values_stored_or_left_out_alone(tmp_path: Path, pg_prefix: str, pg_sink: PgFactory,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    cat = Catalog()
    keep, bad = odd()
    fine = StrategyStateChange(strategy_id="s", state="running", reason="fine", ts_event=T0)
    sink = pg_sink(pg_prefix, cat)
    with caplog.at_level(logging.ERROR, logger="omnid.storage"):
        await _run(sink, tmp_path, cat, [[*keep, bad, fine], [*keep, bad]])
    assert "cannot store a StrategyStateChange in strategy.states" in caplog.text
    names = ("strategy.denials", "exec.issues", "md.rejected_events", "strategy.errors", "strategy.scans",
             "strategy.states")
    _check_odd({n: await read_pg(pg_prefix, cat.table(n)) for n in names})


# ---- alerts -------------------------------------------------------------------------------------


async def test_alert_outcomes_are_recorded_into_exec_alerts(tmp_path: Path) -> None:
    """Sent, dropped (queue full), given up (5xx past the retries) and refused (wrong token): each
    alert's fate is one row per channel in exec.alerts, secrets redacted."""
    peer = TelegramPeer()
    await peer.start()
    cat = Catalog()
    db = tmp_path / "omnid.sqlite"
    rec = BatchRecorder(cat)
    fl = Flusher(rec, {"sqlite": SqliteSink(db)}, spool_dir=tmp_path / "spool", catalog=cat, flush_ms=10)
    await fl.start()
    clock = iter(range(T0, T0 + 1000))
    tg = TelegramConfig(enabled=True, bot_token=peer.token, chat_id=peer.chat_id, api_url=peer.url)
    cfg = AlertsConfig(telegram=tg, queue_size=1, max_retries=1, retry_backoff_s=0.01, timeout_s=2.0)
    mgr = AlertManager(cfg, instance="box1", now_ns=lambda: next(clock), recorder=rec)
    wrong = AlertManager(AlertsConfig(telegram=TelegramConfig(enabled=True, bot_token="9:wrong", chat_id="42",
                                                              api_url=peer.url)),
                         now_ns=lambda: next(clock), recorder=rec)
    task = asyncio.create_task(mgr.run())
    other = asyncio.create_task(wrong.run())
    try:
        assert mgr.emit("fill", "bought 1 BTC", api_key="abc123456")
        assert not mgr.emit("fill", "bought 2 BTC")  # the queue holds one: dropped
        assert await mgr.drain(5)
        peer.fail_next(502, times=5)
        mgr.emit("halt", "trading halted")
        assert await mgr.drain(5)
        wrong.emit("x", "hello")
        assert await wrong.drain(5)
    finally:
        for t in (task, other):
            t.cancel()
        await asyncio.gather(task, other, return_exceptions=True)
        await fl.flush()
        await fl.stop()
        await peer.close()
    rows = sorted(await read_sqlite(db, cat.table("exec.alerts")), key=lambda r: r["ts_event"])
    got = [(r["kind"], r["text"], r["channel"], r["outcome"], r["attempts"]) for r in rows]
    assert got == [("fill", "bought 1 BTC", "telegram", "sent", 1),
                   ("fill", "bought 2 BTC", "", "dropped", 0),
                   ("halt", "trading halted", "telegram", "gave_up", 2),
                   ("x", "hello", "telegram", "refused", 1)]
    assert rows[0]["context"] == {"api_key": "***"}
    assert "502" in rows[2]["error"] and rows[3]["error"]
    assert all(r["ts_done"] > r["ts_event"] for r in rows)


# ---- an existing database -----------------------------------------------------------------------


@pytest.mark.postgres
async def test_existing_database_gains_the_tables_and_keeps_its_json_records(pg_prefix: str) -> None:
    """A store at migration 2, holding a denial as JSON in strategy.records: migrating applies
    0003 (and any later ones), creates every record table, and leaves the old JSON row where it was."""
    from omnid.storage.sinks.postgres import migrate, migrations, render

    conn = await asyncpg.connect(PG_DSN)
    try:
        meta = f'"{pg_prefix}meta"'
        await conn.execute(f"CREATE SCHEMA {meta}")
        await conn.execute(f"CREATE TABLE {meta}.schema_migrations (version int PRIMARY KEY, name text NOT NULL, "
                           "applied_at timestamptz NOT NULL DEFAULT now())")
        for version, name, sql in migrations():
            if version <= 2:
                await conn.execute(render(sql, pg_prefix))
                await conn.execute(f"INSERT INTO {meta}.schema_migrations (version, name) VALUES ($1, $2)",
                                   version, name)
        old = samples()[0]
        row = GENERIC.row(old)
        await conn.execute(f'INSERT INTO "{pg_prefix}strategy".records VALUES ($1, $2, $3, $4)', *row)
        later = [v for v, _, _ in migrations() if v > 2]
        assert 3 in later and await migrate(conn, pg_prefix) == later
        for spec in Catalog().record_paths().values():
            n = await conn.fetchval(f'SELECT count(*) FROM "{pg_prefix}{spec.group}"."{spec.name}"')
            assert n == 0, spec.full_name
        kept = await conn.fetch(f'SELECT type, ts, payload FROM "{pg_prefix}strategy".records')
    finally:
        await conn.close()
    assert [(r["type"], r["ts"], json.loads(r["payload"])["rule"]) for r in kept] == [
        ("RiskDenial", T0, "max_position")]
