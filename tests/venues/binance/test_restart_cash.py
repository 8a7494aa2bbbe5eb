"""Cash at restart: when the venue reports the account currency, its balance wins.

The daemon's account currency is set to USDT (``[omnid] base_currency``), which the Binance peer
reports in ``GET /api/v3/account`` ``balances[{asset, free, locked}]`` (account-endpoints.md, as
the peer cites it). A first start sets cash to the venue's balance; a deposit while omnid is down
shows up at the next start as a logged and alerted difference, cash is set to it exactly (capital,
not P&L), journaled, and a third start replays it with no difference left.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import structlog
from omnid.model import OrderStatus
from omnid.portfolio import CashAdjustment
from omnid.storage.journal import read_journal

from tests.peers.binance_peer import API_KEY, SECRET, BinancePeer
from tests.venues.binance.conftest import until
from tests.venues.binance.test_daemon_e2e import write_config
from tests.venues.binance.test_restart import IID, buy, running


async def test_venue_cash_wins_and_replays(peer: BinancePeer, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """USDT 10000.3 at the venue, then a 2345.67 deposit while down: cash follows, exactly, once."""
    monkeypatch.setenv("BINANCE_API_KEY", API_KEY)
    monkeypatch.setenv("BINANCE_API_SECRET", SECRET)
    monkeypatch.setenv("OMNID__STRATEGIES", "[]")
    monkeypatch.setenv("OMNID__OMNID__BASE_CURRENCY", "USDT")
    config = write_config(tmp_path, peer)
    peer.balances["USDT"] = (Decimal("10000.2"), Decimal("0.1"))  # as floats they sum to 10000.300000000001

    with structlog.testing.capture_logs() as logs:
        async with running(config, monkeypatch) as (_, core):
            assert core.restored["venues"]["BINANCE"]["cash_adjusted"] is True
            assert core.engine.portfolio.exact()["cash"] == Decimal("10000.3")  # the venue's decimals, exactly
        peer.balances["USDT"] = (Decimal("12000.00"), Decimal("345.67"))  # free + locked
        async with running(config, monkeypatch) as (_, core):
            pf = core.engine.portfolio
            assert core.restored["venues"]["BINANCE"]["cash_adjusted"] is True
            assert pf.exact()["cash"] == Decimal("12345.67") and pf.realised_pnl() == 0.0
            assert pf.exact()["initial_cash"] == Decimal("12345.67")  # capital in, not P&L
        async with running(config, monkeypatch) as (_, core):
            assert core.restored["venues"]["BINANCE"]["cash_adjusted"] is False
            assert core.engine.portfolio.exact()["cash"] == Decimal("12345.67")

    cash_diffs = [r for r in logs if r.get("event") == "reconcile difference" and r.get("kind") == "cash"]
    assert [r["venue_cash"] for r in cash_diffs] == [10000.3, 12345.67]
    alerts = [r for r in logs if r.get("event") == "alert" and r.get("kind") == "reconcile"]
    assert len(alerts) == 2 and "12345.7" in alerts[1]["text"]
    recs = read_journal(tmp_path / "var" / "journal.wal", repair=False).records
    adjs = [r for r in recs if isinstance(r, CashAdjustment)]
    assert [(a.currency, a.cash_after) for a in adjs] == [("USDT", "10000.3"), ("USDT", "12345.67")]


async def test_withdrawal_to_flat_closes_the_position_and_its_exits(
    peer: BinancePeer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole base asset withdrawn while down: the position is set flat with no P&L, its stop is
    dropped (no exit fires on nothing), and the next restart agrees with the venue."""
    monkeypatch.setenv("BINANCE_API_KEY", API_KEY)
    monkeypatch.setenv("BINANCE_API_SECRET", SECRET)
    monkeypatch.setenv("OMNID__STRATEGIES", "[]")
    config = write_config(tmp_path, peer)
    with config.open("a") as f:
        f.write("\n[risk.exits]\nstop_loss_pct = 5.0\n")
    peer.balances["BTC"] = (Decimal(0), Decimal(0))
    async with running(config, monkeypatch) as (_, core):
        await peer.trade("BTCUSDT", "50000.00", "0.01000")
        a = buy(core, 0.002)
        await until(lambda: a.client_order_id in peer.orders, 10)
        peer.fill(a.client_order_id, "0.002", "50000.00")
        await until(lambda: a.status is OrderStatus.FILLED, 10)
        assert core.engine.gate.exits.managed_count == 1
    peer.balances["BTC"] = (Decimal(0), Decimal(0))  # withdrawn while down
    async with running(config, monkeypatch) as (_, core):
        pf = core.engine.portfolio
        assert core.restored["venues"]["BINANCE"]["positions_adjusted"] == 1
        assert pf.exact_position(IID)[:2] == (Decimal(0), Decimal(0)) and pf.positions() == []
        assert pf.realised_pnl() == 0.0 and pf.open_position_count() == 0
        assert core.engine.gate.exits.managed_count == 0
    async with running(config, monkeypatch) as (_, core):
        assert core.restored["venues"]["BINANCE"]["position_differences"] == 0
        assert core.engine.portfolio.positions() == []


async def test_holdings_omnid_did_not_buy_are_reported_not_adopted(
    peer: BinancePeer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BTC held before omnid ever traded BTCUSDT: named at start (log, status), never adopted, so
    no strategy sells it; once omnid holds a BTCUSDT position, the balance is that position's."""
    monkeypatch.setenv("BINANCE_API_KEY", API_KEY)
    monkeypatch.setenv("BINANCE_API_SECRET", SECRET)
    monkeypatch.setenv("OMNID__STRATEGIES", "[]")
    config = write_config(tmp_path, peer)
    peer.balances["BTC"] = (Decimal("0.25"), Decimal("0.05"))
    with structlog.testing.capture_logs() as logs:
        async with running(config, monkeypatch) as (_, core):
            summary = core.restored["venues"]["BINANCE"]
            assert summary["unmanaged_holdings"] == {"BTC": 0.3}
            assert summary["position_differences"] == 0
            assert core.engine.portfolio.position_qty(IID) == 0.0
            await peer.trade("BTCUSDT", "50000.00", "0.01000")
            a = buy(core, 0.002)
            await until(lambda: a.client_order_id in peer.orders, 10)
            peer.fill(a.client_order_id, "0.002", "50000.00")
            await until(lambda: a.status is OrderStatus.FILLED, 10)
        peer.balances["BTC"] = (Decimal("0.002"), Decimal(0))
        async with running(config, monkeypatch) as (_, core):
            summary = core.restored["venues"]["BINANCE"]
            assert summary["unmanaged_holdings"] == {} and summary["position_differences"] == 0
            assert core.engine.portfolio.position_qty(IID) == 0.002
    named = [(r["asset"], r["venue_qty"]) for r in logs if r.get("event") == "venue holding not managed"]
    assert named == [("BTC", 0.3)]


async def test_held_back_savings_never_enter_omnids_books(
    peer: BinancePeer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With [binance] hold_back = { BTC = 0.3, USDT = 5000 }: the savings are not reported, not
    cash, and after omnid buys 0.002 BTC a restart keeps the position at 0.002 (without hold_back
    it would be set to the whole 0.302, which the next exit would sell)."""
    monkeypatch.setenv("BINANCE_API_KEY", API_KEY)
    monkeypatch.setenv("BINANCE_API_SECRET", SECRET)
    monkeypatch.setenv("OMNID__STRATEGIES", "[]")
    monkeypatch.setenv("OMNID__OMNID__BASE_CURRENCY", "USDT")
    config = write_config(tmp_path, peer)
    with config.open("a") as f:
        f.write("hold_back = { BTC = 0.3, USDT = 5000.0 }\n")  # appended to the [binance] table
    peer.balances["BTC"] = (Decimal("0.3"), Decimal(0))
    peer.balances["USDT"] = (Decimal("15000"), Decimal(0))
    async with running(config, monkeypatch) as (_, core):
        summary = core.restored["venues"]["BINANCE"]
        assert summary["unmanaged_holdings"] == {}
        assert core.engine.portfolio.exact()["cash"] == Decimal("10000")
        await peer.trade("BTCUSDT", "50000.00", "0.01000")
        a = buy(core, 0.002)
        await until(lambda: a.client_order_id in peer.orders, 10)
        peer.fill(a.client_order_id, "0.002", "50000.00")
        await until(lambda: a.status is OrderStatus.FILLED, 10)
    peer.balances["BTC"] = (Decimal("0.302"), Decimal(0))
    peer.balances["USDT"] = (Decimal("14900"), Decimal(0))
    async with running(config, monkeypatch) as (_, core):
        summary = core.restored["venues"]["BINANCE"]
        assert summary["position_differences"] == 0 and summary["positions_adjusted"] == 0
        assert core.engine.portfolio.position_qty(IID) == 0.002
        assert core.engine.portfolio.exact()["cash"] == Decimal("9900")


def test_hold_back_amounts_are_checked() -> None:
    from omnid.venues.binance.config import BinanceConfig

    with pytest.raises(ValueError, match=r"hold_back\.BTC must be a finite amount >= 0"):
        BinanceConfig(hold_back={"BTC": -1.0})
    with pytest.raises(ValueError, match="upper-case asset code"):
        BinanceConfig(hold_back={"btc": 1.0})
    assert BinanceConfig(hold_back={"BTC": 0.5}).hold_back == {"BTC": 0.5}
