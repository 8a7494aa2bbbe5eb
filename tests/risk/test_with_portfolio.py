"""The gate against the real ledger (omnid.portfolio.Portfolio), to keep the PortfolioView semantics
it relies on honest: open-position count, exposure, daily P&L and its day boundary, peak equity."""

from __future__ import annotations

import datetime as dt
import itertools

import msgspec
from omnid.calendar import to_ns
from omnid.clock import SimClock
from omnid.model import Fill, OrderIntent, Side
from omnid.portfolio import Portfolio
from omnid.ports import ListRecorder
from omnid.risk import RiskConfig, RiskGate, RiskHaltEvent

from tests.risk.conftest import INSTRUMENTS, IST, approved, buy, denied, sell

_ids = itertools.count()


def _world(**cfg: object) -> tuple[RiskGate, Portfolio, SimClock, ListRecorder]:
    clock = SimClock(to_ns(dt.datetime(2026, 11, 23, 10, 0, tzinfo=IST)))
    pf = Portfolio(clock, initial_cash=10_000.0, timezone="Asia/Kolkata", instruments=INSTRUMENTS.values())
    rec = ListRecorder()
    gate = RiskGate(msgspec.convert(cfg, RiskConfig), clock=clock, portfolio=pf, instruments=INSTRUMENTS,
                    recorder=rec)
    return gate, pf, clock, rec


def _fill(gate: RiskGate, pf: Portfolio, intent: OrderIntent, price: float) -> None:
    n = next(_ids)
    fill = Fill(fill_id=f"f{n}", client_order_id=f"o{n}", instrument_id=intent.instrument_id,
                strategy_id=intent.strategy_id, side=intent.side, qty=intent.qty, price=price)
    pf.apply_fill(fill)
    gate.on_fill(fill)


def test_positions_exposure_and_all_in_with_the_real_ledger() -> None:
    gate, pf, _, _ = _world(max_open_positions=2, max_symbol_exposure=6_000.0, duplicate_guard=False)
    a = approved(gate.check(buy("AAA.SIM"), 100.0))  # all in, then capped at 6,000 notional
    assert a.qty == 60.0
    _fill(gate, pf, a, 100.0)
    b = approved(gate.check(sell("BBB.SIM"), 50.0))  # 4,000 of equity not at work
    assert b.qty == 80.0
    _fill(gate, pf, b, 50.0)
    assert pf.open_position_count() == 2
    denied(gate.check(buy("CCC.SIM", 1), 10.0), "max_positions")
    denied(gate.check(buy("AAA.SIM", 1), 100.0), "symbol_exposure")


def test_daily_loss_halt_follows_the_portfolios_day() -> None:
    gate, pf, clock, rec = _world(sizing={"mode": "fixed", "fixed_qty": 50.0}, max_daily_loss=200.0)
    a = approved(gate.check(buy("AAA.SIM"), 100.0))
    _fill(gate, pf, a, 100.0)
    pf.mark("AAA.SIM", 95.99)  # -200.50 today
    denied(gate.check(buy("BBB.SIM", 1), 10.0), "daily_loss")
    # 23:59 IST: still the same day for the portfolio and the gate.
    clock.advance_to(to_ns(dt.datetime(2026, 11, 23, 23, 59, tzinfo=IST)))
    denied(gate.check(buy("BBB.SIM", 1), 10.0), "daily_loss")
    # Midnight IST: the portfolio starts a new day, and the halt lifts (day_timezone defaults to it).
    clock.advance_to(to_ns(dt.datetime(2026, 11, 24, 0, 0, 1, tzinfo=IST)))
    pf.mark("AAA.SIM", 95.99)
    assert pf.daily_pnl() == 0.0
    approved(gate.check(buy("BBB.SIM", 1), 10.0))
    lifts = [e for e in rec.items if isinstance(e, RiskHaltEvent) and not e.halted]
    assert [e.source for e in lifts] == ["daily_loss"]


def test_drawdown_from_the_ledgers_peak() -> None:
    gate, pf, _, _ = _world(sizing={"mode": "fixed", "fixed_qty": 50.0}, max_drawdown_pct=5.0,
                            duplicate_guard=False)
    _fill(gate, pf, approved(gate.check(buy("AAA.SIM"), 100.0)), 100.0)
    pf.mark("AAA.SIM", 120.0)  # peak 11,000
    pf.mark("AAA.SIM", 109.0)  # 10,450: exactly 5 % below the peak
    approved(gate.check(buy("BBB.SIM", 1), 10.0))
    pf.mark("AAA.SIM", 108.99)
    d = denied(gate.check(buy("BBB.SIM", 1), 10.0), "max_drawdown")
    assert d.numbers["peak"] == 11_000.0
    assert gate.halted and gate.check(
        OrderIntent(strategy_id="s1", instrument_id="AAA.SIM", side=Side.SELL, action="close"),  # type: ignore[arg-type]
        108.99,
    ).__class__ is OrderIntent
