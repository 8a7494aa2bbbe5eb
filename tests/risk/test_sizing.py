"""Position sizing modes, the issue's worked example, and the fast rounding matching the model's."""

from __future__ import annotations

import math

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from omnid.clock import SimClock
from omnid.model import Instrument, IntentAction, OrderType, Side
from omnid.ports import ListRecorder
from omnid.risk import RiskConfig, RiskGate
from omnid.risk.rules import EXACT_STEPS, Rounder

from tests.risk.conftest import Harness, approved, buy, denied, sell
from tests.risk.fakes import FakePortfolio, fill_for, order_for


def test_fixed_quantity() -> None:
    h = Harness(sizing={"mode": "fixed", "fixed_qty": 3.0})
    assert approved(h.check(buy("AAA.SIM"), 100.0)).qty == 3.0


def test_explicit_quantity_is_kept() -> None:
    h = Harness(sizing={"mode": "fraction", "fraction_pct": 10.0})
    assert approved(h.check(buy("AAA.SIM", 7), 100.0)).qty == 7.0


def test_fraction_of_equity_rounds_down_to_lot() -> None:
    h = Harness(cash=20_000.0, sizing={"mode": "fraction", "fraction_pct": 10.0})
    assert approved(h.check(buy("AAA.SIM"), 33.0)).qty == 60.0  # 2000 / 33 = 60.6
    assert approved(h.check(buy("BTC.SIM"), 30_000.0)).qty == 0.066  # 0.0666 → lot 0.001


def test_issue_example_capital_20k_10pct_position_1pct_risk_10_positions() -> None:
    h = Harness(
        cash=20_000.0,
        sizing={"mode": "risk_per_trade", "fraction_pct": 10.0, "risk_per_trade_pct": 1.0},
        max_open_positions=10,
    )
    # A wide stop: risk decides. 1 % of 20,000 = 200 at risk; stop 20 away → 10 units.
    assert approved(h.check(buy("AAA.SIM", stop_loss=80.0), 100.0)).qty == 10.0
    # A tight stop: 200 / 5 = 40 units would be 4,000 notional; 10 % of equity caps it at 20.
    assert approved(h.check(buy("BBB.SIM", stop_loss=95.0), 100.0)).qty == 20.0
    # Shorts: the stop is above.
    assert approved(h.check(sell("CCC.SIM", stop_loss=110.0), 100.0)).qty == 20.0


def test_issue_example_at_most_ten_positions() -> None:
    instruments = {f"S{i}.SIM": Instrument(symbol=f"S{i}", venue="SIM") for i in range(11)}
    config = msgspec.convert(
        {"sizing": {"mode": "risk_per_trade", "fraction_pct": 10, "risk_per_trade_pct": 1},
         "max_open_positions": 10},
        RiskConfig,
    )
    pf = FakePortfolio(20_000.0, instruments)
    gate = RiskGate(config, clock=SimClock(0), portfolio=pf, instruments=instruments, recorder=ListRecorder())
    for i in range(10):
        out = approved(gate.check(buy(f"S{i}.SIM", stop_loss=98.0), 100.0))
        assert out.qty * 100.0 <= 20_000.0 * 0.10 + 1e-9  # never more than 10 % per position
        assert out.qty * 2.0 <= 200.0 + 1e-9  # never more than 1 % at risk
        order = order_for(out)
        gate.on_order_open(order)
        fill = fill_for(order, 100.0)
        pf.apply(fill)
        gate.on_fill(fill)
        gate.on_order_closed(order)
    d = denied(gate.check(buy("S10.SIM", stop_loss=98.0), 100.0), "max_positions")
    assert d.numbers == {"positions": 10.0, "limit": 10.0}


def test_risk_per_trade_uses_default_stop_pct() -> None:
    h = Harness(cash=20_000.0, sizing={"mode": "risk_per_trade", "fraction_pct": 0.0},
                exits={"stop_loss_pct": 2.0})
    assert approved(h.check(buy("AAA.SIM"), 100.0)).qty == 100.0  # 200 / 2


def test_risk_per_trade_needs_a_stop_on_the_right_side() -> None:
    h = Harness(sizing={"mode": "risk_per_trade"}, duplicate_guard=False)
    d = denied(h.check(buy("AAA.SIM"), 100.0), "sizing")
    assert "stop_loss" in d.message
    d = denied(h.check(buy("AAA.SIM", stop_loss=101.0), 100.0), "sizing")
    assert d.numbers == {"price": 100.0, "stop_loss": 101.0}


def test_all_in_with_commission_long_and_short() -> None:
    h = Harness(cash=10_000.0, sizing={"mode": "all_in", "commission_rate": 0.001})
    # 99 × 100 × 1.001 = 9,909.9 fits; 100 × 100 × 1.001 = 10,010 does not.
    assert approved(h.check(buy("AAA.SIM"), 100.0)).qty == 99.0
    assert approved(h.check(sell("BBB.SIM"), 100.0)).qty == 99.0


def test_all_in_never_levers_up_but_reverses_in_full() -> None:
    h = Harness(cash=10_000.0, sizing={"mode": "all_in"}, duplicate_guard=False)
    h.execute(buy("AAA.SIM", 50), 100.0)  # 5,000 at work, 5,000 free
    assert approved(h.check(buy("BBB.SIM"), 100.0)).qty == 50.0
    assert approved(h.check(buy("AAA.SIM"), 100.0)).qty == 50.0
    # A reversal: the close of the long frees its notional, so the short is sized on all equity.
    c = approved(h.check(sell("AAA.SIM", 50, action=IntentAction.CLOSE), 100.0))
    h.gate.on_order_open(order_for(c))
    assert approved(h.check(sell("AAA.SIM"), 100.0)).qty == 100.0


def test_all_in_exact_fit() -> None:
    h = Harness(cash=10_010.0, sizing={"mode": "all_in", "commission_rate": 0.001})
    assert approved(h.check(buy("AAA.SIM"), 100.0)).qty == 100.0


def test_all_in_sizes_on_the_limit_price() -> None:
    h = Harness(cash=10_000.0, sizing={"mode": "all_in"})
    out = approved(h.check(buy("AAA.SIM", order_type=OrderType.LIMIT, limit_price=50.0), 100.0))
    assert out.qty == 200.0


def test_sizing_without_equity_is_denied() -> None:
    h = Harness(cash=0.0, sizing={"mode": "all_in"})
    d = denied(h.check(buy("AAA.SIM"), 100.0), "sizing")
    assert d.numbers == {"equity": 0.0}


@settings(max_examples=300, deadline=None)
@given(
    tick=st.sampled_from([0.01, 0.05, 0.5, 0.0001, 1e-8, 5.0, 0.25]),
    lot=st.sampled_from([1.0, 0.001, 0.00001, 10.0, 0.1, 1e-8]),
    price=st.floats(0.0001, 1e6, allow_nan=False),
    qty=st.floats(0.0, 1e6, allow_nan=False),
)
def test_fast_rounding_equals_the_models(tick: float, lot: float, price: float, qty: float) -> None:
    inst = Instrument(symbol="X", venue="SIM", tick_size=tick, lot_size=lot)
    r = Rounder(inst)
    for side in (Side.BUY, Side.SELL, Side.NONE):
        assert r.price(price, side) == inst.round_price(price, side)
    assert r.qty(qty) == inst.round_qty(qty)
    assert math.copysign(1.0, r.qty(qty)) == 1.0


@settings(max_examples=400, deadline=None)
@given(
    step=st.sampled_from([0.001, 0.05, 0.3, 0.125, 1e-8, 0.00001, 2.5, 0.003]),
    steps=st.one_of(st.integers(1, 10**6), st.integers(EXACT_STEPS // 4, EXACT_STEPS * 4)),
    frac=st.floats(0.0, 0.999),
)
def test_integer_division_rounding_equals_round_to_places(step: float, steps: int, frac: float) -> None:
    # Rounder skips round(n * step, places) below EXACT_STEPS (including either side of it): the
    # float must be the one round() gives, for quantities and prices on every side.
    inst = Instrument(symbol="X", venue="SIM", tick_size=step, lot_size=step)
    r = Rounder(inst)
    assert r.lot_int > 0
    x = (steps + frac) * step
    n = math.floor(x / step + 1e-9)
    assert r.qty(x) == (round(n * step, r.lot_places) if n else 0.0)
    s = x / step
    assert r.price(x, Side.BUY) == round(math.floor(s + 1e-9) * step, r.tick_places)
    assert r.price(x, Side.SELL) == round(math.ceil(s - 1e-9) * step, r.tick_places)
    assert r.price(x, Side.NONE) == round(round(s) * step, r.tick_places)


def test_a_step_of_many_places_rounds_with_round() -> None:
    # 1/3 is the float of 0.3333333333333333 (16 places): three steps are past EXACT_STEPS already.
    r = Rounder(Instrument(symbol="X", venue="SIM", tick_size=0.1, lot_size=1 / 3))
    assert r.tick_int == 1 and r.tick_scale == 10
    assert r.lot_places == 16 and 3 * r.lot_int >= EXACT_STEPS
    assert r.qty(1.0) == round(3 * (1 / 3), 16)
    assert Rounder(Instrument(symbol="X", venue="SIM", tick_size=1e-30, lot_size=1.0)).tick_int == 0


@pytest.mark.parametrize("cfg", [
    {"sizing": {"mode": "kelly"}},
    {"sizing": {"fixed_qty": 0}},
    {"sizing": {"commission_rate": 1.5}},
])
def test_bad_sizing_config_is_rejected(cfg: dict[str, object]) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(cfg, RiskConfig)


def test_all_in_at_fill_marks_only_the_gates_own_all_in_market_entries() -> None:
    h = Harness(cash=10_000.0, sizing={"mode": "all_in", "at_fill": True})
    out = approved(h.check(buy("AAA.SIM"), 100.0))
    assert out.all_in and out.qty == 100.0  # the estimate at the decision; the broker sizes again
    assert not approved(h.check(buy("AAA.SIM", 5, strategy_id="s2"), 100.0)).all_in  # its own qty
    limit = approved(h.check(buy("AAA.SIM", order_type=OrderType.LIMIT, limit_price=99.0, strategy_id="s3"), 100.0))
    assert not limit.all_in  # a limit order keeps the size it was approved with
    plain = Harness(cash=10_000.0, sizing={"mode": "all_in"})
    assert not approved(plain.check(buy("AAA.SIM"), 100.0)).all_in


def test_a_strategy_cannot_ask_the_broker_to_size_past_the_gate() -> None:
    h = Harness(cash=10_000.0, sizing={"mode": "fixed", "fixed_qty": 2.0})
    assert not approved(h.check(buy("AAA.SIM", 3, all_in=True), 100.0)).all_in
    assert not approved(h.check(buy("AAA.SIM", all_in=True, strategy_id="s2"), 100.0)).all_in


def test_an_all_in_entry_a_cap_shrank_is_not_sized_again_at_the_fill() -> None:
    h = Harness(cash=10_000.0, sizing={"mode": "all_in", "at_fill": True}, max_symbol_exposure_pct=50.0)
    out = approved(h.check(buy("AAA.SIM"), 100.0))
    assert out.qty == 50.0 and not out.all_in  # the cap's size stands; the broker fills it as is
