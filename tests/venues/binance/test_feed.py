"""The market-data feed against the local peer: trades, book sync with a gap, drops, silence, shutdown."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import pytest
from omnid.errors import FatalError, TransientError
from omnid.model import Bar, BookDelta, BookSnapshot, MarketEvent, Quote, Side, Trade
from omnid.venues.binance.feed import BinanceFeed, backoff_policy
from omnid.venues.binance.rest import BinanceRest

from tests.peers.binance_peer import BinancePeer
from tests.venues.binance.conftest import peer_config, peer_rest, until


class Running:
    def __init__(self, feed: BinanceFeed, task: asyncio.Task[None], events: list[MarketEvent]) -> None:
        self.feed, self.task, self.events = feed, task, events

    def of(self, kind: type) -> list:  # type: ignore[type-arg]
        return [e for e in self.events if isinstance(e, kind)]


async def start_feed(peer: BinancePeer, session: aiohttp.ClientSession, **kw: object) -> Running:
    events: list[MarketEvent] = []
    rest = peer_rest(peer, session)
    feed = BinanceFeed(peer_config(peer, **kw), events.append, session=session, rest=rest)
    task = asyncio.create_task(feed.run())
    await asyncio.wait_for(feed.subscribed.wait(), 5)
    return Running(feed, task, events)


@pytest.fixture
async def running(peer: BinancePeer, session: aiohttp.ClientSession) -> AsyncIterator[Running]:
    r = await start_feed(peer, session)
    yield r
    r.feed.stop()
    await asyncio.wait_for(r.task, 5)


async def test_session_with_trades_and_quotes(peer: BinancePeer, running: Running) -> None:
    """Subscribes to the configured streams and turns trades and bookTickers into domain events."""
    assert peer.subscribe_requests == [["btcusdt@trade", "btcusdt@bookTicker", "btcusdt@depth@100ms",
                                        "btcusdt@kline_1m"]]
    await peer.trade("BTCUSDT", "50000.10", "0.002", buyer_maker=True)
    await peer.trade("BTCUSDT", "50000.20", "0.5")
    await peer.book_ticker("BTCUSDT", "49999.99", "1.5", "50000.01", "2.25")
    await until(lambda: len(running.of(Trade)) == 2 and len(running.of(Quote)) == 1)
    t1, t2 = running.of(Trade)
    assert (t1.instrument_id, t1.price, t1.size, t1.side) == ("BTCUSDT.BINANCE", 50000.10, 0.002, Side.SELL)
    assert t2.side is Side.BUY and t2.trade_id == "2"
    assert abs(t1.ts_event - time.time_ns()) < 5e9 and t1.ts_event % 1_000_000 == 0
    q = running.of(Quote)[0]
    assert (q.bid, q.ask, q.bid_size, q.ask_size) == (49999.99, 50000.01, 1.5, 2.25)


async def test_book_sync_and_resync_after_gap(peer: BinancePeer, running: Running) -> None:
    """Buffers diffs, syncs from a snapshot, detects a U/u gap, resyncs, and ends equal to the venue's book."""
    await peer.book_update("BTCUSDT", [("100.00", "1")], [("101.00", "2")])
    await peer.book_update("BTCUSDT", [("99.50", "3")], [("101.50", "1")])
    await until(lambda: running.feed.stats.resyncs == 1)
    await peer.book_update("BTCUSDT", [("100.00", "0")], [("101.00", "5")])
    await until(lambda: len(running.of(BookDelta)) >= 1)
    # The deliberate gap: the venue moves on without us seeing update 4.
    await peer.book_update("BTCUSDT", [("98.00", "7")], [], emit=False)
    await peer.book_update("BTCUSDT", [("99.00", "1")], [("102.00", "4")])
    await until(lambda: running.feed.stats.resyncs == 2)
    await peer.book_update("BTCUSDT", [("99.00", "2")], [])
    await until(lambda: running.feed.books["BTCUSDT"].update_id == peer.update_ids["BTCUSDT"])
    assert running.feed.stats.gaps == 1
    assert [r[1] for r in peer.requests].count("depth") == 2
    book = running.feed.books["BTCUSDT"]
    bids, asks = peer.books["BTCUSDT"]
    assert book.bids == {float(p): float(q) for p, q in bids.items()}
    assert book.asks == {float(p): float(q) for p, q in asks.items()}
    snaps = running.of(BookSnapshot)
    assert len(snaps) == 2 and snaps[-1].bids[0].price == 99.5 and snaps[-1].asks[0].price == 101.0


async def test_stale_diffs_are_dropped(peer: BinancePeer, running: Running) -> None:
    """A diff whose u is not past the book's id is ignored, not applied twice."""
    await peer.book_update("BTCUSDT", [("100.00", "1")], [("101.00", "2")])
    await until(lambda: running.feed.stats.resyncs == 1)
    await peer.push("btcusdt@depth@100ms", {"e": "depthUpdate", "E": 1, "s": "BTCUSDT", "U": 1, "u": 1,
                                            "b": [["100.00", "9"]], "a": []})
    await peer.book_update("BTCUSDT", [], [("101.00", "3")])
    await until(lambda: running.feed.books["BTCUSDT"].asks.get(101.0) == 3.0)
    assert running.feed.stats.stale == 1 and running.feed.books["BTCUSDT"].bids[100.0] == 1.0


async def test_dropped_connection_reconnects_and_resubscribes(peer: BinancePeer, running: Running) -> None:
    await peer.drop_streams()
    await until(lambda: running.feed.stats.connections == 2 and running.feed.subscribed.is_set())
    assert len(peer.subscribe_requests) == 2 and peer.subscribe_requests[0] == peer.subscribe_requests[1]
    await peer.trade("BTCUSDT", "1.00", "1")
    await until(lambda: len(running.of(Trade)) == 1)


async def test_silence_is_detected_as_dead(peer: BinancePeer, session: aiohttp.ClientSession) -> None:
    r = await start_feed(peer, session, silence_timeout_s=0.3)
    try:
        await until(lambda: r.feed.stats.silent >= 1 and r.feed.stats.connections >= 2)
    finally:
        r.feed.stop()
        await r.task


async def test_server_shutdown_moves_to_a_new_socket_without_a_gap(peer: BinancePeer, running: Running) -> None:
    """On serverShutdown a new socket subscribes at once; the old one streams until then, then goes."""
    await peer.server_shutdown()
    sent = 0
    while running.feed.stats.connections < 2 or len(peer.stream_clients) != 1:
        await peer.trade("BTCUSDT", "1.00", "1")
        sent += 1
        await asyncio.sleep(0.002)
    for _ in range(5):
        await peer.trade("BTCUSDT", "1.00", "1")
        sent += 1
    await until(lambda: len(running.of(Trade)) >= sent)
    assert sorted(int(t.trade_id) for t in running.of(Trade)) == list(range(1, sent + 1))
    assert running.feed.stats.server_shutdowns == 1 and peer.stream_connections == 2


async def test_planned_reconnect_before_the_cut(peer: BinancePeer, session: aiohttp.ClientSession) -> None:
    r = await start_feed(peer, session, max_connection_age_s=0.3)
    try:
        await until(lambda: r.feed.stats.planned_reconnects >= 1 and r.feed.stats.connections >= 2)
        await until(lambda: len(peer.subscribe_requests) >= 2)
    finally:
        r.feed.stop()
        await r.task


async def test_malformed_messages_are_counted_and_skipped(peer: BinancePeer, running: Running) -> None:
    await peer.push("btcusdt@trade", '{"e":"trade","E":1,"s":"BTCUSDT","p":"abc"}')
    await peer.push("btcusdt@trade", '{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"x","q":"1","T":1,"m":true}')
    await peer.push_raw("this is not json")
    await peer.push("btcusdt@depth@100ms", '{"e":"depthUpdate","U":"a"}')
    await peer.trade("BTCUSDT", "2.00", "1")
    await until(lambda: len(running.of(Trade)) == 1)
    assert running.feed.stats.malformed == {"trade": 2, "envelope": 1, "depth@100ms": 1}
    assert running.feed.stats.connections == 1


async def test_callback_errors_do_not_kill_the_feed(peer: BinancePeer, session: aiohttp.ClientSession) -> None:
    seen: list[MarketEvent] = []

    def engine(e: MarketEvent) -> None:
        seen.append(e)
        if len(seen) == 1:
            raise ValueError("strategy bug")

    feed = BinanceFeed(peer_config(peer), engine, session=session, rest=peer_rest(peer, session))
    task = asyncio.create_task(feed.run())
    await asyncio.wait_for(feed.subscribed.wait(), 5)
    await peer.trade("BTCUSDT", "1.00", "1")
    await peer.trade("BTCUSDT", "2.00", "1")
    await until(lambda: len(seen) == 2)
    assert feed.stats.callback_errors == 1
    feed.stop()
    await task


async def test_missed_klines_are_fetched_after_reconnect(peer: BinancePeer, running: Running) -> None:
    """Closed bars from the stream, then a drop: the bars closed while away come over REST, in order."""
    now_ms = peer.now_ms()
    start = (now_ms // 60_000 - 8) * 60_000
    peer.add_klines("BTCUSDT", start, 9)  # the last one is still open
    rows = peer.klines["BTCUSDT"]
    await peer.kline("BTCUSDT", "1m", rows[0], closed=False)
    await peer.kline("BTCUSDT", "1m", rows[0], closed=True)
    await peer.kline("BTCUSDT", "1m", rows[1], closed=True)
    await until(lambda: len(running.of(Bar)) == 2)
    await peer.drop_streams()
    await until(lambda: running.feed.stats.recovered_bars == 6)
    await peer.kline("BTCUSDT", "1m", rows[7], closed=True)  # the stream repeats one: not emitted twice
    await peer.trade("BTCUSDT", "1.00", "1")
    await until(lambda: len(running.of(Trade)) == 1)
    bars = running.of(Bar)
    assert [b.ts_open // 1_000_000 for b in bars] == [r[0] for r in rows[:8]]
    assert bars[0].interval_ns == 60 * 10**9 and bars[0].ts_event == bars[0].ts_open + 60 * 10**9
    assert (bars[2].open, bars[2].high, bars[2].low, bars[2].close) == (102.0, 104.0, 101.0, 103.0)


async def test_policy_gives_up_and_run_raises(session: aiohttp.ClientSession, peer: BinancePeer) -> None:
    cfg = peer_config(peer, ws_url="ws://127.0.0.1:9", reconnect_max_attempts=2)
    feed = BinanceFeed(cfg, lambda e: None, session=session, rest=BinanceRest(session, peer.rest_url))
    with pytest.raises(OSError):
        await asyncio.wait_for(feed.run(), 5)
    assert feed.failed is not None


def test_backoff_is_exponential_jittered_capped_and_stops_on_fatal() -> None:
    lo = backoff_policy(1.0, 8.0, rng=lambda: 0.0)
    hi = backoff_policy(1.0, 8.0, rng=lambda: 1.0)
    assert [lo(n, None) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert [hi(n, None) for n in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert lo(1, FatalError("bad key")) is None
    assert lo(3, TransientError("x")) == 2.0
    limited = backoff_policy(1.0, 8.0, max_attempts=3)
    assert limited(3, None) is not None and limited(4, None) is None


def test_decimal_strings_become_exact_floats() -> None:
    """The wire's decimal strings decode to the nearest float, as Decimal would round them."""
    from omnid.venues.binance.wire import decode_trade

    t = decode_trade(b'{"e":"trade","E":1,"s":"ETHBTC","t":7,"p":"0.06123400","q":"12.34500000","T":5,"m":false}', 9)
    assert t.price == float(Decimal("0.061234")) and t.size == 12.345 and t.ts_event == 5_000_000
    assert t.ts_init == 9 and t.instrument_id == "ETHBTC.BINANCE"


async def test_pings_are_answered(session: aiohttp.ClientSession) -> None:
    """The server pings every 0.1 s and drops a client that does not pong; ours stays connected."""
    fast = BinancePeer(ping_interval=0.1)
    await fast.start()
    try:
        r = await start_feed(fast, session)
        await asyncio.sleep(1.0)
        assert r.feed.stats.connections == 1 and fast.stream_connections == 1 and r.feed.state == "connected"
        await fast.trade("BTCUSDT", "1.00", "1")
        await until(lambda: len(r.of(Trade)) == 1)
        r.feed.stop()
        await r.task
    finally:
        await fast.stop()


async def test_silence_is_detected_while_pings_still_flow(session: aiohttp.ClientSession) -> None:
    """Pings keep the socket alive but carry no data: the stream still counts as dead."""
    fast = BinancePeer(ping_interval=0.1)
    await fast.start()
    try:
        r = await start_feed(fast, session, silence_timeout_s=0.5)
        await until(lambda: r.feed.stats.silent >= 1 and r.feed.stats.connections >= 2)
        status = r.feed.status()
        assert status.name == "binance" and status.reconnects >= 1
        assert status.instruments == ["BTCUSDT.BINANCE"]
        r.feed.stop()
        await r.task
    finally:
        await fast.stop()


async def test_planned_handover_loses_and_repeats_nothing(peer: BinancePeer, session: aiohttp.ClientSession) -> None:
    """At the age limit a new socket subscribes before the old one closes: a steady trade stream
    across several handovers arrives complete, each trade once."""
    r = await start_feed(peer, session, max_connection_age_s=0.25)
    try:
        sent = 0
        for _ in range(120):
            await peer.trade("BTCUSDT", "1.00", "1")
            sent += 1
            await asyncio.sleep(0.008)
        await until(lambda: len(r.of(Trade)) >= sent)
        await asyncio.sleep(0.05)
        ids = [int(t.trade_id) for t in r.of(Trade)]
        assert r.feed.stats.planned_reconnects >= 2 and r.feed.stats.connections >= 3
        assert sorted(ids) == list(range(1, sent + 1))
        assert r.feed.stats.resyncs <= 1  # the book is not thrown away at a planned handover
    finally:
        r.feed.stop()
        await r.task


async def test_stop_during_a_handover_ends_cleanly(peer: BinancePeer, session: aiohttp.ClientSession) -> None:
    r = await start_feed(peer, session, max_connection_age_s=0.2)
    await until(lambda: r.feed._successor is not None)
    r.feed.stop()
    await asyncio.wait_for(r.task, 5)
    assert r.task.exception() is None and r.feed.state == "stopped"
    await until(lambda: not peer.stream_clients)
