"""A gate wired to an honest fake portfolio, a SimClock and a ListRecorder, the way the engine
wires the real ones (check → order → on_order_open → fill → on_fill → on_order_closed)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
import pytest
from omnid.calendar import NSE_EQUITY, to_ns
from omnid.clock import SimClock
from omnid.model import Instrument, IntentAction, OrderIntent, OrderType, Side
from omnid.ports import ListRecorder
from omnid.risk import RiskConfig, RiskDenial, RiskGate

from tests.risk.fakes import FakePortfolio, fill_for, order_for

IST = dt.timezone(dt.timedelta(hours=5, minutes=30))
# Monday 2026-11-23, 10:00 IST: inside the NSE session.
MONDAY_10_IST = to_ns(dt.datetime(2026, 11, 23, 10, 0, tzinfo=IST))

BTC = Instrument(symbol="BTC", venue="SIM", tick_size=0.01, lot_size=0.001, min_qty=0.002, min_notional=5.0)
AAA = Instrument(symbol="AAA", venue="SIM", tick_size=0.01, lot_size=1.0)
BBB = Instrument(symbol="BBB", venue="SIM", tick_size=0.01, lot_size=1.0)
CCC = Instrument(symbol="CCC", venue="SIM", tick_size=0.01, lot_size=1.0)
REL = Instrument(symbol="RELIANCE", venue="NSE", tick_size=0.05, lot_size=1.0, min_qty=1.0, calendar=NSE_EQUITY)
INSTRUMENTS = {i.id: i for i in (BTC, AAA, BBB, CCC, REL)}


class Harness:
    def __init__(self, cash: float = 100_000.0, start_ns: int = MONDAY_10_IST, **cfg: Any) -> None:
        self.config = msgspec.convert(cfg, RiskConfig)
        self.clock = SimClock(start_ns)
        self.pf = FakePortfolio(cash, INSTRUMENTS)
        self.rec = ListRecorder()
        self.gate = RiskGate(
            self.config, clock=self.clock, portfolio=self.pf, instruments=INSTRUMENTS, recorder=self.rec
        )
        self.emitted: list[OrderIntent] = []

    def install(self) -> None:
        self.gate.install(self.clock, self.emitted.append)

    def check(self, intent: OrderIntent, last: float) -> OrderIntent | RiskDenial:
        return self.gate.check(intent, last)

    def execute(self, intent: OrderIntent, last: float, fill_price: float | None = None) -> OrderIntent | RiskDenial:
        """Check, and if approved, submit and fill it completely at ``fill_price`` (default: last)."""
        out = self.gate.check(intent, last)
        if isinstance(out, OrderIntent):
            order = order_for(out)
            self.gate.on_order_open(order)
            order.transition(order.status.SUBMITTED, self.clock.now_ns())
            px = fill_price if fill_price is not None else (out.limit_price or last)
            fill = fill_for(order, px)
            self.pf.apply(fill)
            self.gate.on_fill(fill)
            order.apply_fill(fill.qty, fill.price, self.clock.now_ns())
            self.gate.on_order_closed(order)
        return out

    def advance(self, seconds: float) -> None:
        self.clock.advance_to(self.clock.now_ns() + round(seconds * 1e9))


def buy(iid: str = "AAA.SIM", qty: float = 0.0, **kw: Any) -> OrderIntent:
    return OrderIntent(strategy_id=kw.pop("strategy_id", "s1"), instrument_id=iid, side=Side.BUY, qty=qty, **kw)


def sell(iid: str = "AAA.SIM", qty: float = 0.0, **kw: Any) -> OrderIntent:
    return OrderIntent(strategy_id=kw.pop("strategy_id", "s1"), instrument_id=iid, side=Side.SELL, qty=qty, **kw)


def close(side: Side, iid: str = "AAA.SIM", qty: float = 0.0, **kw: Any) -> OrderIntent:
    return OrderIntent(strategy_id=kw.pop("strategy_id", "s1"), instrument_id=iid, side=side, qty=qty,
                       action=IntentAction.CLOSE, **kw)


def limit_buy(price: float, iid: str = "AAA.SIM", qty: float = 1.0, **kw: Any) -> OrderIntent:
    return buy(iid, qty, order_type=OrderType.LIMIT, limit_price=price, **kw)


def limit_sell(price: float, iid: str = "AAA.SIM", qty: float = 1.0, **kw: Any) -> OrderIntent:
    return sell(iid, qty, order_type=OrderType.LIMIT, limit_price=price, **kw)


def approved(out: OrderIntent | RiskDenial) -> OrderIntent:
    assert isinstance(out, OrderIntent), f"denied: {out}"
    return out


def denied(out: OrderIntent | RiskDenial, rule: str) -> RiskDenial:
    assert isinstance(out, RiskDenial), f"approved: {out}"
    assert out.rule == rule, out
    return out


@pytest.fixture
def h() -> Harness:
    return Harness(sizing={"mode": "fixed"})
