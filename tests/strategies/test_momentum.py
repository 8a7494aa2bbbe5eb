"""momentum decisions on constructed VWAP/RSI/imbalance values, and its square-off on the NSE day."""

from __future__ import annotations

import datetime as dt

from omnid.calendar import NSE_EQUITY, to_ns
from omnid.model import AssetClass, Instrument, IntentAction, Side, Trade

from tests.strategies.helpers import Rig

REL = Instrument(symbol="RELIANCE", venue="SIM", asset_class=AssetClass.EQUITY, tick_size=0.05,
                 calendar=NSE_EQUITY)
IID = REL.id
IST = dt.timezone(dt.timedelta(hours=5, minutes=30))


def _at(hh: int, mm: int, day: int = 23) -> int:
    return to_ns(dt.datetime(2026, 11, day, hh, mm, tzinfo=IST))  # 2026-11-23 is a Monday


def _rig(start: int, **params: object) -> Rig:
    rig = Rig("momentum", [REL], dict(params), start_ns=start)
    rig.strategy.on_start()
    return rig


def _feed(rig: Rig, ts: int, price: float, vwap: float, rsi: float, imb: float) -> list | None:  # type: ignore[type-arg]
    rig.clock.advance_to(ts)
    rig.features.set(IID, "vwap", vwap)
    rig.features.set(IID, "rsi:14", rsi)
    rig.features.set(IID, "obi:5", imb)
    return rig.strategy.on_trade(Trade(IID, price, 1.0, Side.BUY, ts, ts))


def test_enters_long_only_when_all_three_agree() -> None:
    """price > VWAP, RSI > 50 and imbalance > 0 enter; any one failing does not."""
    rig = _rig(_at(9, 0))
    t = _at(10, 0)
    assert _feed(rig, t, 101.0, 100.0, 50.0, 0.2) is None  # RSI not above 50
    assert _feed(rig, t, 100.0, 100.0, 60.0, 0.2) is None  # price not above VWAP
    assert _feed(rig, t, 101.0, 100.0, 60.0, 0.0) is None  # imbalance not above 0
    out = _feed(rig, t, 101.0, 100.0, 60.0, 0.25)
    assert out is not None and len(out) == 1
    it = out[0]
    assert (it.side, it.action, it.qty) == (Side.BUY, IntentAction.OPEN, 0.0)
    assert it.numbers == {"price": 101.0, "vwap": 100.0, "rsi_14": 60.0, "imbalance": 0.25}
    assert "above session VWAP" in it.reason


def test_no_entry_before_open_or_after_square_off() -> None:
    """Entries only inside [session open, square-off); default square-off is 10 min before close."""
    rig = _rig(_at(8, 0))
    assert _feed(rig, _at(9, 0), 101.0, 100.0, 60.0, 0.3) is None  # pre-open
    assert _feed(rig, _at(15, 20), 101.0, 100.0, 60.0, 0.3) is None  # at square-off (15:30 - 10)
    assert _feed(rig, _at(15, 19), 101.0, 100.0, 60.0, 0.3) is not None


def test_exits_on_vwap_or_rsi() -> None:
    """Long: price under VWAP exits; RSI under 45 exits; otherwise hold."""
    rig = _rig(_at(9, 0))
    rig.hold(IID, 10, 101.0)
    assert _feed(rig, _at(10, 0), 101.0, 100.0, 46.0, -0.5) is None  # hold: above VWAP, RSI >= 45
    out = _feed(rig, _at(10, 1), 99.5, 100.0, 60.0, 0.5)
    assert out is not None and (out[0].side, out[0].qty, out[0].action) == (Side.SELL, 10, IntentAction.CLOSE)
    assert "fell below VWAP" in out[0].reason
    out = _feed(rig, _at(10, 2), 101.0, 100.0, 44.0, 0.5)
    assert out is not None and "RSI 44 fell below 45" in out[0].reason


def test_square_off_timer_flattens_at_configured_local_time() -> None:
    """With square_off = "15:00", a clock timer fires then and closes the long."""
    rig = _rig(_at(9, 0), square_off="15:00")
    _feed(rig, _at(10, 0), 101.0, 100.0, 60.0, 0.3)
    rig.hold(IID, 5, 101.0)
    rig.clock.advance_to(_at(15, 30))
    names = [n for n, _ in rig.timer_events]
    assert names == ["s1"]
    ev = rig.timer_events[0][1]
    assert ev.ts_scheduled == _at(15, 0)
    rig.clock.advance_to(_at(15, 0))
    out = rig.strategy.on_timer(ev)
    assert out is not None and (out[0].side, out[0].qty, out[0].action) == (Side.SELL, 5, IntentAction.CLOSE)
    assert "square-off" in out[0].reason


def test_next_day_reopens_the_window() -> None:
    """After the square-off, the next session's open allows entries again and re-arms the timer."""
    rig = _rig(_at(9, 0))
    assert _feed(rig, _at(15, 25), 101.0, 100.0, 60.0, 0.3) is None
    assert _feed(rig, _at(9, 20, day=24), 101.0, 100.0, 60.0, 0.3) is not None
    assert any(n.endswith(f"square_off:{IID}") for n in rig.clock.timer_names())


def _feed_no_book(rig: Rig, ts: int, price: float, side: Side, size: float = 1.0) -> list | None:  # type: ignore[type-arg]
    rig.clock.advance_to(ts)
    rig.features.set(IID, "vwap", 100.0)
    rig.features.set(IID, "rsi:14", 60.0)
    return rig.strategy.on_trade(Trade(IID, price, size, side, ts, ts))


def test_without_book_data_trade_flow_stands_in_for_imbalance() -> None:
    """No quotes/depth: the signed trade-flow average decides, and the reason says so."""
    rig = _rig(_at(9, 0), flow_window=3)
    assert _feed_no_book(rig, _at(10, 0), 101.0, Side.SELL, 2.0) is None  # flow -1: no entry
    assert _feed_no_book(rig, _at(10, 1), 101.0, Side.BUY, 1.0) is None  # flow (-1 .. ) still < 0
    out = None
    for k in range(2, 6):
        out = _feed_no_book(rig, _at(10, k), 101.0, Side.BUY, 1.0)
        if out:
            break
    assert out is not None and "trade-flow imbalance" in out[0].reason
    assert 0.0 < out[0].numbers["imbalance"] <= 1.0


def test_no_book_ignore_and_block() -> None:
    """no_book = "ignore" enters on VWAP and RSI alone; "block" never enters without book data."""
    rig = _rig(_at(9, 0), no_book="ignore")
    out = _feed_no_book(rig, _at(10, 0), 101.0, Side.SELL)
    assert out is not None and "imbalance" not in out[0].numbers
    rig = _rig(_at(9, 0), no_book="block")
    assert _feed_no_book(rig, _at(10, 0), 101.0, Side.BUY) is None


def test_bars_without_book_use_bar_direction_as_flow() -> None:
    """On bars the flow proxy is volume signed by the bar's direction (close vs open)."""
    from omnid.model import Bar

    rig = _rig(_at(9, 0), flow_window=1)
    rig.features.set(IID, "vwap", 100.0)
    rig.features.set(IID, "rsi:14", 60.0)
    t = _at(10, 0)
    rig.clock.advance_to(t)
    down = Bar(IID, 60 * 10**9, t - 60 * 10**9, 102.0, 102.0, 100.5, 101.0, 10.0, t, t)
    up = Bar(IID, 60 * 10**9, t - 60 * 10**9, 100.5, 101.5, 100.5, 101.0, 10.0, t, t)
    assert rig.strategy.on_bar(down) is None
    out = rig.strategy.on_bar(up)
    assert out is not None and out[0].numbers["imbalance"] == 1.0 and "trade-flow" in out[0].reason
