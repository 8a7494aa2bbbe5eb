"""The daemon's core adapter in-process: live risk reload, the recording tap, storage status."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import asyncpg
import msgspec
import pytest
from omnid.config import OmnidConfig, load_config
from omnid.daemon import Daemon
from omnid.ops.engine_core import EngineCore, TapRecorder
from omnid.risk.events import RiskHaltEvent
from omnid.storage.recorder import BatchRecorder

ROOT = Path(__file__).resolve().parents[2]
PG_DSN = os.environ.get("OMNID_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _cfg(tmp_path: Path) -> OmnidConfig:
    return load_config(ROOT / "omnid.toml.example", env={"OMNID__OMNID__DATA_DIR": str(tmp_path / "var")})


async def test_reload_swaps_live_risk_limits_and_reports_the_rest(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    daemon = Daemon(cfg, ROOT / "omnid.toml.example")
    core = EngineCore(daemon)
    await core.start()
    try:
        gate = core.engine.gate
        old_limit = gate.max_positions.limit
        new_risk = msgspec.structs.replace(
            cfg.risk, max_open_positions=old_limit + 7, day_timezone="Asia/Kolkata"
        )
        applied, not_applied = core.reload(msgspec.structs.replace(cfg, risk=new_risk))
        assert applied == ["risk.max_open_positions"]
        assert not_applied == ["risk.day_timezone: needs a restart"]
        assert gate.max_positions.limit == old_limit + 7
        sc = cfg.strategies[0]
        changed = msgspec.structs.replace(sc, params={**sc.params, "rsi_period": 21})
        applied, not_applied = core.reload(
            msgspec.structs.replace(core.cfg, strategies=[changed, *cfg.strategies[1:]])
        )
        assert applied == [f"strategies[{sc.name}]"] and not_applied == []
        assert core.engine.runners[sc.name].strategy.params.rsi_period == 21
        moved = msgspec.structs.replace(changed, instruments=["BTCUSDT.SIM"])
        applied, not_applied = core.reload(
            msgspec.structs.replace(core.cfg, strategies=[moved, *cfg.strategies[1:]])
        )
        assert applied == [] and len(not_applied) == 1 and "restart" in not_applied[0]
    finally:
        await core.flush()
    st = core.storage_status()
    assert st["closed"] is True and st["backlog"] == 0


def test_tap_recorder_records_then_notifies_and_contains_listener_errors() -> None:
    batch = BatchRecorder()
    seen: list[object] = []

    def listener(item: object) -> None:
        seen.append(item)
        raise RuntimeError("listener bug")

    tap = TapRecorder(batch, {RiskHaltEvent: listener})
    ev = RiskHaltEvent(ts=1, halted=True, source="kill_switch", reason="test")
    tap.record(ev)
    assert seen == [ev] and tap.errors == 1 and batch.pending == 1


async def _drop_schemas(prefix: str) -> None:
    conn = await asyncpg.connect(PG_DSN)
    try:
        for g in ("md", "derived", "strategy", "exec", "meta"):
            await conn.execute(f'DROP SCHEMA IF EXISTS "{prefix}{g}" CASCADE')
    finally:
        await conn.close()


@pytest.mark.postgres
async def test_storage_status_shows_the_postgres_ledger_retention(tmp_path: Path) -> None:
    """With tick tables routed to PostgreSQL, `omnid status` carries the ledger's prune counters
    (a prune that keeps failing shows there, not only in the log)."""
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    env = {
        "OMNID__OMNID__DATA_DIR": str(tmp_path / "var"),
        "OMNID__STORAGE__DEFAULT_SINK": "postgres",
        "OMNID__STORAGE__POSTGRES__DSN": PG_DSN,
        "OMNID__STORAGE__POSTGRES__SCHEMA_PREFIX": prefix,
        "OMNID__STORAGE__POSTGRES__LEDGER_KEEP_HOURS": "48",
    }
    cfg = load_config(ROOT / "omnid.toml.example", env=env)
    core = EngineCore(Daemon(cfg, ROOT / "omnid.toml.example"))
    await core.start()
    try:
        st = core.storage_status()
        assert set(st["ledger"]) == {"postgres"}
        ledger = st["ledger"]["postgres"]
        assert ledger["keep_hours"] == 48.0 and ledger["failures"] == 0 and ledger["last_error"] == ""
        assert "error" not in st
    finally:
        await core.flush()
        await _drop_schemas(prefix)


@pytest.mark.postgres
@pytest.mark.parametrize("writer", ["loop", "process"])
async def test_storage_status_counts_rows_left_out_as_unstorable(tmp_path: Path, writer: str) -> None:
    """A trade whose timestamp does not fit int64 is left out (and logged) by either writer; the rest
    of its batch is stored, and `omnid status` counts what was left out."""
    from omnid.model import Side, Trade

    prefix = f"t{uuid.uuid4().hex[:10]}_"
    env = {
        "OMNID__OMNID__DATA_DIR": str(tmp_path / "var"),
        "OMNID__STORAGE__DEFAULT_SINK": "postgres",
        "OMNID__STORAGE__POSTGRES__DSN": PG_DSN,
        "OMNID__STORAGE__POSTGRES__SCHEMA_PREFIX": prefix,
        "OMNID__STORAGE__POSTGRES__WRITER": writer,
    }
    cfg = load_config(ROOT / "omnid.toml.example", env=env)
    core = EngineCore(Daemon(cfg, ROOT / "omnid.toml.example"))
    await core.start()
    try:
        assert "rejected_rows" not in core.storage_status()
        ts = 1_767_225_600 * 10**9
        for i in range(5):
            core.batch.record(Trade("BTCUSDT.SIM", 100.0 + i, 1.0, Side.BUY, ts + i, ts + i))
        core.batch.record(Trade("BTCUSDT.SIM", 100.0, 1.0, Side.BUY, 2**70, 2**70))
        await core.flusher.flush(timeout_s=30)
        st = core.storage_status()
        assert st["rejected_rows"] == {"postgres": 1} and "error" not in st
        conn = await asyncpg.connect(PG_DSN)
        try:
            assert await conn.fetchval(f'SELECT count(*) FROM "{prefix}md".trades') == 5
        finally:
            await conn.close()
    finally:
        await core.flush()
        await _drop_schemas(prefix)
    assert core.storage_status()["rejected_rows"] == {"postgres": 1}  # in the final snapshot too


async def test_a_stale_trade_updates_features_but_nothing_trades_or_fills_on_it(tmp_path: Path) -> None:
    """A feed catching up after a reconnect or a restart delivers trades from minutes ago: they
    reach the features and storage, never the paper broker, the marks or the strategies."""
    import time

    from omnid.model import IntentAction, OrderIntent, OrderStatus, Side, Trade

    core = EngineCore(Daemon(_cfg(tmp_path), ROOT / "omnid.toml.example"))
    await core.start()
    try:
        core.enable_trading()
        iid = "BTCUSDT.SIM"
        vwap = core.engine.features.indicator(iid, "vwap")
        now = time.time_ns()
        core.on_event(Trade(iid, 100.0, 1.0, Side.BUY, now, now))
        order = core.engine.manager.submit(OrderIntent(strategy_id="manual", instrument_id=iid, side=Side.BUY,
                                                       qty=0.01, action=IntentAction.OPEN, reason="test"))
        before = core.batch.recorded + core.batch.pending
        old = now - 60 * 10**9  # a minute old: over [admin] stale_trade_s = 5
        core.on_event(Trade(iid, 50.0, 3.0, Side.SELL, old, old))
        assert order.status is OrderStatus.ACCEPTED  # no fill at a minute-old price
        assert core.stale_trades == 1 and core.status()["stale_trades"] == 1
        assert vwap.value == 62.5  # (100*1 + 50*3) / 4: the features did see it
        assert core.batch.recorded + core.batch.pending > before  # and it is recorded
        fresh = time.time_ns()
        core.on_event(Trade(iid, 101.0, 1.0, Side.BUY, fresh, fresh))
        assert order.status is OrderStatus.FILLED and order.avg_fill_price == 101.0
        assert core.stale_trades == 1
    finally:
        await core.flush()
