"""Domain model: the order state machine, rounding to tick/lot, exact decimal formatting."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from decimal import Decimal

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from omnid.errors import IllegalTransition
from omnid.model import (
    ORDER_TRANSITIONS,
    Bar,
    Instrument,
    Order,
    OrderStatus,
    Side,
    Trade,
)

S = OrderStatus


def order(qty: float = 10.0) -> Order:
    return Order(client_order_id="c1", instrument_id="X.SIM", strategy_id="s", side=Side.BUY, qty=qty)


def test_happy_path_new_to_filled() -> None:
    o = order()
    o.transition(S.SUBMITTED, 1)
    o.transition(S.ACCEPTED, 2)
    o.apply_fill(4.0, 100.0, 3)
    assert o.status is S.PARTIALLY_FILLED and o.leaves_qty == 6.0
    o.apply_fill(6.0, 101.0, 4)
    assert o.status is S.FILLED
    assert o.avg_fill_price == pytest.approx(100.6)
    assert not o.is_open and o.ts_last == 4


@pytest.mark.parametrize("src,dst", [
    (a, b) for a, b in itertools.product(list(S), list(S)) if b not in ORDER_TRANSITIONS[a]
])
def test_every_illegal_transition_raises(src: OrderStatus, dst: OrderStatus) -> None:
    o = order()
    o.status = src
    with pytest.raises(IllegalTransition) as info:
        o.transition(dst, 1)
    assert info.value.context["current"] == src.value
    assert info.value.context["requested"] == dst.value
    assert o.status is src  # unchanged


def test_terminal_states_go_nowhere() -> None:
    for st_ in (S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED):
        assert ORDER_TRANSITIONS[st_] == frozenset()
        assert st_.is_terminal


def test_overfill_and_bad_fill_raise() -> None:
    o = order(5)
    o.transition(S.SUBMITTED, 1)
    with pytest.raises(IllegalTransition, match="overfills"):
        o.apply_fill(6, 100.0, 2)
    with pytest.raises(IllegalTransition, match="not a valid fill"):
        o.apply_fill(1, float("nan"), 2)
    with pytest.raises(IllegalTransition):
        o.apply_fill(0, 100.0, 2)
    assert o.status is S.SUBMITTED and o.filled_qty == 0


@pytest.mark.parametrize("src", [S.SUBMITTED, S.ACCEPTED, S.PARTIALLY_FILLED])
def test_fills_move_an_open_order_to_partial_then_filled(src: OrderStatus) -> None:
    o = order()
    o.status = src
    o.apply_fill(4.0, 100.0, 7)
    assert (o.status, o.ts_last, o.filled_qty) == (S.PARTIALLY_FILLED, 7, 4.0)
    o.apply_fill(6.0, 100.0, 8)
    assert (o.status, o.ts_last, o.filled_qty) == (S.FILLED, 8, 10.0)


@pytest.mark.parametrize("src", [S.NEW, S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED])
def test_a_fill_on_a_new_or_finished_order_is_an_illegal_transition(src: OrderStatus) -> None:
    o = order()
    o.status = src
    with pytest.raises(IllegalTransition) as info:
        o.apply_fill(1.0, 100.0, 5)
    assert info.value.context["current"] == src.value
    assert o.status is src and o.ts_last == 0


def test_rejection_keeps_the_reason() -> None:
    o = order()
    o.transition(S.SUBMITTED, 1)
    o.transition(S.REJECTED, 2, reason="-2010 insufficient balance")
    assert o.reject_reason == "-2010 insufficient balance"


def test_rounding_to_tick_by_side() -> None:
    inst = Instrument(symbol="RELIANCE", venue="NSE", tick_size=0.05, lot_size=1)
    assert inst.round_price(2501.23, Side.BUY) == 2501.20
    assert inst.round_price(2501.23, Side.SELL) == 2501.25
    assert inst.round_price(2501.23) == 2501.25
    assert inst.round_price(2501.20, Side.SELL) == 2501.20  # already on a tick stays put
    assert inst.format_price(2501.2) == "2501.20"


def test_rounding_qty_down_to_lot() -> None:
    btc = Instrument(symbol="BTCUSDT", venue="BINANCE", tick_size=0.01, lot_size=0.00001)
    assert btc.round_qty(0.123456789) == 0.12345
    assert btc.format_qty(0.12345) == "0.12345"
    assert btc.round_qty(0.000009) == 0.0
    assert btc.round_qty(-0.5) == -0.5
    spy = Instrument(symbol="SPY", venue="ALPACA", lot_size=1)
    assert spy.format_qty(3.0) == "3"


@given(st.floats(min_value=0.01, max_value=1e6, allow_nan=False), st.sampled_from([0.01, 0.05, 0.5, 0.0001]))
def test_rounded_price_is_on_the_tick_and_never_worse(price: float, tick: float) -> None:
    inst = Instrument(symbol="X", venue="SIM", tick_size=tick)
    buy = inst.round_price(price, Side.BUY)
    sell = inst.round_price(price, Side.SELL)
    assert buy <= price + 1e-9 * price and sell >= price - 1e-9 * price
    for p in (buy, sell):
        # the float is the shortest repr of a tick multiple, and formats as an exact multiple
        assert Decimal(repr(p)) % Decimal(repr(tick)) == 0
        assert Decimal(inst.format_price(p)) % Decimal(repr(tick)) == 0


def test_structs_round_trip_through_json_and_msgpack() -> None:
    t = Trade("BTCUSDT.BINANCE", 43000.5, 0.01, Side.BUY, 1, 2, "t1")
    b = Bar("SPY.SIM", 60_000_000_000, 0, 1.0, 2.0, 0.5, 1.5, 100.0, 60_000_000_000, 60_000_000_001)
    for obj in (t, b):
        assert msgspec.json.decode(msgspec.json.encode(obj), type=type(obj)) == obj
        assert msgspec.msgpack.decode(msgspec.msgpack.encode(obj), type=type(obj)) == obj


def test_instrument_id_and_sides() -> None:
    assert Instrument(symbol="AAPL", venue="ALPACA").id == "AAPL.ALPACA"
    assert Side.BUY.sign == 1 and Side.SELL.sign == -1 and Side.NONE.sign == 0
    assert Side.BUY.opposite is Side.SELL


# -------------------------------------------------------------------------------------------------
# round_qty / round_price take a Decimal-free path; it must give the Decimal path's float exactly.

_STEP_SIZES = [0.001, 0.01, 1e-8, 0.1, 1.0, 5.0, 25.0, 0.00001, 0.5, 0.25, 0.05, 0.0001, 1e-6,
               0.003, 0.125, 100.0, 1000.0, 2.5, 1e-12, 7e-5, 1e15, 3e20, 1e-30]


def _decimal_qty(lot: float, qty: float) -> float:
    """round_qty as defined: the lot's shortest decimal times the whole number of lots."""
    if lot <= 0:
        return qty
    n = math.floor(abs(qty) / lot + 1e-9)
    return math.copysign(float(Decimal(repr(lot)) * n), qty) if n else 0.0


def _decimal_price(tick: float, price: float, side: Side) -> float:
    if tick <= 0:
        return price
    steps = price / tick
    if side is Side.BUY:
        n = math.floor(steps + 1e-9)
    elif side is Side.SELL:
        n = math.ceil(steps - 1e-9)
    else:
        n = round(steps)
    return float(Decimal(repr(tick)) * n)


_steps = st.one_of(
    st.sampled_from(_STEP_SIZES),
    st.floats(1e-12, 1e6, allow_nan=False, allow_infinity=False),
    st.builds(lambda m, k: m * 10.0**k, st.integers(1, 999), st.integers(-12, 6)),
)


@st.composite
def _near_multiples(draw: st.DrawFn) -> tuple[float, float]:
    """A step and an amount on, just off, or far from one of its multiples."""
    step = draw(_steps)
    k = draw(st.one_of(st.integers(-10**6, 10**6), st.integers(-10**30, 10**30)))
    how = draw(st.sampled_from(["on", "up", "down", "eps", "random"]))
    x = k * step
    if how == "up":
        x = math.nextafter(x, math.inf)
    elif how == "down":
        x = math.nextafter(x, -math.inf)
    elif how == "eps":
        x = (k + draw(st.floats(-2e-9, 2e-9))) * step
    elif how == "random":
        x = draw(st.floats(-1e30, 1e30, allow_nan=False, allow_infinity=False))
    return step, x


@settings(max_examples=3000, deadline=None)
@given(_near_multiples())
def test_round_qty_equals_the_decimal_definition(case: tuple[float, float]) -> None:
    lot, qty = case
    inst = Instrument(symbol="X", venue="SIM", lot_size=lot)
    got, want = inst.round_qty(qty), _decimal_qty(lot, qty)
    assert repr(got) == repr(want)  # repr: the same float, sign of zero included


@settings(max_examples=3000, deadline=None)
@given(_near_multiples(), st.sampled_from(list(Side)))
def test_round_price_equals_the_decimal_definition(case: tuple[float, float], side: Side) -> None:
    tick, price = case
    inst = Instrument(symbol="X", venue="SIM", tick_size=tick)
    got, want = inst.round_price(price, side), _decimal_price(tick, price, side)
    assert repr(got) == repr(want)


def _outcome(fn: Callable[..., float], *args: object) -> str:
    try:
        return repr(fn(*args))
    except (ArithmeticError, ValueError) as e:
        return type(e).__name__


def test_round_qty_beyond_28_digits_and_odd_inputs_still_match() -> None:
    """Multiples past the default context's 28 digits take the Decimal path (which rounds); huge,
    infinite and NaN amounts fail (or not) the same way."""
    for lot in (0.001, 1e-8, 25.0, math.inf, 1e300, 5e-324):
        inst = Instrument(symbol="X", venue="SIM", lot_size=lot, tick_size=lot)
        for qty in (1e25, 3.3e27, 1.2345e30, 9.87e300, math.inf, math.nan, 0.0, -0.0, 1.0):
            for x in (qty, -qty):
                assert _outcome(inst.round_qty, x) == _outcome(_decimal_qty, lot, x)
                for side in Side:
                    assert _outcome(inst.round_price, x, side) == _outcome(_decimal_price, lot, x, side)
