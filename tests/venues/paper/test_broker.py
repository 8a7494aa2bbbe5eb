"""Paper broker fill model: next-price market fills, limits/stops with ticks and bars, slippage,
commission modes, volume-limited partial fills, time in force, rejects and cancels."""

from __future__ import annotations

import itertools

import msgspec
import pytest
from omnid.clock import SimClock
from omnid.model import (
    Bar,
    Fill,
    Instrument,
    Liquidity,
    Order,
    OrderStatus,
    OrderType,
    Quote,
    Side,
    TimeInForce,
    Trade,
)
from omnid.ports import OrderUpdate
from omnid.venues.paper import PaperBroker, PaperConfig

S = 10**9
T0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z, a Thursday
IID = "BTC.SIM"
MIN = 60 * S


class Events:
    """The broker's counterpart: keeps what it was told, in order."""

    def __init__(self) -> None:
        self.updates: list[OrderUpdate] = []
        self.fills: list[Fill] = []
        self.log: list[msgspec.Struct] = []

    def on_order_update(self, update: OrderUpdate) -> None:
        self.updates.append(update)
        self.log.append(update)

    def on_fill(self, fill: Fill) -> None:
        self.fills.append(fill)
        self.log.append(fill)

    def statuses(self, coid: str) -> list[OrderStatus]:
        return [u.status for u in self.updates if u.client_order_id == coid]


_seq = itertools.count(1)


def make(**cfg: object) -> tuple[PaperBroker, Events, SimClock]:
    clock = SimClock(T0)
    inst = Instrument(symbol="BTC", venue="SIM", tick_size=0.5, lot_size=1.0)
    broker = PaperBroker(clock, msgspec.convert(cfg, PaperConfig), instruments=[inst])
    ev = Events()
    broker.bind(ev)
    return broker, ev, clock


def order(
    side: Side,
    qty: float,
    typ: OrderType = OrderType.MARKET,
    *,
    limit: float | None = None,
    stop: float | None = None,
    tif: TimeInForce = TimeInForce.GTC,
    clock: SimClock | None = None,
    iid: str = IID,
) -> Order:
    return Order(
        client_order_id=f"t-x-{next(_seq)}",
        instrument_id=iid,
        strategy_id="x",
        side=side,
        qty=qty,
        order_type=typ,
        limit_price=limit,
        stop_price=stop,
        tif=tif,
        status=OrderStatus.SUBMITTED,
        ts_created=clock.now_ns() if clock else T0,
    )


def trade(price: float, size: float = 0.0, ts: int = T0) -> Trade:
    return Trade(instrument_id=IID, price=price, size=size, side=Side.NONE, ts_event=ts, ts_init=ts)


def bar(ts_open: int, o: float, h: float, lo: float, c: float, v: float = 0.0) -> Bar:
    return Bar(
        instrument_id=IID,
        interval_ns=MIN,
        ts_open=ts_open,
        open=o,
        high=h,
        low=lo,
        close=c,
        volume=v,
        ts_event=ts_open + MIN,
        ts_init=ts_open + MIN,
    )


def test_market_fills_at_the_next_trade_not_before() -> None:
    b, ev, clock = make()
    b.on_trade(trade(100.0))  # before the order: irrelevant
    o = order(Side.BUY, 2, clock=clock)
    b.submit(o)
    assert ev.statuses(o.client_order_id) == [OrderStatus.ACCEPTED] and ev.fills == []
    b.on_trade(trade(101.0, ts=T0 + 1))
    assert [(f.qty, f.price, f.ts_event) for f in ev.fills] == [(2, 101.0, T0 + 1)]
    assert ev.fills[0].liquidity is Liquidity.TAKER
    b.on_trade(trade(102.0))
    assert len(ev.fills) == 1 and b.working_orders() == [] and b.position(IID) == 2


def test_slippage_bps_and_ticks_worsen_market_prices() -> None:
    b, ev, clock = make(slippage_bps=10.0, slippage_ticks=2)
    b.submit(order(Side.BUY, 1, clock=clock))
    b.submit(order(Side.SELL, 1, clock=clock))
    b.on_trade(trade(1000.0))
    buy, sell = ev.fills
    assert buy.price == pytest.approx(1000.0 * 1.001 + 2 * 0.5)
    assert sell.price == pytest.approx(1000.0 * 0.999 - 2 * 0.5)


@pytest.mark.parametrize(
    ("cfg", "expected"),
    [
        ({"commission_rate": 0.001}, [0.001 * 3 * 200.0, 0.001 * 2 * 200.0]),
        ({"commission_per_unit": 0.25}, [0.75, 0.5]),
        ({"commission_per_order": 1.5}, [1.5, 0.0]),  # once per order, on its first fill
        ({"commission_rate": 0.001, "commission_per_order": 1.0}, [1.6, 0.4]),
    ],
)
def test_commission_modes(cfg: dict[str, float], expected: list[float]) -> None:
    b, ev, clock = make(participation=1.0, **cfg)
    b.submit(order(Side.BUY, 5, clock=clock))
    b.on_trade(trade(200.0, size=3))
    b.on_trade(trade(200.0, size=10))
    assert [f.qty for f in ev.fills] == [3, 2]
    assert [f.commission for f in ev.fills] == pytest.approx(expected)


def test_decision_on_bar_close_fills_at_next_bar_open() -> None:
    b, ev, clock = make()
    b1 = bar(T0, 100, 105, 99, 104)
    clock.advance_to(b1.ts_event)  # the strategy decides on bar 1's close
    o = order(Side.BUY, 1, clock=clock)
    b.submit(o)
    b.on_bar(b1)  # handed to the broker after the decision: it began earlier, so it cannot fill
    assert ev.fills == []
    b.on_bar(bar(T0 + MIN, 103, 108, 102, 107))
    assert [(f.price, f.ts_event) for f in ev.fills] == [(103.0, T0 + MIN)]


def test_limit_with_ticks_rests_then_fills_at_its_price() -> None:
    b, ev, clock = make()
    o = order(Side.BUY, 1, OrderType.LIMIT, limit=99.0, clock=clock)
    b.submit(o)
    b.on_trade(trade(100.0))
    assert ev.fills == []
    b.on_trade(trade(98.5))  # trades through the resting bid: filled at the limit
    assert [(f.price, f.liquidity) for f in ev.fills] == [(99.0, Liquidity.MAKER)]


def test_marketable_limit_takes_the_better_price() -> None:
    b, ev, clock = make()
    b.submit(order(Side.SELL, 1, OrderType.LIMIT, limit=95.0, clock=clock))
    b.on_trade(trade(97.0))
    assert [(f.price, f.liquidity) for f in ev.fills] == [(97.0, Liquidity.TAKER)]


def test_limit_touch_versus_trade_through() -> None:
    b, ev, clock = make(limit_fill_on_touch=False)
    b.submit(order(Side.BUY, 1, OrderType.LIMIT, limit=99.0, clock=clock))
    b.on_trade(trade(100.0))
    b.on_trade(trade(99.0))  # a touch is not enough here
    assert ev.fills == []
    b.on_trade(trade(98.5))
    assert [f.price for f in ev.fills] == [99.0]
    b2, ev2, clock2 = make()
    b2.submit(order(Side.BUY, 1, OrderType.LIMIT, limit=99.0, clock=clock2))
    b2.on_trade(trade(100.0))
    b2.on_trade(trade(99.0))
    assert [f.price for f in ev2.fills] == [99.0]


def test_limit_with_bars_gap_range_and_miss() -> None:
    b, ev, clock = make()
    gap = order(Side.BUY, 1, OrderType.LIMIT, limit=100.0, clock=clock)
    rng = order(Side.BUY, 1, OrderType.LIMIT, limit=97.0, clock=clock)
    miss = order(Side.BUY, 1, OrderType.LIMIT, limit=90.0, clock=clock)
    sell = order(Side.SELL, 1, OrderType.LIMIT, limit=98.0, clock=clock)
    for o in (gap, rng, miss, sell):
        b.submit(o)
    b.on_bar(bar(T0, 98, 99, 95, 96))
    got = {f.client_order_id: f.price for f in ev.fills}
    assert got == {gap.client_order_id: 98.0, rng.client_order_id: 97.0, sell.client_order_id: 98.5 - 0.5}
    assert b.working_orders() == [miss.client_order_id]


def test_stop_with_ticks_triggers_and_fills_at_the_triggering_trade() -> None:
    b, ev, clock = make()
    stop = order(Side.SELL, 1, OrderType.STOP, stop=95.0, clock=clock)
    b.submit(stop)
    b.on_trade(trade(96.0))
    assert ev.fills == []
    b.on_trade(trade(94.0))  # through the stop
    assert [f.price for f in ev.fills] == [94.0]


def test_stop_with_bars_gap_and_intrabar() -> None:
    b, ev, clock = make()
    gapped = order(Side.BUY, 1, OrderType.STOP, stop=101.0, clock=clock)
    b.submit(gapped)
    b.on_bar(bar(T0, 103, 104, 102, 103))
    assert [f.price for f in ev.fills] == [103.0]
    intra = order(Side.BUY, 1, OrderType.STOP, stop=105.0, clock=clock)
    b.submit(intra)
    b.on_bar(bar(T0 + MIN, 103, 106, 102, 104))
    assert [f.price for f in ev.fills] == [103.0, 105.0]


def test_stop_limit_ticks_and_bars() -> None:
    b, ev, clock = make()
    sl = order(Side.BUY, 1, OrderType.STOP_LIMIT, stop=100.0, limit=100.5, clock=clock)
    b.submit(sl)
    b.on_trade(trade(99.0))
    b.on_trade(trade(101.0))  # triggers, but 101 is above the limit: now a resting limit
    assert ev.fills == []
    b.on_trade(trade(100.0))
    assert [(f.price, f.liquidity) for f in ev.fills] == [(100.5, Liquidity.MAKER)]
    b2, ev2, clock2 = make()
    b2.submit(order(Side.SELL, 1, OrderType.STOP_LIMIT, stop=50.0, limit=49.0, clock=clock2))
    b2.on_bar(bar(T0, 52, 53, 48, 49))  # trades down through 50: sold at the stop
    assert [f.price for f in ev2.fills] == [50.0]


def test_partial_fills_limited_by_trade_volume() -> None:
    b, ev, clock = make(participation=0.5)
    o = order(Side.BUY, 12, clock=clock)
    b.submit(o)
    for _ in range(3):
        b.on_trade(trade(100.0, size=10))
    assert [f.qty for f in ev.fills] == [5, 5, 2]
    assert b.working_orders() == []


def test_orders_share_an_events_volume_and_lots_round_down() -> None:
    b, ev, clock = make(participation=0.5)
    first = order(Side.BUY, 4, clock=clock)
    second = order(Side.BUY, 4, clock=clock)
    b.submit(first)
    b.submit(second)
    b.on_trade(trade(100.0, size=11))  # room 5.5: 4 to the first, 1 (lot-rounded) to the second
    assert [(f.client_order_id, f.qty) for f in ev.fills] == [
        (first.client_order_id, 4),
        (second.client_order_id, 1),
    ]


def test_bar_volume_limits_fills() -> None:
    b, ev, clock = make(participation=0.1)
    b.submit(order(Side.SELL, 30, clock=clock))
    b.on_bar(bar(T0, 10, 11, 9, 10, v=200))
    b.on_bar(bar(T0 + MIN, 10.5, 11, 9, 10, v=50))
    assert [(f.qty, f.price) for f in ev.fills] == [(20, 10.0), (5, 10.5)]


def test_no_volume_limit_when_disabled_or_unknown() -> None:
    b, ev, clock = make(limit_by_volume=False)
    b.submit(order(Side.BUY, 1000, clock=clock))
    b.on_trade(trade(100.0, size=1))
    assert [f.qty for f in ev.fills] == [1000]
    b2, ev2, clock2 = make()
    b2.submit(order(Side.BUY, 1000, clock=clock2))
    b2.on_trade(trade(100.0, size=0))  # the data has no size
    assert [f.qty for f in ev2.fills] == [1000]


def test_quotes_buy_at_ask_sell_at_bid_sized_by_the_book() -> None:
    b, ev, clock = make()
    buy = order(Side.BUY, 3, clock=clock)
    sell = order(Side.SELL, 1, clock=clock)
    b.submit(buy)
    b.submit(sell)
    b.on_quote(Quote(instrument_id=IID, bid=99.5, ask=100.5, bid_size=5, ask_size=2, ts_event=T0, ts_init=T0))
    assert [(f.side, f.qty, f.price) for f in ev.fills] == [(Side.BUY, 2, 100.5), (Side.SELL, 1, 99.5)]


def test_fill_on_restricts_the_data_used() -> None:
    b, ev, clock = make(fill_on=["bar"])
    b.submit(order(Side.BUY, 1, clock=clock))
    b.on_trade(trade(100.0))
    assert ev.fills == []
    b.on_bar(bar(T0, 101, 102, 100, 101))
    assert [f.price for f in ev.fills] == [101.0]


def test_ioc_fok_and_day() -> None:
    b, ev, clock = make(participation=0.5)
    ioc = order(Side.BUY, 10, tif=TimeInForce.IOC, clock=clock)
    fok = order(Side.BUY, 10, tif=TimeInForce.FOK, clock=clock)
    b.submit(ioc)
    b.submit(fok)
    b.on_trade(trade(100.0, size=8))  # room 4: IOC takes 4 and expires; FOK cannot fill in full
    assert [(f.client_order_id, f.qty) for f in ev.fills] == [(ioc.client_order_id, 4)]
    assert ev.statuses(ioc.client_order_id)[-1] is OrderStatus.EXPIRED
    assert ev.statuses(fok.client_order_id)[-1] is OrderStatus.EXPIRED
    day = order(Side.BUY, 1, OrderType.LIMIT, limit=50.0, tif=TimeInForce.DAY, clock=clock)
    b.submit(day)
    b.on_trade(trade(100.0, ts=T0 + 3600 * S))
    assert b.working_orders() == [day.client_order_id]
    b.on_trade(trade(100.0, ts=T0 + 86_400 * S))  # the UTC day (always-open calendar) is over
    assert ev.statuses(day.client_order_id)[-1] is OrderStatus.EXPIRED and b.working_orders() == []


def test_post_only_expires_instead_of_taking() -> None:
    b, ev, clock = make()
    po = order(Side.BUY, 1, OrderType.LIMIT_MAKER, limit=101.0, clock=clock)
    b.submit(po)
    b.on_trade(trade(100.0))
    assert ev.fills == [] and ev.statuses(po.client_order_id)[-1] is OrderStatus.EXPIRED


def test_cancel_and_cancel_of_unknown() -> None:
    b, ev, clock = make()
    o = order(Side.BUY, 1, OrderType.LIMIT, limit=10.0, clock=clock)
    b.submit(o)
    b.cancel(o.client_order_id)
    assert ev.statuses(o.client_order_id) == [OrderStatus.ACCEPTED, OrderStatus.CANCELLED]
    b.cancel(o.client_order_id)
    b.cancel("nope")
    assert len(ev.updates) == 2
    b.on_trade(trade(5.0))
    assert ev.fills == []


@pytest.mark.parametrize(
    ("cfg", "make_order", "why"),
    [
        ({}, lambda c: order(Side.BUY, 0, clock=c), "quantity"),
        ({}, lambda c: order(Side.BUY, 1, OrderType.LIMIT, clock=c), "limit price"),
        ({}, lambda c: order(Side.BUY, 1, OrderType.STOP, clock=c), "stop price"),
        (
            {"order_types": ["market"]},
            lambda c: order(Side.BUY, 1, OrderType.LIMIT, limit=1, clock=c),
            "not supported",
        ),
        ({"allow_short": False}, lambda c: order(Side.SELL, 1, clock=c), "short"),
        # Market orders that the submit fast path must hand to the full check:
        ({}, lambda c: order(Side.NONE, 1, clock=c), "side"),
        ({}, lambda c: order(Side.BUY, float("inf"), clock=c), "quantity"),
        ({}, lambda c: order(Side.SELL, float("nan"), clock=c), "quantity"),
        ({}, lambda c: order(Side.SELL, -1.0, clock=c), "quantity"),
        ({"slippage_ticks": 1}, lambda c: order(Side.BUY, 1, clock=c, iid="ETH.SIM"), "unknown instrument"),
    ],
)
def test_rejects_name_the_problem(cfg: dict[str, object], make_order: object, why: str) -> None:
    b, ev, clock = make(**cfg)
    o = make_order(clock)  # type: ignore[operator]
    b.submit(o)
    assert ev.statuses(o.client_order_id) == [OrderStatus.REJECTED]
    assert why in ev.updates[-1].reason
    assert b.working_orders() == []


def test_duplicate_client_order_id_is_rejected() -> None:
    b, ev, clock = make()
    o = order(Side.BUY, 1, clock=clock)
    b.submit(o)
    b.submit(o)
    assert ev.statuses(o.client_order_id) == [OrderStatus.ACCEPTED, OrderStatus.REJECTED]
    assert "duplicate" in ev.updates[-1].reason


def test_no_short_allows_selling_what_is_held() -> None:
    b, ev, clock = make(allow_short=False)
    b.submit(order(Side.BUY, 3, clock=clock))
    b.on_trade(trade(10.0))
    b.submit(order(Side.SELL, 2, OrderType.LIMIT, limit=20.0, clock=clock))
    over = order(Side.SELL, 2, clock=clock)
    b.submit(over)  # 2 already working against 3 held
    assert ev.statuses(over.client_order_id) == [OrderStatus.REJECTED]


def test_reentrant_submit_from_a_fill_waits_for_the_next_event() -> None:
    """A strategy that answers a fill with a new order gets it filled on later data only."""
    b, _, clock = make()

    class Chain(Events):
        def on_fill(self, fill: Fill) -> None:
            super().on_fill(fill)
            if len(self.fills) == 1:
                b.submit(order(Side.SELL, 1, clock=clock))

    ev = Chain()
    b.bind(ev)
    b.submit(order(Side.BUY, 1, clock=clock))
    b.on_trade(trade(100.0))
    assert [f.side for f in ev.fills] == [Side.BUY]
    b.on_trade(trade(101.0))
    assert [(f.side, f.price) for f in ev.fills] == [(Side.BUY, 100.0), (Side.SELL, 101.0)]


@pytest.mark.parametrize(
    "bad",
    [
        {"participation": 0},
        {"participation": 1.5},
        {"slippage_bps": -1},
        {"fill_on": ["tick"]},
        {"order_types": ["limit"]},
        {"venue": "A.B"},
        {"commission_rate": float("nan")},
    ],
)
def test_config_rejects_bad_values(bad: dict[str, object]) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(bad, PaperConfig)


def test_day_orders_follow_the_instrument_session() -> None:
    """A DAY order on a US stock expires at 16:00 New York; one placed after hours lives through
    the next session."""
    from omnid.calendar import US_EQUITY

    spy = Instrument(symbol="SPY", venue="SIM", calendar=US_EQUITY)
    # 2026-01-02 is a Friday; 15:00 UTC = 10:00 New York, the close is 21:00 UTC.
    fri_10 = T0 + 86_400 * S + 15 * 3600 * S
    clock = SimClock(fri_10)
    b = PaperBroker(clock, instruments=[spy])
    ev = Events()
    b.bind(ev)
    o = order(Side.BUY, 1, OrderType.LIMIT, limit=1.0, tif=TimeInForce.DAY, clock=clock, iid=spy.id)
    b.submit(o)
    t = Trade(
        instrument_id=spy.id, price=500.0, size=0, side=Side.NONE, ts_event=fri_10 + 5 * 3600 * S, ts_init=0
    )
    b.on_trade(t)
    assert b.working_orders() == [o.client_order_id]
    t.ts_event = fri_10 + 6 * 3600 * S  # 16:00 New York
    b.on_trade(t)
    assert ev.statuses(o.client_order_id)[-1] is OrderStatus.EXPIRED
    clock.advance_to(fri_10 + 8 * 3600 * S)  # after hours: good for Monday's session
    late = order(Side.BUY, 1, OrderType.LIMIT, limit=1.0, tif=TimeInForce.DAY, clock=clock, iid=spy.id)
    b.submit(late)
    monday_15utc = fri_10 + 3 * 86_400 * S
    t.ts_event = monday_15utc
    b.on_trade(t)
    assert b.working_orders() == [late.client_order_id]
    t.ts_event = monday_15utc + 6 * 3600 * S
    b.on_trade(t)
    assert b.working_orders() == []


def test_non_finite_prices_never_fill() -> None:
    b, ev, clock = make()
    b.submit(order(Side.BUY, 1, clock=clock))
    b.on_trade(trade(float("nan")))
    b.on_trade(trade(float("inf")))
    b.on_bar(bar(T0, float("nan"), 1, 1, 1))
    b.on_quote(
        Quote(instrument_id=IID, bid=1.0, ask=float("inf"), bid_size=1, ask_size=1, ts_event=T0, ts_init=T0)
    )
    assert ev.fills == []
    b.on_trade(trade(7.0))
    assert [f.price for f in ev.fills] == [7.0]


def test_partial_fills_stay_on_the_lot_grid_and_sum_to_the_order_exactly() -> None:
    """Float residue of `qty - filled` must not reach a fill (it left dust positions in the ledger)."""
    from decimal import Decimal

    clock = SimClock(T0)
    inst = Instrument(symbol="BTC", venue="SIM", tick_size=0.01, lot_size=0.00001)
    b = PaperBroker(clock, PaperConfig(), instruments=[inst])
    ev = Events()
    b.bind(ev)
    sizes = ["0.15747", "0.01234", "0.02797", "0.06484", "0.07189", "0.08981", "0.02399", "0.11324",
             "0.06948", "0.24053", "0.09676", "0.01749", "0.66143"]
    qty = float(sum(Decimal(x) for x in sizes))
    o = order(Side.BUY, qty, clock=clock)
    b.submit(o)
    for i, x in enumerate(sizes[:-1]):
        b.on_trade(trade(60_000.0, size=float(x), ts=T0 + i + 1))
    b.on_trade(trade(60_000.0, size=10.0, ts=T0 + 100))
    fills = [Decimal(repr(f.qty)) for f in ev.fills]
    assert all(f % Decimal("0.00001") == 0 for f in fills), fills
    assert sum(fills) == Decimal(repr(qty))
    assert b.working_orders() == []
