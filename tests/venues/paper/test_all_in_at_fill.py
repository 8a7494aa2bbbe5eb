"""All-in entries sized at the fill (``[risk.sizing] at_fill``): the paper broker replaces the
estimate made at the decision with the most lots the free funds cover at the fill price plus
commission, as backtesting.py sizes a relative order; the order manager takes that size."""

from __future__ import annotations

import sys

import msgspec
import numpy as np
import pytest
from omnid.clock import SimClock
from omnid.config import OmnidConfig
from omnid.engine import build_engine
from omnid.model import Instrument, IntentAction, OrderIntent, OrderStatus, Side, Trade
from omnid.ports import NullRecorder
from omnid.risk.config import RiskConfig, SizingConfig
from omnid.sim.runner import BacktestSpec, run_backtest
from omnid.sim.synthetic import generate_ticks
from omnid.venues.paper import PaperBroker, PaperConfig

from tests.venues.paper.test_broker import IID, T0, Events, bar, order, trade

EPS = sys.float_info.epsilon


def make(free: float, *, lot: float = 1.0, min_notional: float = 0.0, **cfg: object) -> tuple[PaperBroker, Events]:
    clock = SimClock(T0)
    inst = Instrument(symbol="BTC", venue="SIM", tick_size=0.0, lot_size=lot, min_notional=min_notional)
    asked: list[tuple[str, int, float]] = []

    def funds(iid: str, sign: int, price: float) -> float:
        asked.append((iid, sign, price))
        return free

    broker = PaperBroker(clock, msgspec.convert(cfg, PaperConfig), instruments=[inst], funds=funds)
    ev = Events()
    broker.bind(ev)
    broker.asked = asked  # type: ignore[attr-defined]
    return broker, ev


def all_in(side: Side, estimate: float) -> object:
    o = order(side, estimate)
    o.all_in = True
    return o


def test_sized_at_the_fill_price_like_backtesting_py() -> None:
    b, ev = make(10_000.0, commission_rate=0.002)
    o = all_in(Side.BUY, 95.0)  # the estimate at the decision's close of ~104.8
    b.submit(o)
    b.on_trade(trade(97.3, ts=T0 + 1))  # the open gapped down: more units fit
    expected = float((10_000.0 * (1 - EPS)) // (97.3 + ((1 - EPS) * 97.3 * 0.002) / (1 - EPS)))
    assert expected == 102.0
    assert [(f.qty, f.price) for f in ev.fills] == [(expected, 97.3)]
    resized = [u for u in ev.updates if u.qty]
    assert [(u.status, u.qty) for u in resized] == [(OrderStatus.ACCEPTED, expected)]
    assert b.asked == [(IID, 1, 97.3)]  # type: ignore[attr-defined]
    assert 102 * 97.3 * 1.002 <= 10_000.0 < 103 * 97.3 * 1.002


def test_a_short_is_sized_the_same_way_and_bars_fill_at_the_open() -> None:
    b, ev = make(5_000.0)
    b.submit(all_in(Side.SELL, 10.0))
    b.on_bar(bar(T0 + 60 * 10**9, 240.0, 250.0, 230.0, 245.0))
    assert [(f.side, f.qty, f.price) for f in ev.fills] == [(Side.SELL, 20.0, 240.0)]


def test_fractional_lots_round_down_to_the_lot() -> None:
    b, ev = make(1_000.0, lot=0.001, commission_rate=0.002)
    b.submit(all_in(Side.BUY, 1.0))
    b.on_trade(trade(333.0, ts=T0 + 1))
    (f,) = ev.fills
    assert f.qty == 2.997  # 1000 / (333 * 1.002) = 2.99700..., down to the lot
    assert f.qty * 333.0 * 1.002 <= 1_000.0 < (f.qty + 0.001) * 333.0 * 1.002


@pytest.mark.parametrize(("free", "min_notional", "why"), [
    (50.0, 0.0, "do not buy one lot"),
    (0.0, 0.0, "do not buy one lot"),
    (-20.0, 0.0, "do not buy one lot"),
    (float("nan"), 0.0, "do not buy one lot"),
    (500.0, 1_000.0, "do not buy one lot"),  # 4 units of 100 are under the minimum notional
])
def test_no_lot_fits_cancels_the_order_and_says_why(free: float, min_notional: float, why: str) -> None:
    b, ev = make(free, min_notional=min_notional)
    o = all_in(Side.BUY, 3.0)
    b.submit(o)
    b.on_trade(trade(100.0, ts=T0 + 1))
    assert ev.fills == []
    last = ev.updates[-1]
    assert last.status is OrderStatus.CANCELLED and why in last.reason and IID in last.reason
    assert b.working_orders() == []
    b.on_trade(trade(99.0, ts=T0 + 2))  # nothing left to fill
    assert ev.fills == []


def test_without_a_funds_source_or_the_flag_the_quantity_is_kept() -> None:
    b, ev = make(10_000.0)
    b.funds = None
    b.submit(all_in(Side.BUY, 7.0))
    plain = order(Side.BUY, 3.0)
    b2, ev2 = make(10_000.0)
    b2.submit(plain)
    b.on_trade(trade(100.0, ts=T0 + 1))
    b2.on_trade(trade(100.0, ts=T0 + 1))
    assert [f.qty for f in ev.fills] == [7.0] and [f.qty for f in ev2.fills] == [3.0]
    assert b2.asked == []  # type: ignore[attr-defined]


def test_partial_fills_work_the_resized_quantity() -> None:
    b, ev = make(10_000.0, limit_by_volume=True, participation=0.5)
    b.submit(all_in(Side.BUY, 50.0))
    b.on_trade(trade(100.0, size=60.0, ts=T0 + 1))  # 100 fit; 30 may fill against this print
    b.on_trade(trade(120.0, size=1_000.0, ts=T0 + 2))  # the rest, not sized again at the new price
    assert [(f.qty, f.price) for f in ev.fills] == [(30.0, 100.0), (69.0, 120.0)]
    assert b.asked == [(IID, 1, 100.0)]  # type: ignore[attr-defined]


def _engine(cash: float) -> tuple[object, SimClock]:
    clock = SimClock(T0)
    cfg = OmnidConfig(risk=RiskConfig(sizing=SizingConfig(mode="all_in", commission_rate=0.001, at_fill=True)))
    inst = Instrument(symbol="BTC", venue="SIM", tick_size=0.0, lot_size=1.0)
    eng = build_engine(cfg, clock=clock, recorder=NullRecorder(), cash=cash,
                       paper=PaperConfig(venue="SIM", commission_rate=0.001, limit_by_volume=False), strategies=[],
                       instruments=[inst])
    return eng, clock


def test_the_order_manager_takes_the_venue_size_and_the_books_agree() -> None:
    eng, clock = _engine(10_000.0)
    eng.on_trade(Trade(IID, 100.0, 1.0, Side.NONE, T0, T0))  # the decision's last price
    intent = OrderIntent(strategy_id="manual", instrument_id=IID, side=Side.BUY, action=IntentAction.OPEN,
                         reason="test entry")
    eng._one(intent)  # type: ignore[attr-defined]
    (o,) = eng.manager.open_orders()  # type: ignore[attr-defined]
    assert o.all_in and o.qty == 99.0  # the estimate at 100: 10,000 / 100.1
    clock.advance_to(T0 + 1)
    eng.on_trade(Trade(IID, 80.0, 1.0, Side.NONE, T0 + 1, T0 + 1))  # gapped down: more fit
    assert o.status is OrderStatus.FILLED and o.qty == o.filled_qty == 124.0
    assert eng.manager.issues == 0  # type: ignore[attr-defined]
    pf = eng.portfolio  # type: ignore[attr-defined]
    assert pf.position_qty(IID) == 124.0
    assert 0.0 <= pf.cash() < 80.0 * 1.001  # all in: less than one more unit left
    assert eng.gate._pend == {}  # type: ignore[attr-defined]  # nothing left in flight


def test_at_fill_needs_all_in_sizing() -> None:
    with pytest.raises(ValueError, match="at_fill needs mode"):
        SizingConfig(mode="fraction", at_fill=True)


def test_tick_backtests_size_at_the_next_tick_and_never_lever_up() -> None:
    ticks = generate_ticks(20_000, seed=11)
    spec = BacktestSpec(data="<synthetic>", strategy="sma_cross",
                        params={"kind": "ema", "fast": 10, "slow": 50, "mode": "long_only"},
                        cash=10_000.0, commission=0.001)
    res = run_backtest(spec, data=ticks)
    entries = res.trades
    assert len(entries) > 10
    cash = 10_000.0
    px = ticks.price
    for t in entries:
        # The fill is the tick after the decision, and the size fits that price exactly.
        assert t.qty == float((cash * (1 - EPS)) // (t.entry_price + ((1 - EPS) * t.entry_price * 0.001) / (1 - EPS)))
        assert np.any(px == t.entry_price)
        if t.open:
            break
        cash += t.pnl


def test_a_fixed_fee_per_order_comes_off_the_budget_once() -> None:
    b, ev = make(1_000.0, commission_per_order=5.0, commission_per_unit=0.1)
    b.submit(all_in(Side.BUY, 1.0))
    b.on_trade(trade(99.0, ts=T0 + 1))
    (f,) = ev.fills
    assert f.qty == 10.0  # 10 * (99 + 0.1) + 5 = 996 <= 1000; 11 would cost 1095.1
    assert f.commission == pytest.approx(5.0 + 10 * 0.1)


def test_a_failing_funds_source_cancels_rather_than_guessing() -> None:
    b, ev = make(10_000.0)

    def broken(iid: str, sign: int, price: float) -> float:
        raise RuntimeError("portfolio unavailable")

    b.funds = broken
    b.submit(all_in(Side.BUY, 5.0))
    b.on_trade(trade(100.0, ts=T0 + 1))
    assert ev.fills == [] and ev.updates[-1].status is OrderStatus.CANCELLED
    assert "free funds nan" in ev.updates[-1].reason
