"""No frame, however mangled, gets an exception out of the feed's or the broker's frame handlers."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omnid.model import MarketEvent
from omnid.venues.binance.broker import BinanceBroker
from omnid.venues.binance.config import BinanceConfig, Credentials
from omnid.venues.binance.feed import BinanceFeed
from omnid.venues.binance.rest import BinanceRest

from tests.conftest import SLOW

EXAMPLES = 2000 if SLOW else 200

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8),
                    st.sampled_from(["0.001", "abc", "", "1e400", "-1"]))
values = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=3),
                      max_leaves=8)
KEYS = ["e", "E", "s", "t", "p", "q", "T", "m", "a", "U", "u", "b", "B", "A", "k", "x", "i", "c", "C", "X",
        "z", "Z", "l", "L", "n", "N"]
payloads = st.dictionaries(st.sampled_from(KEYS), values, max_size=12)
STREAMS = ["btcusdt@trade", "btcusdt@aggTrade", "btcusdt@bookTicker", "btcusdt@depth@100ms",
           "btcusdt@kline_1m", "!serverShutdown", "zzz@nothing", ""]


def frames() -> st.SearchStrategy[str]:
    structured = st.builds(lambda s, d: json.dumps({"stream": s, "data": d}), st.sampled_from(STREAMS), payloads)
    return st.one_of(structured, st.text(max_size=40), structured.map(lambda f: f[: len(f) // 2]))


def _feed(session: aiohttp.ClientSession, sink: list[MarketEvent]) -> BinanceFeed:
    cfg = BinanceConfig(symbols=["BTCUSDT"], streams=["trade", "aggTrade", "bookTicker", "depth@100ms", "kline_1m"])
    return BinanceFeed(cfg, sink.append, session=session, rest=BinanceRest(session, "http://127.0.0.1:9"))


async def test_feed_frames_never_raise() -> None:
    sink: list[MarketEvent] = []
    async with aiohttp.ClientSession() as session:
        feed = _feed(session, sink)

        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        @given(frames())
        def check(frame: str) -> None:
            feed.on_frame(frame)
            feed.on_frame(frame.encode())

        check()
        feed.stop()
        await asyncio.sleep(0)
    assert feed.stats.messages >= 2 * EXAMPLES * 0.5
    assert sum(feed.stats.malformed.values()) > 0


async def test_user_frames_never_raise() -> None:
    async with aiohttp.ClientSession() as session:
        broker = BinanceBroker(BinanceConfig(), BinanceRest(session, "http://127.0.0.1:9"),
                               Credentials("k", "s"), session=session)

        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        @given(payloads, st.sampled_from(["executionReport", "outboundAccountPosition", "serverShutdown", "x"]))
        def check(event: dict[str, Any], etype: str) -> None:
            broker.on_user_frame(json.dumps({"subscriptionId": 0, "event": {**event, "e": etype}}))

        check()
    assert broker.stats.malformed > 0
