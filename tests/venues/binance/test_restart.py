"""Warm restarts of the daemon trading on the Binance peer: the venue's truth wins.

One account across three runs of the real daemon (in-process, EngineCore on the journal and
SQLite, orders to the peer over signed REST, reports over the WebSocket API user stream):

1. day 0: a market buy fills; two limit buys rest at the venue; the daemon stops without
   cancelling them (``[admin] cancel_orders_on_stop = false``). While omnid is down one of the
   limits fills at the venue.
2. three days later (the daemon's clock is shifted): the position is restored from the journal,
   both limits are adopted, the fill made while down is booked once at reconcile with a logged and
   alerted difference; then the other limit fills over the stream and is booked once.
3. restart again: nothing is booked twice; a balance the journal cannot explain (a deposit) is
   logged and alerted as a position difference, and the position is set to the venue's balance
   (journaled as a ``PositionAdjustment``).
4. restart once more: the journal replay gives the venue's number again; no difference is left.

Throughout, the peer saw each client order id in exactly one ``POST /api/v3/order``.
Protocol facts (binance-spot-api-docs, as the peer cites them): ``GET /api/v3/order`` by
``origClientOrderId`` returns ``executedQty``/``cummulativeQuoteQty`` (trading-endpoints.md);
``GET /api/v3/account`` lists ``balances[{asset, free, locked}]`` (account-endpoints.md).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import omnid.clock
import pytest
import structlog
from omnid.config import load_config
from omnid.daemon import Daemon
from omnid.model import Fill, Order, OrderIntent, OrderStatus, OrderType, Side
from omnid.ops.engine_core import EngineCore, engine_core_factory
from omnid.portfolio import PositionAdjustment
from omnid.storage.journal import Journal, read_journal

from tests.peers.binance_peer import API_KEY, SECRET, BinancePeer, PeerOrder
from tests.venues.binance.conftest import until
from tests.venues.binance.test_daemon_e2e import write_config

IID = "BTCUSDT.BINANCE"
DAY_NS = 86_400 * 10**9


class _ShiftedTime:
    """The ``time`` module as omnid.clock sees it, ``days`` later (wall-clock reads only)."""

    def __init__(self, days: float) -> None:
        self.shift = int(days * DAY_NS)

    def time_ns(self) -> int:
        return time.time_ns() + self.shift

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@asynccontextmanager
async def running(config: Path, monkeypatch: pytest.MonkeyPatch, *, days_later: float = 0.0
                  ) -> AsyncIterator[tuple[Daemon, EngineCore]]:
    monkeypatch.setattr(omnid.clock, "time", _ShiftedTime(days_later))
    cfg = load_config(config)
    cores: list[EngineCore] = []

    def factory(d: Daemon) -> EngineCore:
        cores.append(engine_core_factory(d))
        return cores[0]

    daemon = Daemon(cfg, config, core_factory=factory)
    run = asyncio.create_task(daemon.run())
    try:
        await until(lambda: daemon.ready or run.done(), 20)
        assert not run.done(), f"daemon exited: {run.result()}"
        yield daemon, cores[0]
    finally:
        daemon.request_stop("test over")
        assert await asyncio.wait_for(run, 30) == 0


def buy(core: EngineCore, qty: float, limit: float | None = None) -> Order:
    intent = OrderIntent(
        strategy_id="manual", instrument_id=IID, side=Side.BUY, qty=qty,
        order_type=OrderType.LIMIT if limit else OrderType.MARKET, limit_price=limit, reason="test",
    )
    return core.engine.manager.submit(intent)


def journal_fills(data_dir: Path) -> list[Fill]:
    recs = read_journal(data_dir / "journal.wal", repair=False).records
    return [r for r in recs if isinstance(r, Fill)]




async def test_position_days_later_working_orders_and_a_fill_while_down(
    peer: BinancePeer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BINANCE_API_KEY", API_KEY)
    monkeypatch.setenv("BINANCE_API_SECRET", SECRET)
    monkeypatch.setenv("OMNID__ADMIN__CANCEL_ORDERS_ON_STOP", "false")
    monkeypatch.setenv("OMNID__STRATEGIES", "[]")
    config = write_config(tmp_path, peer)
    data_dir = tmp_path / "var"
    peer.balances["BTC"] = (Decimal(0), Decimal(0))

    with structlog.testing.capture_logs() as logs:
        a, b, c, d = await three_runs(peer, config, monkeypatch)

    def log_lines(event: str) -> list[MutableMapping[str, Any]]:
        return [r for r in logs if r.get("event") == event]

    fills = journal_fills(data_dir)
    per_order: dict[str, float] = {}
    for f in fills:
        per_order[f.client_order_id] = per_order.get(f.client_order_id, 0.0) + f.qty
    want = {a.client_order_id: 0.002, b.client_order_id: 0.001, c.client_order_id: 0.001,
            d.client_order_id: 0.001}
    assert per_order.keys() == want.keys()
    assert all(abs(per_order[k] - v) < 1e-12 for k, v in want.items())  # each fill booked once
    assert peer.order_posts == len(peer.orders) == 4  # no client order id was sent twice
    diffs = log_lines("reconcile difference")
    assert sorted(r["kind"] for r in diffs) == ["missed_fill", "missed_fill", "position"]
    assert {r["client_order_id"] for r in diffs if r["kind"] == "missed_fill"} == {
        c.client_order_id, d.client_order_id}
    alerts = [r for r in log_lines("alert") if r.get("kind") == "reconcile"]
    assert len(alerts) == 3 and any("0.0055" in r["text"] for r in alerts)


async def three_runs(peer: BinancePeer, config: Path, monkeypatch: pytest.MonkeyPatch
                     ) -> tuple[Order, Order, Order, Order]:
    """Run 1 (day 0), run 2 (three days later), run 3; returns the four orders sent."""
    # Run 1, day 0.
    async with running(config, monkeypatch) as (_, core):
        await peer.trade("BTCUSDT", "50000.00", "0.01000")
        a = buy(core, 0.002)
        await until(lambda: a.client_order_id in peer.orders, 10)
        peer.fill(a.client_order_id, "0.002", "50000.00")
        await until(lambda: a.status is OrderStatus.FILLED, 10)
        b = buy(core, 0.001, 49000.0)
        c = buy(core, 0.001, 49500.0)
        await until(lambda: b.status is OrderStatus.ACCEPTED and c.status is OrderStatus.ACCEPTED, 10)
        opened_ns = core.engine.portfolio.position(IID).ts_opened  # type: ignore[union-attr]
    assert {peer.orders[o.client_order_id].status for o in (b, c)} == {"NEW"}  # still working

    peer.fill(c.client_order_id, "0.001", "49500.00")  # while omnid is down
    peer.balances["BTC"] = (Decimal("0.003"), Decimal(0))

    # Run 2, three days later.
    async with running(config, monkeypatch, days_later=3) as (daemon, core):
        assert daemon.clock.now_ns() - opened_ns > 3 * DAY_NS - 60 * 10**9
        restored = core.restored
        assert restored["open_orders_found"] == 2
        venue = restored["venues"]["BINANCE"]
        assert venue["fills_booked"] == 1 and venue["position_differences"] == 0
        pos = core.engine.portfolio.position(IID)
        assert pos is not None and abs(pos.qty - 0.003) < 1e-12
        assert abs(pos.avg_price - (0.002 * 50000 + 0.001 * 49500) / 0.003) < 1e-6
        assert pos.ts_opened == opened_ns  # held across the restart, not re-opened
        manager = core.engine.manager
        assert manager.get(c.client_order_id).status is OrderStatus.FILLED  # type: ignore[union-attr]
        b2 = manager.get(b.client_order_id)
        assert b2 is not None and b2.status is OrderStatus.ACCEPTED
        assert [o.client_order_id for o in manager.open_orders()] == [b.client_order_id]
        # The risk gate counts the adopted order as in flight again (duplicate guard, exposure).
        assert core.engine.gate.duplicate.open.get(("manual", IID, Side.BUY, b.action)) == 1
        peer.fill(b.client_order_id, "0.001", "49000.00")  # the adopted order fills after restart
        await until(lambda: b2.status is OrderStatus.FILLED, 10)
        assert abs(core.engine.portfolio.position(IID).qty - 0.004) < 1e-12  # type: ignore[union-attr]
        d = buy(core, 0.001)  # new ids continue past the journal's
        await until(lambda: d.client_order_id in peer.orders, 10)
    peer.fill(d.client_order_id, "0.001", "49900.00")  # also while down
    peer.balances["BTC"] = (Decimal("0.0055"), Decimal(0))  # 0.005 traded + a 0.0005 deposit

    # Run 3: the fill made while down is booked once; the deposit is a logged+alerted difference,
    # and the venue's number wins: the position is set to it, without a trade.
    async with running(config, monkeypatch, days_later=3) as (_, core):
        venue = core.restored["venues"]["BINANCE"]
        assert venue["fills_booked"] == 1 and venue["position_differences"] == 1
        assert venue["positions_adjusted"] == 1 and venue["cash_adjusted"] is False  # USD not at venue
        portfolio = core.engine.portfolio
        assert portfolio.exact_position(IID)[0] == Decimal("0.0055")
        assert core.engine.manager.open_orders() == []
        realised, cash = portfolio.realised_pnl(), portfolio.cash()
        exact = portfolio.exact()
        assert exact["cash"] == exact["initial_cash"] + exact["realised"] - exact["commissions"] - exact["open_cost"]
    adjustments = [r for r in read_journal(config.parent / "var" / "journal.wal", repair=False).records
                   if isinstance(r, PositionAdjustment)]
    assert [(a.instrument_id, a.qty_before, a.qty_after) for a in adjustments] == [(IID, "0.005", "0.0055")]

    # Run 4: the journal replay reproduces the adjustment; the venue and omnid agree.
    async with running(config, monkeypatch, days_later=3) as (_, core):
        venue = core.restored["venues"]["BINANCE"]
        assert venue["fills_booked"] == 0 and venue["position_differences"] == 0
        portfolio = core.engine.portfolio
        assert portfolio.exact_position(IID)[0] == Decimal("0.0055")
        assert portfolio.realised_pnl() == realised and portfolio.cash() == cash  # no P&L, no cash
    with sqlite3.connect(config.parent / "var" / "omnid.sqlite") as db:  # recorded once, in its table
        rows = db.execute("SELECT instrument_id, qty_before, qty_after FROM exec_position_adjustments").fetchall()
    assert rows == [(IID, "0.005", "0.0055")]

    return a, b, c, d


async def test_orders_in_flight_at_a_crash_are_resolved_by_query_never_resent(
    peer: BinancePeer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash between the journal append and the send leaves an order SUBMITTED that the venue
    may or may not have: after restart it is queried by client order id, never resent. One the
    venue has (its POST got out before the kill) is adopted as ACCEPTED and fills once; one it
    never saw is closed as REJECTED after the configured queries."""
    monkeypatch.setenv("BINANCE_API_KEY", API_KEY)
    monkeypatch.setenv("BINANCE_API_SECRET", SECRET)
    monkeypatch.setenv("OMNID__STRATEGIES", "[]")
    monkeypatch.setenv("OMNID__BINANCE__STATUS_QUERY_ATTEMPTS", "3")
    config = write_config(tmp_path, peer)
    async with running(config, monkeypatch) as (_, core):
        await peer.trade("BTCUSDT", "50000.00", "0.01000")
        a = buy(core, 0.001)
        await until(lambda: a.client_order_id in peer.orders, 10)
        peer.fill(a.client_order_id, "0.001", "50000.00")
        await until(lambda: a.status is OrderStatus.FILLED, 10)
    assert peer.order_posts == 1

    # What SIGKILL right after ``journal.append(order)`` leaves: the order journaled SUBMITTED.
    session = a.client_order_id.split("-")[0]
    lost, sent = (
        msgspec.structs.replace(a, client_order_id=f"{session}-manual-{n}", status=OrderStatus.SUBMITTED,
                                filled_qty=0.0, avg_fill_price=0.0, venue_order_id="",
                                order_type=OrderType.LIMIT, limit_price=49000.0)
        for n in (2, 3)
    )
    journal = Journal(tmp_path / "var" / "journal.wal")
    journal.append(lost)
    journal.append(sent)
    journal.close()
    now = peer.now_ms()  # the second one's POST reached the venue before the kill
    peer.orders[sent.client_order_id] = PeerOrder(
        "BTCUSDT", 9001, sent.client_order_id, "BUY", "LIMIT", "GTC", Decimal("49000.00"), Decimal(0),
        Decimal("0.00100"), time_ms=now, update_ms=now)

    async with running(config, monkeypatch) as (_, core):
        manager = core.engine.manager
        got_lost, got_sent = manager.get(lost.client_order_id), manager.get(sent.client_order_id)
        assert got_lost is not None and got_sent is not None
        await until(lambda: got_lost.status is OrderStatus.REJECTED, 10)
        assert got_sent.status is OrderStatus.ACCEPTED
        assert [o.client_order_id for o in manager.open_orders()] == [sent.client_order_id]
        peer.fill(sent.client_order_id, "0.001", "49000.00")
        await until(lambda: got_sent.status is OrderStatus.FILLED, 10)
        nxt = buy(core, 0.001)
        assert int(nxt.client_order_id.rsplit("-", 1)[1]) == 4  # the sequence continued
        await until(lambda: nxt.client_order_id in peer.orders, 10)
    assert peer.order_posts == 2  # a's and nxt's: nothing from the journal was sent again
    per_order: dict[str, float] = {}
    for f in journal_fills(tmp_path / "var"):
        per_order[f.client_order_id] = per_order.get(f.client_order_id, 0.0) + f.qty
    assert per_order == {a.client_order_id: 0.001, sent.client_order_id: 0.001}
