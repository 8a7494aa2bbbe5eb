"""Order rounding/checks before they leave, and the local book's sync rules (no I/O)."""

from __future__ import annotations

import pytest
from omnid.errors import RejectedError
from omnid.model import BookDelta, BookLevel, BookSnapshot, Instrument, Order, OrderType, Side, TimeInForce
from omnid.venues.binance.book import DiffResult, LocalBook, SnapshotResult, SyncState
from omnid.venues.binance.orders import order_params, stop_type

BTC = Instrument(symbol="BTCUSDT", venue="BINANCE", quote_currency="USDT", base_currency="BTC", tick_size=0.01,
                 lot_size=0.00001, min_qty=0.00001, min_notional=5.0)


def order(**kw: object) -> Order:
    f: dict[str, object] = {"client_order_id": "c1", "instrument_id": "BTCUSDT.BINANCE", "strategy_id": "s",
                            "side": Side.BUY, "qty": 0.123456789, "order_type": OrderType.LIMIT,
                            "limit_price": 50000.019}
    f.update(kw)
    return Order(**f)  # type: ignore[arg-type]


def test_limit_is_rounded_to_tick_and_lot() -> None:
    p = order_params(order(), BTC)
    assert p == {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.12345", "newClientOrderId": "c1",
                 "newOrderRespType": "RESULT", "price": "50000.01", "timeInForce": "GTC", "type": "LIMIT"}
    assert order_params(order(side=Side.SELL), BTC)["price"] == "50000.02"  # sells round up


def test_each_order_type() -> None:
    assert order_params(order(order_type=OrderType.MARKET, limit_price=None), BTC)["type"] == "MARKET"
    maker = order_params(order(order_type=OrderType.LIMIT_MAKER), BTC)
    assert maker["type"] == "LIMIT_MAKER" and "timeInForce" not in maker
    sl = order_params(order(order_type=OrderType.STOP_LIMIT, side=Side.SELL, stop_price=49000.0,
                            limit_price=48900.0, tif=TimeInForce.IOC), BTC, last_price=50000.0)
    assert (sl["type"], sl["stopPrice"], sl["timeInForce"]) == ("STOP_LOSS_LIMIT", "49000.00", "IOC")
    tp = order_params(order(order_type=OrderType.STOP_LIMIT, side=Side.SELL, stop_price=51000.0,
                            limit_price=51000.0), BTC, last_price=50000.0)
    assert tp["type"] == "TAKE_PROFIT_LIMIT"
    assert stop_type(Side.BUY, 49000.0, 50000.0, limit=False) == "TAKE_PROFIT"
    assert stop_type(Side.BUY, 51000.0, 50000.0, limit=False) == "STOP_LOSS"
    assert stop_type(Side.BUY, 49000.0, None, limit=True) == "STOP_LOSS_LIMIT"


@pytest.mark.parametrize(
    ("kw", "why"),
    [
        ({"qty": 0.000001}, "rounds to 0"),
        ({"qty": 0.00005, "limit_price": 100.0}, "minimum notional"),
        ({"limit_price": None}, "needs a positive limit price"),
        ({"order_type": OrderType.STOP_LIMIT}, "needs a positive stop price"),
        ({"tif": TimeInForce.DAY}, "not supported"),
        ({"client_order_id": "x" * 37}, "1-36 characters"),
        ({"side": Side.NONE}, "buy or sell"),
    ],
)
def test_bad_orders_never_leave(kw: dict[str, object], why: str) -> None:
    with pytest.raises(RejectedError, match=why) as e:
        order_params(order(**kw), BTC)
    assert e.value.context["symbol"] == "BTCUSDT"


def test_market_notional_uses_last_price() -> None:
    with pytest.raises(RejectedError, match="minimum notional"):
        order_params(order(order_type=OrderType.MARKET, limit_price=None, qty=0.00001), BTC, last_price=50000.0)


def diff(first: int, last: int, bids: list[tuple[float, float]] = (), asks: list[tuple[float, float]] = ()) -> BookDelta:  # type: ignore[assignment]
    return BookDelta("X.BINANCE", [BookLevel(p, q) for p, q in bids], [BookLevel(p, q) for p, q in asks], 0, 0,
                     first, last)


def snap(uid: int, bids: list[tuple[float, float]], asks: list[tuple[float, float]]) -> BookSnapshot:
    return BookSnapshot("X.BINANCE", [BookLevel(p, q) for p, q in bids], [BookLevel(p, q) for p, q in asks], 0, 0,
                        uid)


def test_documented_sync_procedure() -> None:
    b = LocalBook("X.BINANCE")
    assert b.on_diff(diff(98, 100, [(10.0, 1.0)])) is DiffResult.BUFFERED
    assert b.on_diff(diff(101, 103, [(10.0, 2.0)], [(11.0, 1.0)])) is DiffResult.BUFFERED
    # lastUpdateId 97 < first buffered U 98: too old, fetch again.
    assert b.on_snapshot(snap(97, [], []))[0] is SnapshotResult.TOO_OLD
    result, applied = b.on_snapshot(snap(101, [(10.0, 5.0), (9.0, 1.0)], [(11.0, 3.0)]))
    assert result is SnapshotResult.SYNCED and [d.update_id for d in applied] == [103]
    assert b.state is SyncState.SYNCED and b.update_id == 103
    assert b.bids == {10.0: 2.0, 9.0: 1.0} and b.asks == {11.0: 1.0}
    assert b.on_diff(diff(100, 103)) is DiffResult.STALE
    assert b.on_diff(diff(104, 104, [(9.0, 0.0), (8.0, 0.0)])) is DiffResult.APPLIED  # removing an absent level is fine
    assert b.bids == {10.0: 2.0}
    assert b.on_diff(diff(106, 107)) is DiffResult.GAP
    assert b.state is SyncState.BUFFERING and not b.bids


def test_hole_inside_the_buffer_restarts() -> None:
    b = LocalBook("X.BINANCE")
    b.on_diff(diff(10, 11))
    b.on_diff(diff(14, 15))  # 12-13 never arrived
    assert b.on_snapshot(snap(11, [(1.0, 1.0)], []))[0] is SnapshotResult.TOO_OLD
    assert b.state is SyncState.BUFFERING


def test_snapshot_top_levels_best_first() -> None:
    b = LocalBook("X.BINANCE")
    b.on_snapshot(snap(1, [(9.0, 1.0), (10.0, 2.0), (8.0, 3.0)], [(12.0, 1.0), (11.0, 1.0)]))
    s = b.snapshot(2, 5, 6)
    assert [lv.price for lv in s.bids] == [10.0, 9.0] and [lv.price for lv in s.asks] == [11.0, 12.0]
    assert (s.update_id, s.ts_event, s.ts_init) == (1, 5, 6)
    assert b.best_bid() == 10.0 and b.best_ask() == 11.0
