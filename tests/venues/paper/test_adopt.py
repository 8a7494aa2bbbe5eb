"""Paper broker after a restart: journaled working orders re-booked (adopt), numbering continued,
positions restored: it holds what a real venue would still hold."""

from __future__ import annotations

import msgspec
from omnid.model import Liquidity, Order, OrderStatus, OrderType, Side

from tests.venues.paper.test_broker import T0, S, make, order, trade


def journaled(o: Order, *, status: OrderStatus, filled: float = 0.0, venue_id: str = "") -> Order:
    """The order as the journal hands it back (its last state)."""
    return msgspec.structs.replace(o, status=status, filled_qty=filled, venue_order_id=venue_id)


def test_partly_filled_limit_rests_again_and_fills_its_remainder_at_the_limit() -> None:
    """The remainder fills at the limit as a maker; ids, venue id and numbering continue."""
    broker, ev, clock = make()
    o = journaled(order(Side.BUY, 4, OrderType.LIMIT, limit=100.0), status=OrderStatus.PARTIALLY_FILLED,
                  filled=1.0, venue_id="PAPER-7")
    broker.skip_ids_past(7, 20)
    assert broker.adopt(o) is True
    assert ev.updates == []  # already acknowledged before the restart: nothing to say
    assert broker.working_orders() == [o.client_order_id]
    clock.advance_to(T0 + S)
    broker.on_trade(trade(100.5, ts=T0 + S))
    assert ev.fills == []
    broker.on_trade(trade(99.0, ts=T0 + 2 * S))
    (f,) = ev.fills
    assert (f.qty, f.price, f.liquidity) == (3.0, 100.0, Liquidity.MAKER)
    assert f.venue_order_id == "PAPER-7" and f.fill_id == "PAPER-F21"
    assert broker.working_orders() == []


def test_unacknowledged_order_is_acknowledged_and_nothing_is_booked_twice() -> None:
    """SUBMITTED gets its ACCEPTED; a second adopt, a closed order and a resubmit are refused."""
    broker, ev, _ = make()
    o = journaled(order(Side.SELL, 2, OrderType.LIMIT, limit=105.0), status=OrderStatus.SUBMITTED)
    assert broker.adopt(o)
    assert ev.statuses(o.client_order_id) == [OrderStatus.ACCEPTED]
    assert ev.updates[0].venue_order_id.startswith("PAPER-R")
    assert broker.adopt(o) is False
    done = journaled(order(Side.BUY, 1, OrderType.LIMIT, limit=99.0), status=OrderStatus.CANCELLED)
    assert broker.adopt(done) is False
    broker.submit(o)  # the same id again: the venue refuses a duplicate
    assert ev.statuses(o.client_order_id)[-1] is OrderStatus.REJECTED
    assert broker.working_orders() == [o.client_order_id]


def test_adopted_stop_is_armed_again() -> None:
    broker, ev, _ = make()
    o = journaled(order(Side.SELL, 1, OrderType.STOP, stop=95.0), status=OrderStatus.ACCEPTED, venue_id="PAPER-3")
    assert broker.adopt(o)
    broker.on_trade(trade(96.0, ts=T0 + S))
    assert ev.fills == []
    broker.on_trade(trade(94.5, ts=T0 + 2 * S))
    assert [(f.qty, f.price) for f in ev.fills] == [(1.0, 94.5)]


def test_restored_position_lets_a_long_be_sold_without_shorting() -> None:
    broker, ev, _ = make(allow_short=False)
    sell = order(Side.SELL, 2)
    broker.submit(sell)
    assert ev.statuses(sell.client_order_id) == [OrderStatus.REJECTED]
    broker.restore_position("BTC.SIM", 2.0)
    again = order(Side.SELL, 2)
    broker.submit(again)
    assert ev.statuses(again.client_order_id) == [OrderStatus.ACCEPTED]
    assert broker.position("BTC.SIM") == 2.0
