"""Trades missed while the feed's socket was down, against the local peer: fetched over REST after
an unplanned reconnect and delivered once, in id order, before the live ones; what cannot be
fetched (cap, REST failure, timeout) is reported as a lost id range and live trades carry on."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from omnid.model import Side, Trade
from omnid.venues.binance.config import BinanceConfig

from tests.peers.binance_peer import BinancePeer, Failure
from tests.venues.binance.conftest import until
from tests.venues.binance.test_feed import Running, start_feed


def ids(r: Running) -> list[int]:
    return [int(t.trade_id) for t in r.of(Trade)]


def pages(peer: BinancePeer, name: str = "historicalTrades") -> list[dict[str, str]]:
    return [p for _, n, p in peer.requests if n == name]


async def stop(r: Running) -> None:
    r.feed.stop()
    await asyncio.wait_for(r.task, 5)


async def live_then_drop(peer: BinancePeer, r: Running, *, live: int = 5, missed: int = 0) -> None:
    """``live`` trades the feed sees, then an unexpected cut, then ``missed`` trades nobody hears."""
    for i in range(live):
        await peer.trade("BTCUSDT", f"{50000 + i}.00", "0.01000")
    await until(lambda: len(r.of(Trade)) == live)
    await peer.drop_streams()
    peer.add_trades("BTCUSDT", missed)


async def resubscribed(peer: BinancePeer, r: Running, connections: int = 2) -> None:
    """The peer has the new socket's SUBSCRIBE (its reply may still be on the way)."""
    await until(lambda: peer.stream_connections == connections and len(peer.subscribe_requests) == connections)


async def test_trades_missed_while_down_arrive_once_in_order(peer: BinancePeer, session: aiohttp.ClientSession,
                                                             ) -> None:
    """Trades keep coming through the cut, the reconnect and a three-page catch-up whose pages are
    slow enough that live trades queue behind them; the callback sees every id once, in order."""
    r = await start_feed(peer, session)
    try:
        peer.slow["historicalTrades"] = 0.1
        done = asyncio.Event()

        async def market() -> None:
            while not done.is_set():
                await peer.trade("BTCUSDT", "50000.00", "0.01000")
                await asyncio.sleep(0.002)

        gen = asyncio.create_task(market())
        await until(lambda: len(r.of(Trade)) >= 20)
        await peer.drop_streams()
        peer.add_trades("BTCUSDT", 2300)  # a burst nobody hears: more than two pages
        await until(lambda: r.feed.stats.trade_gaps_refetched >= 1, 10)
        await asyncio.sleep(0.05)
        done.set()
        await gen
        total = len(peer.trade_log["BTCUSDT"])
        await until(lambda: len(r.of(Trade)) >= total)
        await asyncio.sleep(0.02)
        assert ids(r) == list(range(1, total + 1))
        s = r.feed.stats
        assert s.trade_gaps_lost == 0 and s.lost_trade_ranges == [] and s.recovered_trades >= 2300
        assert s.connections == 2
        asked = pages(peer)
        assert len(asked) >= 3 and all(p["limit"] == "1000" for p in asked)
        assert [int(p["fromId"]) for p in asked] == sorted(int(p["fromId"]) for p in asked)
        row = next(x for x in peer.trade_log["BTCUSDT"] if x["price"] == "100.00")  # from the burst
        got = r.of(Trade)[row["id"] - 1]
        assert (got.instrument_id, got.price, got.size) == ("BTCUSDT.BINANCE", 100.0, 0.01)
        assert got.side is (Side.SELL if row["isBuyerMaker"] else Side.BUY)
        assert got.ts_event == row["time"] * 1_000_000
    finally:
        await stop(r)


async def test_a_second_cut_during_the_catch_up_starts_it_over(peer: BinancePeer,
                                                               session: aiohttp.ClientSession) -> None:
    r = await start_feed(peer, session)
    try:
        peer.slow["historicalTrades"] = 0.3
        await live_then_drop(peer, r, missed=40)
        await until(lambda: len(pages(peer)) == 1)
        await peer.drop_streams()  # while the first page is still on its way
        peer.add_trades("BTCUSDT", 40)
        await resubscribed(peer, r, 3)
        await until(lambda: r.feed.subscribed.is_set())
        for _ in range(3):
            await peer.trade("BTCUSDT", "1.00", "1")
        await until(lambda: len(r.of(Trade)) >= 88)
        await asyncio.sleep(0.05)
        assert ids(r) == list(range(1, 89))
        assert r.feed.stats.trade_gaps_lost == 0
    finally:
        await stop(r)


async def test_only_detected_when_fetching_is_off(peer: BinancePeer, session: aiohttp.ClientSession) -> None:
    """trade_gap_max_pages = 0: nothing is fetched, the hole is named exactly when live trades resume."""
    r = await start_feed(peer, session, trade_gap_max_pages=0)
    try:
        await live_then_drop(peer, r, missed=100)
        await resubscribed(peer, r)
        await until(lambda: r.feed.subscribed.is_set())
        for _ in range(3):
            await peer.trade("BTCUSDT", "1.00", "1")
        await until(lambda: len(r.of(Trade)) == 8)
        assert ids(r) == [1, 2, 3, 4, 5, 106, 107, 108]
        assert r.feed.stats.lost_trade_ranges == [("BTCUSDT", "trade", 6, 105)]
        assert r.feed.stats.trade_gaps_lost == 1 and pages(peer) == []
    finally:
        await stop(r)


async def test_gap_wider_than_the_cap_keeps_the_newest_and_names_the_rest(
        peer: BinancePeer, session: aiohttp.ClientSession) -> None:
    """Live trades already queue when the catch-up starts, so the gap's width is known: with one page
    allowed, the newest 1000 missed trades are fetched and the older ones reported lost."""
    r = await start_feed(peer, session, trade_gap_max_pages=1)
    try:
        peer.subscribe_reply_delay = 0.6  # the stream flows before the SUBSCRIBE answer
        await live_then_drop(peer, r, missed=2500)  # ids 6 .. 2505
        await resubscribed(peer, r)
        for _ in range(3):
            await peer.trade("BTCUSDT", "1.00", "1")  # 2506 .. 2508, held while the page comes
        await until(lambda: len(r.of(Trade)) == 5 + 1000 + 3)
        assert ids(r) == [1, 2, 3, 4, 5, *range(1506, 2509)]
        assert r.feed.stats.lost_trade_ranges == [("BTCUSDT", "trade", 6, 1505)]
        assert [p["fromId"] for p in pages(peer)] == ["1506"]
        assert r.feed.stats.trade_gaps_refetched == 0  # a catch-up that lost a range is not "refetched"
    finally:
        await stop(r)


async def test_cap_reached_before_anything_live_names_the_range_at_the_next_trade(
        peer: BinancePeer, session: aiohttp.ClientSession) -> None:
    """No live trade yet: the oldest missed page is fetched; the rest is lost up to the first live id."""
    r = await start_feed(peer, session, trade_gap_max_pages=1)
    try:
        await live_then_drop(peer, r, missed=2500)
        await until(lambda: r.feed.stats.recovered_trades == 1000)
        assert ids(r) == list(range(1, 1006)) and r.feed.stats.trade_gaps_lost == 0
        await peer.trade("BTCUSDT", "1.00", "1")
        await peer.trade("BTCUSDT", "1.00", "1")
        await until(lambda: len(r.of(Trade)) == 1007)
        assert ids(r)[-2:] == [2506, 2507]
        assert r.feed.stats.lost_trade_ranges == [("BTCUSDT", "trade", 1006, 2505)]
    finally:
        await stop(r)


async def test_rest_failing_after_retries_is_reported_and_live_trades_carry_on(
        peer: BinancePeer, session: aiohttp.ClientSession) -> None:
    r = await start_feed(peer, session)
    try:
        for _ in range(3):
            peer.fail_next("GET", "historicalTrades", Failure(500, {"code": -1000, "msg": "internal"}))
        peer.subscribe_reply_delay = 0.2
        await live_then_drop(peer, r, missed=100)
        await resubscribed(peer, r)
        await peer.trade("BTCUSDT", "1.00", "1")
        await until(lambda: r.feed.stats.trade_gaps_lost == 1)
        for _ in range(4):
            await peer.trade("BTCUSDT", "1.00", "1")
        await until(lambda: len(r.of(Trade)) == 10)
        assert ids(r) == [1, 2, 3, 4, 5, 106, 107, 108, 109, 110]
        assert r.feed.stats.lost_trade_ranges == [("BTCUSDT", "trade", 6, 105)]
        assert len(pages(peer)) == 3 and r.feed.state == "connected" and r.feed.stats.connections == 2
    finally:
        await stop(r)


async def test_one_failed_page_is_tried_again(peer: BinancePeer, session: aiohttp.ClientSession) -> None:
    r = await start_feed(peer, session)
    try:
        peer.fail_next("GET", "historicalTrades", Failure(503, None))
        await live_then_drop(peer, r, missed=30)
        await until(lambda: r.feed.stats.trade_gaps_refetched == 1)
        await peer.trade("BTCUSDT", "1.00", "1")
        await until(lambda: len(r.of(Trade)) == 36)
        assert ids(r) == list(range(1, 37)) and r.feed.stats.trade_gaps_lost == 0
        assert [p["fromId"] for p in pages(peer)] == ["6", "6"]
    finally:
        await stop(r)


async def test_a_ban_longer_than_the_budget_gives_up_at_once(peer: BinancePeer,
                                                             session: aiohttp.ClientSession) -> None:
    """A 429 whose Retry-After outlasts trade_gap_timeout_s is not waited out: live trades go on."""
    r = await start_feed(peer, session)
    try:
        peer.fail_next("GET", "historicalTrades", Failure(429, {"code": -1003, "msg": "Too many requests"},
                                                          {"Retry-After": "60"}))
        peer.subscribe_reply_delay = 0.1
        await live_then_drop(peer, r, missed=20)
        await resubscribed(peer, r)
        await peer.trade("BTCUSDT", "1.00", "1")
        t0 = time.monotonic()
        await until(lambda: len(r.of(Trade)) == 6)
        assert time.monotonic() - t0 < 3.0
        assert ids(r)[-1] == 26 and r.feed.stats.lost_trade_ranges == [("BTCUSDT", "trade", 6, 25)]
        assert len(pages(peer)) == 1
    finally:
        await stop(r)


async def test_a_slow_catch_up_times_out_and_releases_live_trades(peer: BinancePeer,
                                                                  session: aiohttp.ClientSession) -> None:
    r = await start_feed(peer, session, trade_gap_timeout_s=0.3)
    try:
        peer.slow["historicalTrades"] = 1.0
        peer.subscribe_reply_delay = 0.05
        await live_then_drop(peer, r, missed=20)
        await resubscribed(peer, r)
        await peer.trade("BTCUSDT", "1.00", "1")
        await until(lambda: len(r.of(Trade)) == 6, 2.0)
        assert ids(r)[-1] == 26 and r.feed.stats.lost_trade_ranges == [("BTCUSDT", "trade", 6, 25)]
        await peer.trade("BTCUSDT", "1.00", "1")
        await until(lambda: len(r.of(Trade)) == 7)
    finally:
        await stop(r)


async def test_a_malformed_page_is_reported_not_retried(peer: BinancePeer, session: aiohttp.ClientSession) -> None:
    r = await start_feed(peer, session)
    try:
        peer.fail_next("GET", "historicalTrades", Failure(200, {"trades": "not a list"}))
        peer.subscribe_reply_delay = 0.1
        await live_then_drop(peer, r, missed=10)
        await resubscribed(peer, r)
        await peer.trade("BTCUSDT", "1.00", "1")
        await until(lambda: len(r.of(Trade)) == 6)
        assert r.feed.stats.lost_trade_ranges == [("BTCUSDT", "trade", 6, 15)] and len(pages(peer)) == 1
    finally:
        await stop(r)


async def test_aggregate_trades_are_fetched_by_aggregate_id(peer: BinancePeer,
                                                            session: aiohttp.ClientSession) -> None:
    """On @aggTrade the ids are aggregate ids (``a``), fetched from /api/v3/aggTrades, not trade ids."""
    r = await start_feed(peer, session, streams=["aggTrade"])
    try:
        for _ in range(3):
            await peer.agg_trade("BTCUSDT", "50000.00", "0.02000", fills=2)
        await until(lambda: len(r.of(Trade)) == 3)
        await peer.drop_streams()
        for _ in range(4):
            await peer.agg_trade("BTCUSDT", "50001.00", "0.03000", fills=3, buyer_maker=True)
        await until(lambda: r.feed.stats.trade_gaps_refetched == 1)
        await peer.agg_trade("BTCUSDT", "50002.00", "0.01000", fills=1)
        await until(lambda: len(r.of(Trade)) == 8)
        assert ids(r) == list(range(1, 9))
        assert [p["fromId"] for p in pages(peer, "aggTrades")] == ["4"] and pages(peer) == []
        fetched = r.of(Trade)[4]
        assert (fetched.price, fetched.size, fetched.side) == (50001.0, 0.03, Side.SELL)
    finally:
        await stop(r)


async def test_planned_handover_fetches_nothing(peer: BinancePeer, session: aiohttp.ClientSession) -> None:
    """The 24h handover overlaps two sockets, so it neither needs nor starts a catch-up."""
    r = await start_feed(peer, session, max_connection_age_s=0.25)
    try:
        for _ in range(80):
            await peer.trade("BTCUSDT", "1.00", "1")
            await asyncio.sleep(0.008)
        await until(lambda: len(r.of(Trade)) >= 80)
        assert r.feed.stats.planned_reconnects >= 2
        assert pages(peer) == [] and r.feed.stats.trade_gaps_lost == 0 and r.feed.stats.recovered_trades == 0
    finally:
        await stop(r)


def test_trade_gap_settings_are_checked() -> None:
    assert BinanceConfig().trade_gap_max_pages == 10 and BinanceConfig().trade_gap_timeout_s == 10.0
    with pytest.raises(ValueError, match="trade_gap"):
        BinanceConfig(trade_gap_max_pages=-1)
    with pytest.raises(ValueError, match="trade_gap"):
        BinanceConfig(trade_gap_timeout_s=0)
