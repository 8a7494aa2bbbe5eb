"""The broker against the local peer: orders over signed REST, fills through executionReport."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import msgspec
import pytest
from omnid.errors import FatalError, TransientError
from omnid.model import Fill, Liquidity, Order, OrderStatus, OrderType, Side, TimeInForce
from omnid.ports import ExecutionClient, OrderUpdate
from omnid.venues.binance.broker import BinanceBroker
from omnid.venues.binance.config import Credentials

from tests.peers.binance_peer import API_KEY, SECRET, BinancePeer, Failure
from tests.venues.binance.conftest import peer_config, peer_rest, until


class Events:
    def __init__(self) -> None:
        self.updates: list[OrderUpdate] = []
        self.fills: list[Fill] = []

    def on_order_update(self, update: OrderUpdate) -> None:
        self.updates.append(update)

    def on_fill(self, fill: Fill) -> None:
        self.fills.append(fill)

    def statuses(self, cid: str) -> list[OrderStatus]:
        return [u.status for u in self.updates if u.client_order_id == cid]


@pytest.fixture
async def broker(peer: BinancePeer, session: aiohttp.ClientSession) -> AsyncIterator[tuple[BinanceBroker, Events]]:
    b = BinanceBroker(peer_config(peer, symbols=["BTCUSDT", "ETHUSDT"]), peer_rest(peer, session),
                      Credentials(API_KEY, SECRET), session=session, query_delays=(0.0, 0.05, 0.05))
    events = Events()
    b.bind(events)
    await asyncio.wait_for(b.start(), 5)
    yield b, events
    await b.stop()


def order(cid: str, qty: float = 0.5, **kw: object) -> Order:
    fields: dict[str, object] = {"client_order_id": cid, "instrument_id": "BTCUSDT.BINANCE", "strategy_id": "s1",
                                 "side": Side.BUY, "qty": qty, "order_type": OrderType.LIMIT,
                                 "limit_price": 50000.004}
    fields.update(kw)
    return Order(**fields)  # type: ignore[arg-type]


def test_is_an_execution_client() -> None:
    def accepts(c: ExecutionClient) -> str:
        return c.venue

    assert BinanceBroker.venue == "BINANCE"
    assert "limit_maker" in BinanceBroker.capabilities.order_types
    assert accepts.__name__ == "accepts"


async def test_start_subscribes_and_reconciles(peer: BinancePeer, broker: tuple[BinanceBroker, Events]) -> None:
    b, _ = broker
    assert peer.subscribed_accounts() == 1
    assert b.balance("USDT") == 10000.0 and b.balance("BTC") == 1.0
    assert b.instruments["BTCUSDT"].tick_size == 0.01 and b.instruments["ETHUSDT"].lot_size == 0.0001
    assert b.stats.reconciles == 1


async def test_limit_order_partial_fills_through_execution_report(
    peer: BinancePeer, broker: tuple[BinanceBroker, Events]
) -> None:
    b, ev = broker
    b.submit(order("o-1"))
    await until(lambda: ev.statuses("o-1") == [OrderStatus.ACCEPTED])
    sent = peer.orders["o-1"]
    assert (str(sent.price), str(sent.qty), sent.type, sent.tif) == ("50000.00", "0.50000", "LIMIT", "GTC")
    peer.fill("o-1", "0.2", "50000.00", maker=True)
    peer.fill("o-1", "0.3", "49999.50")
    await until(lambda: len(ev.fills) == 2)
    f1, f2 = ev.fills
    assert (f1.qty, f1.price, f1.liquidity, f1.strategy_id) == (0.2, 50000.0, Liquidity.MAKER, "s1")
    assert (f2.qty, f2.price, f2.liquidity) == (0.3, 49999.5, Liquidity.TAKER)
    assert f1.commission == pytest.approx(10.0) and f1.commission_currency == "USDT"
    assert f1.venue_order_id == str(sent.order_id) and f1.fill_id != f2.fill_id
    assert b.tracked_status("o-1") is OrderStatus.FILLED
    assert ev.statuses("o-1") == [OrderStatus.ACCEPTED]


async def test_5xx_on_new_order_queries_and_never_resends(
    peer: BinancePeer, broker: tuple[BinanceBroker, Events]
) -> None:
    """The venue took the order but the answer was a 503: the broker asks, and learns it is live."""
    b, ev = broker
    peer.fail_next("POST", "order", Failure(503, None, after_effect=True))
    b.submit(order("o-2"))
    await until(lambda: ev.statuses("o-2") == [OrderStatus.ACCEPTED])
    assert peer.order_posts == 1
    assert next(r for r in peer.requests if r[:2] == ("GET", "order"))[2]["origClientOrderId"] == "o-2"
    assert b.stats.status_queries >= 1


async def test_5xx_without_effect_ends_rejected_after_queries(
    peer: BinancePeer, broker: tuple[BinanceBroker, Events]
) -> None:
    b, ev = broker
    peer.fail_next("POST", "order", Failure(502, None))
    b.submit(order("o-3"))
    await until(lambda: ev.statuses("o-3") == [OrderStatus.REJECTED])
    assert peer.order_posts == 0 and b.stats.status_queries == 3
    assert "no record" in ev.updates[-1].reason


async def test_minus_1007_is_status_unknown(peer: BinancePeer, broker: tuple[BinanceBroker, Events]) -> None:
    b, ev = broker
    peer.fail_next("POST", "order", Failure(
        408, {"code": -1007, "msg": "Timeout waiting for response from backend server. Send status unknown; "
                                    "execution status unknown."}, after_effect=True))
    b.submit(order("o-4"))
    await until(lambda: ev.statuses("o-4") == [OrderStatus.ACCEPTED])
    assert peer.order_posts == 1


async def test_filter_failures_are_rejected_without_retry(
    peer: BinancePeer, broker: tuple[BinanceBroker, Events]
) -> None:
    b, ev = broker
    b.submit(order("small", qty=0.000004))  # rounds to zero at the 0.00001 step: never leaves
    b.submit(order("cheap", qty=0.00001, limit_price=100.0))  # 0.001 USDT < 5 USDT minimum notional
    peer.fail_next("POST", "order", Failure(400, {"code": -1013, "msg": "Filter failure: PERCENT_PRICE_BY_SIDE"}))
    b.submit(order("venue-says-no"))
    await until(lambda: len(ev.updates) == 3)
    assert {u.client_order_id: u.status for u in ev.updates} == {
        "small": OrderStatus.REJECTED, "cheap": OrderStatus.REJECTED, "venue-says-no": OrderStatus.REJECTED}
    assert "NOTIONAL" in next(u.reason for u in ev.updates if u.client_order_id == "cheap")
    assert "-1013" in next(u.reason for u in ev.updates if u.client_order_id == "venue-says-no")
    assert peer.order_posts == 0  # the -1013 came before the peer's handler ran; nothing was retried
    assert sum(1 for r in peer.requests if r[:2] == ("POST", "order")) == 1


async def test_duplicate_order_rejection(peer: BinancePeer, broker: tuple[BinanceBroker, Events]) -> None:
    """-2010 from the venue (here: the id is already live there) is a rejection, not retried."""
    b, ev = broker
    b.submit(order("dup"))
    await until(lambda: ev.statuses("dup") == [OrderStatus.ACCEPTED])
    b2 = BinanceBroker(b.cfg, b.rest, Credentials(API_KEY, SECRET), session=b._session,
                       instruments=b.instruments)
    ev2 = Events()
    b2.bind(ev2)
    b2.submit(order("dup"))
    await until(lambda: ev2.statuses("dup") == [OrderStatus.REJECTED])
    assert "-2010" in ev2.updates[0].reason and peer.order_posts == 2


async def test_rate_limit_stops_sending(peer: BinancePeer, broker: tuple[BinanceBroker, Events]) -> None:
    b, ev = broker
    peer.fail_next("POST", "order", Failure(429, {"code": -1003, "msg": "Too many requests."},
                                            {"Retry-After": "30"}))
    b.submit(order("r-1"))
    await until(lambda: ev.statuses("r-1") == [OrderStatus.REJECTED])
    posts = sum(1 for r in peer.requests if r[:2] == ("POST", "order"))
    b.submit(order("r-2"))
    await until(lambda: ev.statuses("r-2") == [OrderStatus.REJECTED])
    assert sum(1 for r in peer.requests if r[:2] == ("POST", "order")) == posts == 1
    assert "rate limited" in ev.updates[-1].reason and b.rest.banned_for() > 25


async def test_cancel_reports_once(peer: BinancePeer, broker: tuple[BinanceBroker, Events]) -> None:
    b, ev = broker
    b.submit(order("c-1"))
    await until(lambda: ev.statuses("c-1") == [OrderStatus.ACCEPTED])
    peer.fill("c-1", "0.1", "50000.00")
    await until(lambda: len(ev.fills) == 1)
    b.cancel("c-1")
    await until(lambda: OrderStatus.CANCELLED in ev.statuses("c-1"))
    await asyncio.sleep(0.1)  # the executionReport CANCELED arrives too; it must not repeat the update
    assert ev.statuses("c-1") == [OrderStatus.ACCEPTED, OrderStatus.CANCELLED]
    assert peer.orders["c-1"].status == "CANCELED"


async def test_market_order(peer: BinancePeer, broker: tuple[BinanceBroker, Events]) -> None:
    b, ev = broker
    b.submit(order("m-1", qty=0.01, order_type=OrderType.MARKET, limit_price=None))
    await until(lambda: "m-1" in peer.orders)
    assert peer.orders["m-1"].type == "MARKET" and ("GET", "order") not in [r[:2] for r in peer.requests]
    peer.fill("m-1", "0.01", "50010.00")
    await until(lambda: len(ev.fills) == 1)
    assert ev.fills[0].qty == 0.01


async def test_user_stream_reconnect_reconciles_missed_fills(
    peer: BinancePeer, broker: tuple[BinanceBroker, Events]
) -> None:
    b, ev = broker
    b.submit(order("u-1"))
    await until(lambda: ev.statuses("u-1") == [OrderStatus.ACCEPTED])
    await peer.drop_api()
    await until(lambda: peer.subscribed_accounts() == 0)
    peer.fill("u-1", "0.25", "50000.00")  # nobody is listening: only a reconcile can learn this
    await until(lambda: b.stats.reconciles == 2 and peer.subscribed_accounts() == 1)
    await until(lambda: len(ev.fills) == 1)
    assert (ev.fills[0].qty, ev.fills[0].price) == (0.25, 50000.0)
    peer.fill("u-1", "0.25", "50001.00")  # the stream is back: the next fill comes from it, once
    await until(lambda: len(ev.fills) == 2)
    await asyncio.sleep(0.05)
    assert [f.qty for f in ev.fills] == [0.25, 0.25] and ev.fills[1].price == 50001.0


async def test_server_shutdown_on_the_ws_api(peer: BinancePeer, broker: tuple[BinanceBroker, Events]) -> None:
    b, _ = broker
    await peer.server_shutdown()
    await until(lambda: b.stats.user_connections == 2 and peer.subscribed_accounts() == 1)


async def test_bad_key_is_fatal_for_the_user_stream(peer: BinancePeer, session: aiohttp.ClientSession) -> None:
    b = BinanceBroker(peer_config(peer), peer_rest(peer, session), Credentials("nope" * 16, SECRET),
                      session=session)
    with pytest.raises(FatalError, match="-2015"):
        await asyncio.wait_for(b.start(), 5)
    await b.stop()


async def test_start_refuses_to_trade_blind(peer: BinancePeer, session: aiohttp.ClientSession) -> None:
    """No user data stream (here: nothing listens at its URL) → start fails instead of hanging."""
    b = BinanceBroker(peer_config(peer, ws_api_url="ws://127.0.0.1:9/ws-api/v3"), peer_rest(peer, session),
                      Credentials(API_KEY, SECRET), session=session)
    with pytest.raises(TransientError, match="not subscribed"):
        await b.start(timeout_s=0.3)
    await b.stop()


async def test_minus_1021_resyncs_and_succeeds(peer: BinancePeer, session: aiohttp.ClientSession) -> None:
    """The peer's clock runs 10 s ahead of ours: the first signed call gets -1021, then works."""
    rest = peer_rest(peer, session)
    peer.time_offset_ms = 10_000
    account = await rest.account()
    assert account["balances"] and rest.time_syncs == 1
    assert abs(rest.offset_ms - 10_000) < 1000
    assert [r[1] for r in peer.requests] == ["account", "time", "account"]


def test_secrets_never_in_reprs(peer: BinancePeer) -> None:
    creds = Credentials(API_KEY, SECRET)
    assert SECRET not in repr(creds) and SECRET not in str(creds) and API_KEY not in repr(creds)


async def test_restart_adopts_journaled_orders_and_routes_their_fills(
    peer: BinancePeer, session: aiohttp.ClientSession, broker: tuple[BinanceBroker, Events]
) -> None:
    """A fresh broker (after a restart) adopts an order from the journal; reconcile books what
    filled while it was down, and later executionReports reach it with the right strategy."""
    first, ev1 = broker
    first.submit(order("j-1"))
    await until(lambda: ev1.statuses("j-1") == [OrderStatus.ACCEPTED])
    await first.stop()
    peer.fill("j-1", "0.1", "50000.00")  # while omnid is down
    journaled = order("j-1", status=OrderStatus.ACCEPTED)
    second = BinanceBroker(first.cfg, peer_rest(peer, session), Credentials(API_KEY, SECRET), session=session)
    ev2 = Events()
    second.bind(ev2)
    second.adopt(journaled)
    await asyncio.wait_for(second.start(), 5)
    try:
        assert [(f.qty, f.price, f.strategy_id) for f in ev2.fills] == [(0.1, 50000.0, "s1")]
        peer.fill("j-1", "0.4", "50001.00")
        await until(lambda: len(ev2.fills) == 2)
        assert ev2.fills[1].qty == 0.4 and second.tracked_status("j-1") is OrderStatus.FILLED
        assert ev2.updates == []  # it was already accepted: nothing to repeat
    finally:
        await second.stop()


async def test_terminal_answer_books_the_fill_once(peer: BinancePeer, broker: tuple[BinanceBroker, Events]) -> None:
    """An IOC that part-filled and expired: the REST answer books the fill before EXPIRED, and the
    executionReport for that same fill (cumulative qty already booked) is not counted again."""
    b, ev = broker
    b.submit(order("ioc-1", tif=TimeInForce.IOC))
    await until(lambda: ev.statuses("ioc-1") == [OrderStatus.ACCEPTED])
    tr = b._orders["ioc-1"]
    b._apply_order(tr, {"status": "EXPIRED", "executedQty": "0.20000000", "cummulativeQuoteQty": "10000.00000000",
                        "orderId": 7})
    assert [(f.qty, f.price) for f in ev.fills] == [(0.2, 50000.0)]
    assert ev.statuses("ioc-1") == [OrderStatus.ACCEPTED, OrderStatus.EXPIRED]
    report = {"subscriptionId": 0, "event": {
        "e": "executionReport", "E": 1, "s": "BTCUSDT", "c": "ioc-1", "S": "BUY", "o": "LIMIT", "f": "IOC",
        "q": "0.5", "p": "50000", "x": "TRADE", "X": "PARTIALLY_FILLED", "r": "NONE", "i": 7, "l": "0.2",
        "z": "0.2", "L": "50000", "n": "0.1", "N": "USDT", "T": 2, "t": 99, "m": False, "Z": "10000", "C": ""}}
    b.on_user_frame(msgspec.json.encode(report))
    assert len(ev.fills) == 1
    b.on_user_frame(b'{"subscriptionId":0,"event":{"e":"executionReport","s":1}}')
    b.on_user_frame(b"not json")
    assert b.stats.malformed == 2 and len(ev.fills) == 1


async def test_orders_for_a_halted_symbol_never_leave(peer: BinancePeer, session: aiohttp.ClientSession) -> None:
    peer.symbol_status["ETHUSDT"] = "BREAK"
    b = BinanceBroker(peer_config(peer, symbols=["BTCUSDT", "ETHUSDT"]), peer_rest(peer, session),
                      Credentials(API_KEY, SECRET), session=session)
    ev = Events()
    b.bind(ev)
    await asyncio.wait_for(b.start(), 5)
    try:
        b.submit(order("eth-1", qty=0.01, instrument_id="ETHUSDT.BINANCE", limit_price=3000.0))
        b.submit(order("zzz-1", instrument_id="ZZZUSDT.BINANCE"))
        await until(lambda: len(ev.updates) == 2)
        reasons = {u.client_order_id: u.reason for u in ev.updates}
        assert "not trading" in reasons["eth-1"] and "unknown symbol" in reasons["zzz-1"]
        assert peer.order_posts == 0
    finally:
        await b.stop()


async def test_user_stream_planned_reconnect(peer: BinancePeer, session: aiohttp.ClientSession) -> None:
    b = BinanceBroker(peer_config(peer, max_connection_age_s=0.3), peer_rest(peer, session),
                      Credentials(API_KEY, SECRET), session=session)
    b.bind(Events())
    await asyncio.wait_for(b.start(), 5)
    try:
        await until(lambda: b.stats.user_connections >= 2 and b.stats.reconciles >= 2)
        assert peer.api_connections >= 2
    finally:
        await b.stop()
