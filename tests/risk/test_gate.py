"""Every gate rule at its boundary: at the limit approved, one tick/unit over denied (rule + numbers)."""

from __future__ import annotations

import datetime as dt

import pytest
from omnid.calendar import to_ns
from omnid.errors import ConfigError
from omnid.model import Instrument, IntentAction, OrderIntent, OrderType, Side
from omnid.risk import RiskDenial, RiskGate, RiskHaltEvent

from tests.risk.conftest import (
    IST,
    Harness,
    approved,
    buy,
    close,
    denied,
    limit_buy,
    limit_sell,
    sell,
)
from tests.risk.fakes import order_for

# -- sanity ------------------------------------------------------------------------------------------


def test_unknown_instrument_is_denied_and_recorded(h: Harness) -> None:
    d = denied(h.check(buy("NOPE.SIM", 1), 100.0), "sanity")
    assert "NOPE.SIM" in d.message
    assert h.rec.items == [d]


@pytest.mark.parametrize("last", [0.0, -1.0, float("nan"), float("inf")])
def test_unusable_last_price_is_denied(h: Harness, last: float) -> None:
    denied(h.check(buy(qty=1), last), "sanity")


@pytest.mark.parametrize("qty", [-1.0, float("nan"), float("inf")])
def test_unusable_quantity_is_denied(h: Harness, qty: float) -> None:
    denied(h.check(buy(qty=qty), 100.0), "sanity")


def test_side_none_and_limit_without_price_are_denied(h: Harness) -> None:
    none = OrderIntent(strategy_id="s1", instrument_id="AAA.SIM", side=Side.NONE, qty=1)
    denied(h.check(none, 100.0), "sanity")
    denied(h.check(buy(qty=1, order_type=OrderType.LIMIT), 100.0), "sanity")
    denied(h.check(buy(qty=1, order_type=OrderType.STOP), 100.0), "sanity")


def test_enum_fields_given_as_strings_are_understood_or_denied(h: Harness) -> None:
    raw = OrderIntent(strategy_id="s1", instrument_id="AAA.SIM", side="buy", qty=1,  # type: ignore[arg-type]
                      order_type="limit", limit_price=100.019, action="open")  # type: ignore[arg-type]
    out = approved(h.check(raw, 100.0))
    assert (out.side, out.order_type, out.action, out.limit_price) == (
        Side.BUY, OrderType.LIMIT, IntentAction.OPEN, 100.01)
    bad = OrderIntent(strategy_id="s1", instrument_id="AAA.SIM", side="up", qty=1)  # type: ignore[arg-type]
    d = denied(h.check(bad, 100.0), "sanity")
    assert "'up'" in d.message


# -- rounding, minimums ----------------------------------------------------------------------------------


def test_limit_prices_round_buys_down_and_sells_up(h: Harness) -> None:
    b = approved(h.check(limit_buy(100.019), 100.0))
    s = approved(h.check(limit_sell(100.011), 100.0))
    assert b.limit_price == 100.01
    assert s.limit_price == 100.02
    assert b.qty == 1.0


def test_nse_tick_rounding(h: Harness) -> None:
    b = approved(h.check(limit_buy(2500.07, iid="RELIANCE.NSE"), 2500.0))
    s = approved(h.check(limit_sell(2500.07, iid="RELIANCE.NSE"), 2500.0))
    assert (b.limit_price, s.limit_price) == (2500.05, 2500.10)


def test_qty_rounds_down_to_lot(h: Harness) -> None:
    out = approved(h.check(buy("BTC.SIM", 0.0079), 1000.0))
    assert out.qty == 0.007


def test_qty_that_rounds_to_zero_is_denied(h: Harness) -> None:
    d = denied(h.check(buy(qty=0.99), 100.0), "rounding")
    assert d.numbers == {"qty": 0.99, "lot_size": 1.0}


def test_min_qty_boundary(h: Harness) -> None:
    assert approved(h.check(buy("BTC.SIM", 0.002), 5000.0)).qty == 0.002
    d = denied(h.check(buy("BTC.SIM", 0.001, strategy_id="s2"), 5000.0), "min_qty")
    assert d.numbers == {"qty": 0.001, "min_qty": 0.002}


def test_min_notional_boundary(h: Harness) -> None:
    # 0.002 × 2500 = 5.0 exactly: allowed; one tick lower in price is under 5.
    approved(h.check(buy("BTC.SIM", 0.002), 2500.0))
    d = denied(h.check(buy("BTC.SIM", 0.002, strategy_id="s2"), 2499.99), "min_notional")
    assert d.numbers["min_notional"] == 5.0
    assert d.numbers["notional"] == pytest.approx(4.99998)


# -- price collar ------------------------------------------------------------------------------------------


def test_price_collar_boundary() -> None:
    h = Harness(sizing={"mode": "fixed"}, price_collar_pct=5.0, duplicate_guard=False)
    approved(h.check(limit_buy(105.00), 100.0))
    d = denied(h.check(limit_buy(105.01), 100.0), "price_collar")
    assert d.numbers["away_pct"] == pytest.approx(5.01)
    assert d.numbers["collar_pct"] == 5.0
    approved(h.check(limit_sell(95.00), 100.0))
    denied(h.check(limit_sell(94.99), 100.0), "price_collar")
    # Market orders carry no price to collar.
    approved(h.check(buy(qty=1), 100.0))


def test_a_stray_price_on_a_market_order_is_dropped() -> None:
    h = Harness(sizing={"mode": "all_in"}, price_collar_pct=1.0)
    out = approved(h.check(buy(limit_price=1.0, stop_price=2.0), 100.0))
    assert (out.qty, out.limit_price, out.stop_price) == (1000.0, None, None)


def test_stop_order_rounds_its_stop_and_needs_one(h: Harness) -> None:
    out = approved(h.check(sell(qty=1, order_type=OrderType.STOP, stop_price=95.004), 100.0))
    assert (out.stop_price, out.limit_price) == (95.0, None)


# -- kill switch ---------------------------------------------------------------------------------------------


def test_kill_switch_halts_entries_not_exits(h: Harness) -> None:
    approved(h.execute(buy(qty=5), 100.0))
    h.gate.halt("operator says stop")
    assert h.gate.halted and h.gate.status().halts == {"kill_switch": "operator says stop"}
    d = denied(h.check(buy("BBB.SIM", 1), 100.0), "kill_switch")
    assert "operator says stop" in d.message
    out = approved(h.check(close(Side.SELL), 99.0))
    assert out.qty == 5.0 and out.action is IntentAction.CLOSE
    h.gate.resume("ok again")
    assert not h.gate.halted
    approved(h.check(buy("BBB.SIM", 1), 100.0))
    events = [e for e in h.rec.items if isinstance(e, RiskHaltEvent)]
    assert [(e.halted, e.source) for e in events] == [(True, "kill_switch"), (False, "kill_switch")]


def test_halt_with_flatten_returns_and_emits_closes(h: Harness) -> None:
    h.install()
    h.execute(buy(qty=5), 100.0)
    h.execute(sell("BBB.SIM", 3), 50.0)
    intents = h.gate.halt("flatten all", flatten=True)
    assert h.emitted == intents
    got = {(i.instrument_id, i.side, i.qty, i.action) for i in intents}
    assert got == {("AAA.SIM", Side.SELL, 5.0, IntentAction.CLOSE), ("BBB.SIM", Side.BUY, 3.0, IntentAction.CLOSE)}
    for i in intents:
        approved(h.check(i, 100.0))


# -- session window and cut-off --------------------------------------------------------------------------------


def _ist(hh: int, mm: int, ss: int = 0, day: int = 23) -> int:
    return to_ns(dt.datetime(2026, 11, day, hh, mm, ss, tzinfo=IST))


def test_session_window_boundaries() -> None:
    h = Harness(sizing={"mode": "fixed"}, duplicate_guard=False, start_ns=_ist(9, 14, 59))
    d = denied(h.check(buy("RELIANCE.NSE", 1), 2500.0), "session_window")
    assert d.numbers["next_open"] == _ist(9, 15)
    h.clock.advance_to(_ist(9, 15))
    approved(h.check(buy("RELIANCE.NSE", 1), 2500.0))
    h.clock.advance_to(_ist(15, 29, 59))
    approved(h.check(buy("RELIANCE.NSE", 1), 2500.0))
    h.clock.advance_to(_ist(15, 30))
    denied(h.check(buy("RELIANCE.NSE", 1), 2500.0), "session_window")
    # A crypto instrument trades on.
    approved(h.check(buy("AAA.SIM", 1), 100.0))


def test_weekend_is_outside_the_session() -> None:
    h = Harness(sizing={"mode": "fixed"}, start_ns=_ist(11, 0, day=22))  # Sunday
    denied(h.check(buy("RELIANCE.NSE", 1), 2500.0), "session_window")


def test_entry_cutoff_boundary_and_exits_pass() -> None:
    h = Harness(sizing={"mode": "fixed"}, duplicate_guard=False, entry_cutoff={"nse": "15:00"},
                start_ns=_ist(14, 59, 59))
    approved(h.execute(buy("RELIANCE.NSE", 2), 2500.0))
    h.clock.advance_to(_ist(15, 0))
    d = denied(h.check(buy("RELIANCE.NSE", 1), 2500.0), "entry_cutoff")
    assert d.numbers["cutoff"] == _ist(15, 0)
    out = approved(h.check(close(Side.SELL, "RELIANCE.NSE"), 2500.0))
    assert out.qty == 2.0
    # The next morning entries are allowed again.
    h.clock.advance_to(_ist(9, 30, day=24))
    approved(h.check(buy("RELIANCE.NSE", 1), 2500.0))


def test_unknown_calendar_in_cutoff_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"entry_cutoff\.lse"):
        Harness(entry_cutoff={"lse": "15:00"})


# -- max open positions -------------------------------------------------------------------------------------------


def test_max_positions_boundary() -> None:
    h = Harness(sizing={"mode": "fixed"}, max_open_positions=2, duplicate_guard=False)
    approved(h.execute(buy("AAA.SIM", 1), 100.0))
    approved(h.execute(sell("BBB.SIM", 1), 100.0))
    d = denied(h.check(buy("CCC.SIM", 1), 100.0), "max_positions")
    assert d.numbers == {"positions": 2.0, "limit": 2.0}
    # Adding to an open position is not a new one; exits always pass.
    approved(h.execute(buy("AAA.SIM", 1), 100.0))
    approved(h.execute(close(Side.SELL, "AAA.SIM"), 100.0))
    approved(h.execute(buy("CCC.SIM", 1), 100.0))


def test_max_positions_counts_orders_in_flight() -> None:
    h = Harness(sizing={"mode": "fixed"}, max_open_positions=1)
    out = approved(h.check(buy("AAA.SIM", 1), 100.0))

    order = order_for(out)
    h.gate.on_order_open(order)
    denied(h.check(buy("BBB.SIM", 1), 100.0), "max_positions")
    order.transition(order.status.SUBMITTED, 0)
    order.transition(order.status.CANCELLED, 0)
    h.gate.on_order_closed(order)
    approved(h.check(buy("BBB.SIM", 1), 100.0))


# -- exposure caps ---------------------------------------------------------------------------------------------------


def test_symbol_exposure_cap_boundary() -> None:
    h = Harness(sizing={"mode": "fixed"}, max_symbol_exposure=1000.0, duplicate_guard=False)
    approved(h.execute(buy("AAA.SIM", 6), 100.0))
    approved(h.check(buy("AAA.SIM", 4), 100.0))  # 10 × 100 = 1000: at the cap
    d = denied(h.check(buy("AAA.SIM", 5), 100.0), "symbol_exposure")
    assert d.numbers["exposure"] == 1100.0 and d.numbers["cap"] == 1000.0 and d.numbers["position"] == 6.0
    # Reducing is always fine, and a short is capped the same way.
    approved(h.check(sell("AAA.SIM", 6), 100.0))
    approved(h.check(sell("BBB.SIM", 10), 100.0))
    denied(h.check(sell("BBB.SIM", 11), 100.0), "symbol_exposure")


def test_symbol_exposure_pct_of_equity() -> None:
    h = Harness(cash=20_000.0, sizing={"mode": "fixed"}, max_symbol_exposure_pct=10.0)
    approved(h.check(buy("AAA.SIM", 20), 100.0))
    denied(h.check(buy("BBB.SIM", 21), 100.0), "symbol_exposure")


def test_gross_exposure_cap_boundary() -> None:
    h = Harness(sizing={"mode": "fixed"}, max_gross_exposure=3000.0, duplicate_guard=False)
    approved(h.execute(buy("AAA.SIM", 10), 100.0))
    approved(h.execute(sell("BBB.SIM", 10), 100.0))
    approved(h.check(buy("CCC.SIM", 10), 100.0))
    d = denied(h.check(buy("CCC.SIM", 11), 100.0), "gross_exposure")
    assert d.numbers["exposure"] == 3100.0 and d.numbers["cap"] == 3000.0


def test_gross_cap_counts_orders_in_flight() -> None:
    h = Harness(sizing={"mode": "fixed"}, max_gross_exposure=1000.0)

    out = approved(h.check(buy("AAA.SIM", 6), 100.0))
    h.gate.on_order_open(order_for(out))
    h.gate.note_price("AAA.SIM", 100.0)
    approved(h.check(buy("BBB.SIM", 4), 100.0))
    denied(h.check(buy("CCC.SIM", 5), 100.0), "gross_exposure")


def test_auto_sized_entry_shrinks_to_the_cap() -> None:
    h = Harness(cash=100_000.0, max_symbol_exposure=1_000.0)  # all_in would be 1000 units
    out = approved(h.check(buy("AAA.SIM"), 100.0))
    assert out.qty == 10.0
    h2 = Harness(cash=100_000.0, max_gross_exposure=1_050.0, duplicate_guard=False)
    h2.execute(buy("AAA.SIM", 5), 100.0)
    assert approved(h2.check(buy("BBB.SIM"), 100.0)).qty == 5.0


# -- daily loss and drawdown ------------------------------------------------------------------------------------------


def test_daily_loss_boundary_halts_entries_and_lifts_next_day() -> None:
    h = Harness(cash=10_000.0, sizing={"mode": "fixed"}, max_daily_loss=500.0, duplicate_guard=False,
                day_timezone="Asia/Kolkata")
    approved(h.execute(buy("AAA.SIM", 100), 100.0))
    h.pf.mark("AAA.SIM", 95.0)  # -500.00: at the limit
    approved(h.check(buy("BBB.SIM", 1), 100.0))
    h.pf.mark("AAA.SIM", 94.99)  # -501
    d = denied(h.check(buy("BBB.SIM", 1), 100.0), "daily_loss")
    assert d.numbers["daily_pnl"] == pytest.approx(-501.0) and d.numbers["limit"] == 500.0
    assert h.gate.halted
    # Recovering intraday does not lift it; exits still pass.
    h.pf.mark("AAA.SIM", 100.0)
    denied(h.check(buy("BBB.SIM", 1), 100.0), "daily_loss")
    approved(h.check(close(Side.SELL, "AAA.SIM"), 100.0))
    # The next local day (Asia/Kolkata) it lifts by itself.
    h.clock.advance_to(to_ns(dt.datetime(2026, 11, 24, 0, 0, tzinfo=IST)))
    h.pf.start_day()
    approved(h.check(buy("BBB.SIM", 1), 100.0))
    assert not h.gate.halted
    events = [(e.halted, e.source) for e in h.rec.items if isinstance(e, RiskHaltEvent)]
    assert events == [(True, "daily_loss"), (False, "daily_loss")]


def test_daily_loss_pct_boundary() -> None:
    h = Harness(cash=10_000.0, sizing={"mode": "fixed"}, max_daily_loss_pct=2.0, duplicate_guard=False)
    h.execute(buy("AAA.SIM", 100), 100.0)
    h.pf.mark("AAA.SIM", 98.0)  # -200 = 2 %
    approved(h.check(buy("BBB.SIM", 1), 100.0))
    h.pf.mark("AAA.SIM", 97.99)
    d = denied(h.check(buy("BBB.SIM", 1), 100.0), "daily_loss")
    assert d.numbers["limit"] == pytest.approx(200.0)


def test_drawdown_boundary_holds_until_resumed() -> None:
    h = Harness(cash=20_000.0, sizing={"mode": "fixed"}, max_drawdown_pct=10.0, duplicate_guard=False)
    h.execute(buy("AAA.SIM", 100), 100.0)
    h.pf.mark("AAA.SIM", 80.0)  # equity 18,000: 10 % below the 20,000 peak
    approved(h.check(buy("BBB.SIM", 1), 100.0))
    h.pf.mark("AAA.SIM", 79.99)
    d = denied(h.check(buy("BBB.SIM", 1), 100.0), "max_drawdown")
    assert d.numbers["peak"] == 20_000.0 and d.numbers["drawdown_pct"] == pytest.approx(10.005)
    h.clock.advance_to(h.clock.now_ns() + 2 * 86_400 * 10**9)
    denied(h.check(buy("BBB.SIM", 1), 100.0), "max_drawdown")
    h.gate.resume("reviewed", source="max_drawdown")
    h.pf.mark("AAA.SIM", 100.0)
    approved(h.check(buy("BBB.SIM", 1), 100.0))


def test_loss_halt_flattens_when_configured() -> None:
    h = Harness(cash=10_000.0, sizing={"mode": "fixed"}, max_daily_loss=100.0, flatten_on_halt=True,
                limits_check_seconds=1.0)
    h.install()
    h.execute(buy("AAA.SIM", 50), 100.0)
    h.pf.mark("AAA.SIM", 97.0)  # -150
    h.advance(1.0)  # the periodic check fires
    assert [(i.instrument_id, i.side, i.qty, i.action) for i in h.emitted] == [
        ("AAA.SIM", Side.SELL, 50.0, IntentAction.CLOSE)
    ]
    assert any(isinstance(e, RiskHaltEvent) and e.source == "daily_loss" for e in h.rec.items)
    approved(h.check(h.emitted[0], 97.0))


# -- rate limit -------------------------------------------------------------------------------------------------------


def test_rate_limit_boundary_on_the_clock() -> None:
    h = Harness(sizing={"mode": "fixed"}, max_orders=3, rate_window_seconds=1.0, duplicate_guard=False)
    for _ in range(3):
        approved(h.check(buy(qty=1), 100.0))
    h.advance(0.999)
    d = denied(h.check(buy(qty=1), 100.0), "rate_limit")
    assert d.numbers == {"orders": 3.0, "limit": 3.0, "window_s": 1.0}
    h.advance(0.001)  # the first three are now exactly one window old
    approved(h.check(buy(qty=1), 100.0))


def test_rate_limit_never_blocks_an_exit() -> None:
    h = Harness(sizing={"mode": "fixed"}, max_orders=1, duplicate_guard=False)
    approved(h.execute(buy(qty=2), 100.0))
    denied(h.check(buy(qty=1), 100.0), "rate_limit")
    approved(h.check(close(Side.SELL), 100.0))


# -- duplicate guard --------------------------------------------------------------------------------------------------


def test_duplicate_while_open_then_allowed_after_close(h: Harness) -> None:

    out = approved(h.check(buy(qty=1), 100.0))
    order = order_for(out)
    h.gate.on_order_open(order)
    d = denied(h.check(buy(qty=1), 100.0), "duplicate")
    assert d.numbers == {"open_orders": 1.0}
    approved(h.check(buy(qty=1, strategy_id="other"), 100.0))
    approved(h.check(sell(qty=1), 100.0))
    order.transition(order.status.SUBMITTED, 0)
    order.transition(order.status.CANCELLED, 0)
    h.gate.on_order_closed(order)
    approved(h.check(buy(qty=1), 100.0))


def test_duplicate_window_boundary() -> None:
    h = Harness(sizing={"mode": "fixed"}, duplicate_window_seconds=2.0)
    approved(h.execute(buy(qty=1), 100.0))
    h.advance(1.999)
    d = denied(h.check(buy(qty=1), 100.0), "duplicate")
    assert d.numbers["window_s"] == 2.0 and d.numbers["age_s"] == pytest.approx(1.999)
    h.advance(0.001)
    approved(h.check(buy(qty=1), 100.0))


def test_reversal_close_then_open_is_not_a_duplicate(h: Harness) -> None:

    h.execute(buy(qty=10), 100.0)
    c = approved(h.check(close(Side.SELL), 100.0))
    h.gate.on_order_open(order_for(c))
    o = approved(h.check(sell(qty=10), 100.0))
    assert (c.action, c.qty, o.action, o.qty) == (IntentAction.CLOSE, 10.0, IntentAction.OPEN, 10.0)


# -- closes ------------------------------------------------------------------------------------------------------------


def test_close_is_sized_to_the_position_and_never_flips(h: Harness) -> None:
    h.execute(sell(qty=7), 100.0)
    assert approved(h.check(close(Side.BUY, qty=3), 100.0)).qty == 3.0
    assert approved(h.check(close(Side.BUY, qty=30, strategy_id="s2"), 100.0)).qty == 7.0
    d = denied(h.check(close(Side.SELL, strategy_id="s3"), 100.0), "close_position")
    assert d.numbers == {"position": -7.0}
    denied(h.check(close(Side.SELL, "BBB.SIM"), 100.0), "close_position")


def test_close_counts_a_close_already_in_flight(h: Harness) -> None:

    h.execute(buy(qty=5), 100.0)
    first = approved(h.check(close(Side.SELL), 100.0))
    h.gate.on_order_open(order_for(first))
    denied(h.check(close(Side.SELL, strategy_id="risk"), 100.0), "close_position")


# -- config -------------------------------------------------------------------------------------------------------------


def test_status_counts(h: Harness) -> None:
    h.execute(buy(qty=1), 100.0)
    h.check(buy("NOPE.SIM", 1), 1.0)
    st = h.gate.status()
    assert (st.approvals, st.denials, st.open_positions, st.pending_orders, st.halted) == (1, 1, 1, 0, False)


def test_denials_are_recorded_in_order(h: Harness) -> None:
    h.check(buy(qty=0.5), 100.0)
    h.check(buy("X.SIM", 1), 100.0)
    assert [d.rule for d in h.rec.items if isinstance(d, RiskDenial)] == ["rounding", "sanity"]


def test_instrument_mapping_is_copied() -> None:
    inst = {"AAA.SIM": Instrument(symbol="AAA", venue="SIM")}
    from omnid.clock import SimClock
    from omnid.ports import NullRecorder
    from omnid.risk import RiskConfig

    from tests.risk.fakes import FakePortfolio

    g = RiskGate(RiskConfig(), clock=SimClock(0), portfolio=FakePortfolio(1000.0, inst),
                 instruments=inst, recorder=NullRecorder())
    inst.clear()
    assert isinstance(g.check(buy(qty=1), 10.0), OrderIntent)


def test_nan_equity_leaves_no_room_under_a_pct_cap() -> None:
    h = Harness(sizing={"mode": "fixed"}, max_symbol_exposure_pct=50.0)
    h.pf._cash = float("nan")
    denied(h.check(buy(qty=1), 100.0), "symbol_exposure")
    assert isinstance(Harness(sizing={"mode": "all_in"}).check(buy(qty=0), 100.0), OrderIntent)
    h2 = Harness(sizing={"mode": "all_in"})
    h2.pf._cash = float("nan")
    denied(h2.check(buy(qty=0), 100.0), "sizing")


def test_nan_pnl_fails_closed_on_the_loss_limit() -> None:
    h = Harness(sizing={"mode": "fixed"}, max_daily_loss=100.0)
    h.execute(buy(qty=1), 100.0)
    h.pf.mark("AAA.SIM", float("nan"))
    d = denied(h.check(buy("BBB.SIM", 1), 100.0), "daily_loss")
    assert "nan" in d.message
