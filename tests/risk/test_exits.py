"""Managed exits: stop-loss, take-profit, trailing stops, and square-off at 15:20 IST on a SimClock."""

from __future__ import annotations

import datetime as dt

import pytest
from omnid.calendar import to_ns
from omnid.model import IntentAction, OrderIntent, Position, Side

from tests.risk.conftest import IST, Harness, approved, buy, close, denied, sell
from tests.risk.fakes import fill_for, order_for


def _ist(hh: int, mm: int, ss: int = 0, day: int = 23) -> int:
    return to_ns(dt.datetime(2026, 11, day, hh, mm, ss, tzinfo=IST))


def test_no_managed_position_means_no_work(h: Harness) -> None:
    h.execute(buy(qty=1), 100.0)  # no levels configured or given: unmanaged
    assert h.gate.exits.managed_count == 0
    assert h.gate.exits.on_price("AAA.SIM", 1.0, 0) is None
    assert h.gate.exits.on_price("ZZZ.SIM", 1.0, 0) is None


def test_stop_loss_from_the_intent_fires_once_at_the_level(h: Harness) -> None:
    h.execute(buy(qty=4, stop_loss=95.0), 100.0)
    ex = h.gate.exits
    assert ex.on_price("AAA.SIM", 95.01, 1) is None
    out = ex.on_price("AAA.SIM", 95.0, 2)
    assert isinstance(out, OrderIntent)
    assert (out.side, out.qty, out.action, out.strategy_id) == (Side.SELL, 4.0, IntentAction.CLOSE, "s1")
    assert out.reason.startswith("stop-loss")
    assert out.numbers["level"] == 95.0 and out.numbers["entry"] == 100.0 and out.ts_event == 2
    assert ex.on_price("AAA.SIM", 90.0, 3) is None  # its close is out: quiet
    # The close goes through the gate and flattens; the managed position disappears.
    h.execute(out, 95.0)
    assert ex.managed_count == 0


def test_exit_denied_for_bad_input_rearms(h: Harness) -> None:
    h.execute(buy(qty=4, stop_loss=95.0), 100.0)
    out = h.gate.exits.on_price("AAA.SIM", 94.0, 1)
    assert out is not None
    denied(h.check(out, float("nan")), "sanity")  # no usable last price yet
    again = h.gate.exits.on_price("AAA.SIM", 94.0, 2)
    assert again is not None
    approved(h.check(again, 94.0))


def test_exit_denied_because_a_close_is_in_flight_does_not_repeat(h: Harness) -> None:
    h.execute(buy(qty=4, stop_loss=95.0), 100.0)
    square_off = approved(h.check(close(Side.SELL, strategy_id="risk"), 100.0))
    order = order_for(square_off)
    h.gate.on_order_open(order)
    out = h.gate.exits.on_price("AAA.SIM", 94.0, 1)
    assert out is not None
    denied(h.check(out, 94.0), "close_position")
    assert h.gate.exits.on_price("AAA.SIM", 93.0, 2) is None  # no denial on every tick
    order.transition(order.status.SUBMITTED, 0)
    order.transition(order.status.CANCELLED, 0)
    h.gate.on_order_closed(order)  # the other close failed: the stop is live again
    assert h.gate.exits.on_price("AAA.SIM", 93.0, 3) is not None


def test_close_order_cancelled_rearms(h: Harness) -> None:
    h.execute(buy(qty=4, stop_loss=95.0), 100.0)
    out = h.gate.exits.on_price("AAA.SIM", 94.0, 1)
    assert out is not None
    order = order_for(approved(h.check(out, 94.0)))
    h.gate.on_order_open(order)
    order.transition(order.status.SUBMITTED, 0)
    order.transition(order.status.CANCELLED, 0)
    h.gate.on_order_closed(order)
    assert h.gate.exits.on_price("AAA.SIM", 94.0, 2) is not None


def test_take_profit_from_config_pct_for_a_short() -> None:
    h = Harness(sizing={"mode": "fixed"}, exits={"take_profit_pct": 2.0, "stop_loss_pct": 1.0})
    h.execute(sell(qty=3), 100.0)
    lv = h.gate.exits.levels("AAA.SIM")
    assert lv is not None and lv.take_profit == 98.0 and lv.stop_loss == 101.0
    assert h.gate.exits.on_price("AAA.SIM", 98.01, 1) is None
    out = h.gate.exits.on_price("AAA.SIM", 98.0, 2)
    assert out is not None and out.side is Side.BUY and out.reason.startswith("take-profit")


def test_stop_loss_for_a_short_from_config() -> None:
    h = Harness(sizing={"mode": "fixed"}, exits={"stop_loss_pct": 1.0})
    h.execute(sell(qty=3), 100.0)
    assert h.gate.exits.on_price("AAA.SIM", 100.99, 1) is None
    out = h.gate.exits.on_price("AAA.SIM", 101.0, 2)
    assert out is not None and out.side is Side.BUY and out.numbers["level"] == 101.0


def test_trailing_stop_follows_the_best_price_long() -> None:
    h = Harness(sizing={"mode": "fixed"}, exits={"trailing_stop_pct": 5.0})
    h.execute(buy(qty=2), 100.0)
    ex = h.gate.exits
    lv = ex.levels("AAA.SIM")
    assert lv is not None and lv.trailing_stop == pytest.approx(95.0)
    assert ex.on_price("AAA.SIM", 104.0, 1) is None
    assert ex.levels("AAA.SIM").trailing_stop == pytest.approx(98.8)  # type: ignore[union-attr]
    assert ex.on_price("AAA.SIM", 110.0, 2) is None
    assert ex.levels("AAA.SIM").trailing_stop == pytest.approx(104.5)  # type: ignore[union-attr]
    assert ex.on_price("AAA.SIM", 105.0, 3) is None  # a pullback does not lower it
    assert ex.levels("AAA.SIM").trailing_stop == pytest.approx(104.5)  # type: ignore[union-attr]
    out = ex.on_price("AAA.SIM", 104.5, 4)
    assert out is not None and out.reason.startswith("trailing-stop") and out.numbers["best"] == 110.0


def test_trailing_stop_short() -> None:
    h = Harness(sizing={"mode": "fixed"}, exits={"trailing_stop_pct": 10.0})
    h.execute(sell(qty=2), 100.0)
    ex = h.gate.exits
    assert ex.on_price("AAA.SIM", 80.0, 1) is None  # trail now 88
    assert ex.on_price("AAA.SIM", 87.99, 2) is None
    out = ex.on_price("AAA.SIM", 88.0, 3)
    assert out is not None and out.side is Side.BUY and out.numbers["level"] == pytest.approx(88.0)


def test_adding_to_a_position_moves_pct_levels_to_the_new_average() -> None:
    h = Harness(sizing={"mode": "fixed"}, exits={"stop_loss_pct": 10.0}, duplicate_guard=False)
    h.execute(buy(qty=1), 100.0)
    h.execute(buy(qty=1), 80.0)
    lv = h.gate.exits.levels("AAA.SIM")
    assert lv is not None and lv.entry == 90.0 and lv.stop_loss == pytest.approx(81.0) and lv.qty == 2.0


def test_partial_close_keeps_levels_and_full_close_forgets(h: Harness) -> None:
    h.execute(buy(qty=4, stop_loss=90.0, take_profit=120.0), 100.0)
    order = order_for(approved(h.check(sell(qty=1, action=IntentAction.CLOSE), 100.0)))
    h.gate.on_order_open(order)
    fill = fill_for(order, 101.0)
    h.pf.apply(fill)
    h.gate.on_fill(fill)
    lv = h.gate.exits.levels("AAA.SIM")
    assert lv is not None and (lv.qty, lv.stop_loss, lv.take_profit) == (3.0, 90.0, 120.0)
    out = h.gate.exits.on_price("AAA.SIM", 120.0, 5)
    assert out is not None and out.qty == 3.0


def test_unfilled_entry_does_not_leave_its_levels_behind(h: Harness) -> None:
    order = order_for(approved(h.check(buy(qty=2, stop_loss=90.0), 100.0)))
    h.gate.on_order_open(order)
    order.transition(order.status.SUBMITTED, 0)
    order.transition(order.status.CANCELLED, 0)
    h.gate.on_order_closed(order)
    h.execute(buy(qty=2, strategy_id="s2"), 100.0)  # no levels of its own, none configured
    assert h.gate.exits.levels("AAA.SIM") is None


def test_adopted_position_gets_default_levels() -> None:
    h = Harness(sizing={"mode": "fixed"}, exits={"stop_loss_pct": 2.0, "trailing_stop_pct": 5.0})
    h.gate.exits.adopt(Position(instrument_id="AAA.SIM", qty=-3.0, avg_price=50.0, last_price=48.0))
    lv = h.gate.exits.levels("AAA.SIM")
    assert lv is not None and lv.qty == -3.0 and lv.stop_loss == 51.0 and lv.trailing_stop == pytest.approx(50.4)
    assert h.gate.exits.on_price("AAA.SIM", 50.39, 1) is None
    out = h.gate.exits.on_price("AAA.SIM", 50.41, 2)
    assert out is not None and out.side is Side.BUY and out.qty == 3.0 and out.strategy_id == "risk"


# -- square-off -------------------------------------------------------------------------------------------------------


def test_square_off_fires_at_1520_ist_on_a_simclock() -> None:
    h = Harness(sizing={"mode": "fixed"}, start_ns=_ist(9, 30), entry_cutoff={"nse": "15:00"},
                exits={"square_off": {"nse": "15:20"}})
    h.install()
    assert "risk.square_off.nse" in h.clock.timer_names()
    h.execute(buy("RELIANCE.NSE", 10), 2500.0)
    h.execute(buy("AAA.SIM", 1), 100.0)  # a 24/7 instrument is not squared off
    h.clock.advance_to(_ist(15, 19, 59))
    assert h.emitted == []
    h.clock.advance_to(_ist(15, 20))
    assert len(h.emitted) == 1
    out = h.emitted[0]
    assert (out.instrument_id, out.side, out.qty, out.action) == ("RELIANCE.NSE", Side.SELL, 10.0, IntentAction.CLOSE)
    assert "15:20 Asia/Kolkata" in out.reason and out.ts_event == _ist(15, 20)
    # Past the 15:00 entry cut-off the exit still passes the gate, and flattens.
    denied(h.check(buy("RELIANCE.NSE", 1), 2500.0), "entry_cutoff")
    h.execute(out, 2490.0)
    assert h.pf.position_qty("RELIANCE.NSE") == 0.0


def test_square_off_skips_weekends_and_flat_books() -> None:
    h = Harness(sizing={"mode": "fixed"}, start_ns=_ist(15, 0, day=27), exits={"square_off": {"nse": "15:20"}})
    h.install()
    h.execute(sell("RELIANCE.NSE", 3), 2500.0)  # Friday 15:00
    h.clock.advance_to(_ist(15, 20, day=27))
    assert [(i.side, i.qty) for i in h.emitted] == [(Side.BUY, 3.0)]
    h.emitted.clear()  # the close never happened (say the venue was down): the position stays open
    h.clock.advance_to(_ist(23, 59, day=29))  # Saturday and Sunday: no square-off
    assert h.emitted == []
    h.clock.advance_to(_ist(15, 20, day=30))  # Monday: again
    assert [(i.side, i.qty, i.ts_event) for i in h.emitted] == [(Side.BUY, 3.0, _ist(15, 20, day=30))]
    h.execute(h.emitted[0], 2500.0)
    h.emitted.clear()
    h.clock.advance_to(to_ns(dt.datetime(2026, 12, 1, 16, 0, tzinfo=IST)))  # Tuesday, flat: nothing to do
    assert h.emitted == []


def test_square_off_unknown_calendar_is_a_config_error() -> None:
    from omnid.errors import ConfigError

    with pytest.raises(ConfigError, match=r"square_off\.lse"):
        Harness(exits={"square_off": {"lse": "16:20"}})


def test_unmanaged_round_trips_then_a_planned_add_averages_from_the_tracked_position(h: Harness) -> None:
    # No levels until the third entry: the first round trip leaves nothing behind (flat is flat),
    # and the levels armed by a later add follow the average of the position the fills built.
    h.execute(buy(qty=2), 100.0)
    h.execute(close(Side.SELL), 110.0)
    assert h.gate.exits.levels("AAA.SIM") is None and h.pf.position_qty("AAA.SIM") == 0.0
    h.execute(buy(qty=1), 90.0)  # reopened, unmanaged: its entry is 90, not the old 100
    h.execute(buy(qty=3, strategy_id="s2", stop_loss=80.0), 94.0)
    lv = h.gate.exits.levels("AAA.SIM")
    assert lv is not None
    assert (lv.qty, lv.entry, lv.stop_loss, lv.strategy_id) == (4.0, 93.0, 80.0, "s2")
    out = h.gate.exits.on_price("AAA.SIM", 80.0, 7)
    assert out is not None and out.qty == 4.0 and out.reason.startswith("stop-loss")
