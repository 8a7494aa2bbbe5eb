"""Order manager: deterministic ids, the state machine driven by a real paper broker, the journal
written before the send (the storage part's real journal), illegal or unknown reports recorded
rather than raised, routing by venue, cancel-all and restart resume."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest
from omnid.clock import SimClock
from omnid.errors import StorageError
from omnid.execution import (
    ClientOrderIds,
    ExecutionIssue,
    IssueKind,
    MemoryJournal,
    OrderManager,
    Router,
    parse_client_order_id,
    venue_of,
)
from omnid.model import Fill, Order, OrderIntent, OrderStatus, OrderType, Side, Trade
from omnid.portfolio import Portfolio
from omnid.ports import ExecutionEvents, ListRecorder, OrderUpdate, VenueCapabilities
from omnid.storage.journal import Journal, replay
from omnid.venues.paper import PaperBroker, PaperConfig

T0 = 1_767_225_600 * 10**9
IID = "BTC.PAPER"
BINANCE_ID = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")


def intent(side: Side = Side.BUY, qty: float = 1.0, strategy: str = "sma_cross", **kw: object) -> OrderIntent:
    return OrderIntent(strategy_id=strategy, instrument_id=kw.pop("iid", IID), side=side, qty=qty, **kw)  # type: ignore[arg-type]


def trade(price: float, iid: str = IID) -> Trade:
    return Trade(instrument_id=iid, price=price, size=0.0, side=Side.NONE, ts_event=T0, ts_init=T0)


class Rig:
    def __init__(self, *, journal: object = None, session: str = "r1", **paper: object) -> None:
        self.clock = SimClock(T0)
        self.portfolio = Portfolio(self.clock, initial_cash=10_000.0)
        self.broker = PaperBroker(self.clock, msgspec.convert(paper, PaperConfig))
        self.recorder = ListRecorder()
        self.router = Router([self.broker])
        self.om = OrderManager(
            clock=self.clock,
            router=self.router,
            portfolio=self.portfolio,
            recorder=self.recorder,
            journal=journal,  # type: ignore[arg-type]
            session=session,
        )

    def recorded(self, typ: type) -> list:  # type: ignore[type-arg]
        return [x for x in self.recorder.items if type(x) is typ]


class Scripted:
    """A venue that says what the test tells it to (for reports a real broker would not send)."""

    capabilities = VenueCapabilities()

    def __init__(self, venue: str) -> None:
        self.venue = venue
        self.events: ExecutionEvents | None = None
        self.submitted: list[str] = []
        self.cancelled: list[str] = []
        self.fail = False

    def bind(self, events: ExecutionEvents) -> None:
        self.events = events

    def submit(self, order: Order) -> None:
        if self.fail:
            raise RuntimeError("socket closed")
        self.submitted.append(order.client_order_id)

    def cancel(self, client_order_id: str) -> None:
        self.cancelled.append(client_order_id)


def test_ids_are_deterministic_unique_and_venue_safe() -> None:
    a, b = ClientOrderIds("r1"), ClientOrderIds("r1")
    names = ["sma_cross:BTCUSDT.BINANCE", "momentum", "sma_cross:ETHUSDT.BINANCE", "a" * 80]
    ids_a = [a.next(n) for n in names * 3]
    assert ids_a == [b.next(n) for n in names * 3]
    assert len(set(ids_a)) == len(ids_a)
    assert all(BINANCE_ID.match(i) for i in ids_a)
    assert ids_a[0] == "r1-smacrossBTCU-1"
    assert parse_client_order_id(ids_a[-1]) == ("r1", "a" * 12, 12)
    assert ids_a[0] != ClientOrderIds("r2").next(names[0])


def test_bad_session_prefix_is_a_config_error() -> None:
    from omnid.errors import ConfigError

    with pytest.raises(ConfigError, match="session"):
        ClientOrderIds("run-1")


def test_market_order_life_through_the_paper_broker() -> None:
    rig = Rig(commission_rate=0.001)
    o = rig.om.submit(intent(qty=2, reason="fast crossed slow"))
    assert o.status is OrderStatus.ACCEPTED and o.venue_order_id == "PAPER-1"
    assert rig.om.open_orders() == [o]
    rig.broker.on_trade(trade(100.0))
    assert o.status is OrderStatus.FILLED and o.filled_qty == 2 and o.avg_fill_price == 100.0
    assert rig.om.open_orders() == [] and rig.om.get(o.client_order_id) is o
    assert rig.portfolio.position_qty(IID) == 2
    assert rig.portfolio.cash() == pytest.approx(10_000 - 200 - 0.2)
    # every state change recorded as a copy, in order; and the fill
    assert [x.status for x in rig.recorded(Order)] == [
        OrderStatus.NEW,
        OrderStatus.SUBMITTED,
        OrderStatus.ACCEPTED,
        OrderStatus.FILLED,
    ]
    assert [f.qty for f in rig.recorded(Fill)] == [2]
    assert [u.status for u in rig.recorded(OrderUpdate)] == [OrderStatus.ACCEPTED]
    assert rig.recorded(ExecutionIssue) == []


def test_partial_fills_then_cancel() -> None:
    rig = Rig(participation=0.5)
    o = rig.om.submit(intent(qty=10, order_type=OrderType.LIMIT, limit_price=100.0))
    rig.broker.on_trade(Trade(instrument_id=IID, price=99.0, size=6, side=Side.SELL, ts_event=T0, ts_init=T0))
    assert o.status is OrderStatus.PARTIALLY_FILLED and o.filled_qty == 3
    assert rig.om.cancel_all() == [o.client_order_id]
    assert o.status is OrderStatus.CANCELLED and rig.om.open_orders() == []
    assert rig.portfolio.position_qty(IID) == 3


def test_open_orders_filter_and_cancel_all_by_strategy() -> None:
    rig = Rig()
    a = rig.om.submit(intent(order_type=OrderType.LIMIT, limit_price=1.0, strategy="a"))
    b = rig.om.submit(intent(order_type=OrderType.LIMIT, limit_price=1.0, strategy="b"))
    c = rig.om.submit(intent(order_type=OrderType.LIMIT, limit_price=1.0, strategy="a", iid="ETH.PAPER"))
    assert rig.om.open_orders(strategy_id="a") == [a, c]
    assert rig.om.open_orders(instrument_id="ETH.PAPER") == [c]
    assert rig.om.has_open_orders(IID)
    assert rig.om.cancel_all(strategy_id="a") == [a.client_order_id, c.client_order_id]
    assert rig.om.open_orders() == [b]
    assert not rig.om.cancel(a.client_order_id)  # already done


def test_illegal_transition_is_recorded_not_raised() -> None:
    clock = SimClock(T0)
    venue = Scripted("X")
    rec = ListRecorder()
    om = OrderManager(clock=clock, router=Router([venue]), portfolio=Portfolio(clock), recorder=rec)
    o = om.submit(intent(iid="BTC.X"))
    assert venue.events is not None
    venue.events.on_fill(
        Fill(
            fill_id="f1",
            client_order_id=o.client_order_id,
            instrument_id="BTC.X",
            strategy_id="sma_cross",
            side=Side.BUY,
            qty=1,
            price=5.0,
            ts_event=T0,
        )
    )
    assert o.status is OrderStatus.FILLED
    venue.events.on_order_update(
        OrderUpdate(client_order_id=o.client_order_id, status=OrderStatus.CANCELLED, ts_event=T0)
    )
    assert o.status is OrderStatus.FILLED
    issues = [x for x in rec.items if isinstance(x, ExecutionIssue)]
    assert [i.kind for i in issues] == [IssueKind.ILLEGAL_TRANSITION]
    assert "filled to cancelled" in issues[0].message
    assert om.issues == 1


def test_unknown_duplicate_and_mismatched_reports() -> None:
    clock = SimClock(T0)
    venue = Scripted("X")
    rec = ListRecorder()
    pf = Portfolio(clock)
    om = OrderManager(clock=clock, router=Router([venue]), portfolio=pf, recorder=rec)
    assert venue.events is not None
    f = Fill(
        fill_id="f9",
        client_order_id="manual-1",
        instrument_id="BTC.X",
        strategy_id="",
        side=Side.SELL,
        qty=1,
        price=5.0,
        ts_event=T0,
    )
    venue.events.on_fill(f)
    venue.events.on_fill(f)  # delivered twice after a reconnect
    venue.events.on_order_update(
        OrderUpdate(client_order_id="ghost", status=OrderStatus.ACCEPTED, ts_event=T0)
    )
    o = om.submit(intent(iid="BTC.X", side=Side.BUY))
    venue.events.on_fill(
        Fill(
            fill_id="f10",
            client_order_id=o.client_order_id,
            instrument_id="BTC.X",
            strategy_id="",
            side=Side.SELL,
            qty=1,
            price=5.0,
            ts_event=T0,
        )
    )
    kinds = [x.kind for x in rec.items if isinstance(x, ExecutionIssue)]
    assert kinds == [
        IssueKind.UNKNOWN_ORDER,
        IssueKind.DUPLICATE_FILL,
        IssueKind.UNKNOWN_ORDER,
        IssueKind.BAD_FILL,
    ]
    assert pf.position_qty("BTC.X") == -1  # the venue's fill counts once; the mismatched one not at all
    assert o.status is OrderStatus.SUBMITTED


def test_invalid_intents_become_rejected_orders() -> None:
    rig = Rig()
    for bad, why in [
        (intent(qty=0), "quantity"),
        (intent(qty=float("nan")), "quantity"),
        (intent(order_type=OrderType.LIMIT), "limit_price"),
        (intent(order_type=OrderType.STOP_LIMIT, limit_price=1.0), "stop_price"),
        (intent(side=Side.NONE), "side"),
        (intent(qty=float("inf")), "quantity"),
        (intent(qty=-1.0), "quantity"),
        (intent(order_type=OrderType.STOP, qty=1.0), "stop_price"),
    ]:
        o = rig.om.submit(bad)
        assert o.status is OrderStatus.REJECTED and why in o.reject_reason
    assert rig.broker.working_orders() == [] and rig.om.open_orders() == []


def test_routing_by_venue_and_default() -> None:
    clock = SimClock(T0)
    binance, alpaca = Scripted("BINANCE"), Scripted("ALPACA")
    paper = PaperBroker(clock)
    router = Router([binance, alpaca], default=paper)
    om = OrderManager(clock=clock, router=router)
    a = om.submit(intent(iid="BTCUSDT.BINANCE"))
    b = om.submit(intent(iid="BRK.B.ALPACA"))
    c = om.submit(intent(iid="RELIANCE.NSE"))
    assert binance.submitted == [a.client_order_id] and alpaca.submitted == [b.client_order_id]
    assert paper.working_orders() == [c.client_order_id] and venue_of("BRK.B.ALPACA") == "ALPACA"
    lone = OrderManager(clock=clock, router=Router([binance]))
    d = lone.submit(intent(iid="X.NSE"))
    assert d.status is OrderStatus.REJECTED and "no execution client" in d.reject_reason


def test_a_client_added_later_takes_the_routes_the_default_had() -> None:
    """The manager reads the router's route cache itself: adding a client must still reroute."""
    clock = SimClock(T0)
    paper = PaperBroker(clock)
    router = Router(default=paper)
    om = OrderManager(clock=clock, router=router)
    a = om.submit(intent(iid="BTCUSDT.BINANCE"))
    binance = Scripted("BINANCE")
    router.add(binance)
    b = om.submit(intent(iid="BTCUSDT.BINANCE"))
    assert paper.working_orders() == [a.client_order_id] and binance.submitted == [b.client_order_id]
    assert b.status is OrderStatus.SUBMITTED and binance.events is om


def test_client_that_raises_rejects_the_order() -> None:
    clock = SimClock(T0)
    venue = Scripted("X")
    venue.fail = True
    om = OrderManager(clock=clock, router=Router([venue]))
    o = om.submit(intent(iid="A.X"))
    assert o.status is OrderStatus.REJECTED and "socket closed" in o.reject_reason
    assert om.open_orders() == []


def test_venue_rejection_moves_the_order_to_rejected() -> None:
    rig = Rig(allow_short=False)
    o = rig.om.submit(intent(side=Side.SELL))
    assert o.status is OrderStatus.REJECTED and "short" in o.reject_reason
    assert rig.om.open_orders() == []


class _FailingJournal:
    def append(self, item: msgspec.Struct) -> None:
        raise StorageError("disk full")


def test_journal_failure_means_the_order_is_never_sent() -> None:
    rig = Rig(journal=_FailingJournal())
    o = rig.om.submit(intent())
    assert o.status is OrderStatus.REJECTED and "disk full" in o.reject_reason
    assert rig.broker.working_orders() == []
    assert [i.kind for i in rig.recorded(ExecutionIssue)] == [IssueKind.JOURNAL_FAILED]


def test_order_is_journaled_before_the_client_sees_it(tmp_path: Path) -> None:
    """With the storage part's file journal: the record is on disk when submit() reaches the venue,
    and a replay restores the orders, the portfolio and the id sequence."""
    path = tmp_path / "journal.wal"
    journal = Journal(path)
    clock = SimClock(T0)
    seen_in_journal: list[bool] = []

    class Peek(Scripted):
        def submit(self, order: Order) -> None:
            recs = list(journal.records())
            seen_in_journal.append(
                any(isinstance(r, Order) and r.client_order_id == order.client_order_id for r in recs)
            )
            super().submit(order)

    venue = Peek("X")
    pf = Portfolio(clock, initial_cash=1000.0)
    om = OrderManager(clock=clock, router=Router([venue]), portfolio=pf, journal=journal, session="d1")
    first = om.submit(intent(iid="A.X", qty=3))
    second = om.submit(intent(iid="A.X", qty=1, order_type=OrderType.LIMIT, limit_price=2.0))
    assert seen_in_journal == [True, True]
    assert venue.events is not None
    venue.events.on_order_update(
        OrderUpdate(
            client_order_id=first.client_order_id,
            status=OrderStatus.ACCEPTED,
            ts_event=T0,
            venue_order_id="v1",
        )
    )
    venue.events.on_fill(
        Fill(
            fill_id="f1",
            client_order_id=first.client_order_id,
            instrument_id="A.X",
            strategy_id="sma_cross",
            side=Side.BUY,
            qty=3,
            price=4.0,
            ts_event=T0,
        )
    )
    journal.close()

    state = replay(path)
    assert state.problems == []
    assert state.orders[first.client_order_id].status is OrderStatus.FILLED
    assert [o.client_order_id for o in state.open_orders] == [second.client_order_id]
    restored = Portfolio(clock, initial_cash=1000.0)
    state.restore_portfolio(restored)
    assert restored.exact() == pf.exact()

    om2 = OrderManager(clock=clock, router=Router([Scripted("X")]), session="d1")
    assert om2.resume(state.orders.values(), last_seq=state.last_seq) == 1
    third = om2.submit(intent(iid="A.X"))
    assert parse_client_order_id(third.client_order_id) == ("d1", "smacross", 3)
    assert om2.open_orders()[0].client_order_id == second.client_order_id


def test_memory_journal_keeps_the_state_at_append_time() -> None:
    j = MemoryJournal()
    rig = Rig(journal=j)
    o = rig.om.submit(intent())
    rig.broker.on_trade(trade(10.0))
    first = msgspec.msgpack.decode(j.entries[0], type=Order)
    assert first.client_order_id == o.client_order_id and first.status is OrderStatus.SUBMITTED
    assert o.status is OrderStatus.FILLED and len(j.entries) == 3  # order, ack, fill


def test_listeners_see_fills_and_a_failing_listener_is_contained() -> None:
    rig = Rig()
    got: list[tuple[str, str]] = []
    rig.om.fill_listeners.append(lambda f, o: got.append((f.fill_id, o.status.value if o else "")))

    def boom(order: Order) -> None:
        raise ValueError("listener bug")

    rig.om.order_listeners.append(boom)
    rig.om.submit(intent())
    rig.broker.on_trade(trade(10.0))
    assert got == [("PAPER-F1", "filled")]


def test_same_inputs_give_the_same_orders_run_after_run() -> None:
    def run() -> list[tuple[str, str, float]]:
        rig = Rig(participation=0.5)
        for k in range(5):
            rig.om.submit(intent(qty=3 + k, strategy=f"s{k % 2}"))
            rig.broker.on_trade(
                Trade(
                    instrument_id=IID,
                    price=100.0 + k,
                    size=4,
                    side=Side.NONE,
                    ts_event=T0 + k,
                    ts_init=T0 + k,
                )
            )
        return [(f.client_order_id, f.fill_id, f.qty) for f in rig.recorded(Fill)]

    assert run() == run()


def test_router_refuses_two_clients_for_one_venue_and_needs_a_handler() -> None:
    from omnid.errors import ConfigError, RejectedError

    router = Router([Scripted("X")])
    with pytest.raises(ConfigError, match="two clients"):
        router.add(Scripted("X"))
    with pytest.raises(RejectedError, match="not bound"):
        router.on_fill(
            Fill(
                fill_id="f",
                client_order_id="c",
                instrument_id="A.X",
                strategy_id="",
                side=Side.BUY,
                qty=1,
                price=1.0,
            )
        )
    assert router.venues == ["X"]
