"""Signed REST: the documented HMAC vector, error mapping, rate limits, request weight, exchangeInfo."""

from __future__ import annotations

import aiohttp
import pytest
from omnid.errors import (
    FatalError,
    RateLimitedError,
    RejectedError,
    StatusUnknownError,
    TransientError,
)
from omnid.venues.binance.config import Credentials
from omnid.venues.binance.rest import BinanceRest, map_error, sign

from tests.peers.binance_peer import BinancePeer, Failure
from tests.venues.binance.conftest import peer_rest

# rest-api/request-security.md, "SIGNED endpoint examples for POST /api/v3/order - HMAC Keys".
DOC_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
DOC_QUERY = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
DOC_SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"


def test_hmac_vector_from_the_docs() -> None:
    assert sign(DOC_SECRET.encode(), DOC_QUERY) == DOC_SIGNATURE


async def test_signed_query_matches_the_doc_example() -> None:
    async with aiohttp.ClientSession() as s:
        rest = BinanceRest(s, "http://127.0.0.1:9", credentials=Credentials(DOC_KEY, DOC_SECRET),
                           wall_ms=lambda: 1499827319559)
        q = rest.signed_query({"symbol": "LTCBTC", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                               "quantity": "1", "price": "0.1"})
    assert q == f"{DOC_QUERY}&signature={DOC_SIGNATURE}"


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (400, b'{"code":-1013,"msg":"Filter failure: LOT_SIZE"}', RejectedError),
        (400, b'{"code":-2010,"msg":"Account has insufficient balance for requested action."}', RejectedError),
        (400, b'{"code":-1021,"msg":"Timestamp for this request is outside of the recvWindow."}', TransientError),
        (408, b'{"code":-1007,"msg":"Timeout waiting for response from backend server."}', StatusUnknownError),
        (503, b"<html>Service Unavailable</html>", StatusUnknownError),
        (500, b"", StatusUnknownError),
        (429, b'{"code":-1003,"msg":"Too many requests"}', RateLimitedError),
        (418, b'{"code":-1003,"msg":"Way too many requests; IP banned"}', RateLimitedError),
        (401, b'{"code":-2015,"msg":"Invalid API-key, IP, or permissions for action."}', FatalError),
    ],
)
def test_error_mapping(status: int, body: bytes, kind: type) -> None:
    err = map_error(status, body, path="/api/v3/order", retry_after=7.0)
    assert type(err) is kind
    assert err.context["http_status"] == status and "/api/v3/order" in str(err)
    if kind is RateLimitedError:
        assert err.retry_after == 7.0  # type: ignore[attr-defined]


async def test_429_retry_after_stops_sending(peer: BinancePeer, session: aiohttp.ClientSession) -> None:
    rest = peer_rest(peer, session)
    peer.fail_next("GET", "klines", Failure(429, {"code": -1003, "msg": "Too many requests"}, {"Retry-After": "3"}))
    with pytest.raises(RateLimitedError) as first:
        await rest.klines("BTCUSDT", "1m")
    assert first.value.retry_after == 3.0
    n = len(peer.requests)
    with pytest.raises(RateLimitedError) as second:
        await rest.depth("BTCUSDT", 100, 0)
    assert len(peer.requests) == n  # nothing went out while banned
    assert 0 < (second.value.retry_after or 0) <= 3.0


async def test_request_weight_is_kept_under_the_limit(peer: BinancePeer, session: aiohttp.ClientSession) -> None:
    """The venue says 50 used per depth call; with a 120 budget the third call waits for the next minute."""
    pauses: list[float] = []

    async def fake_sleep(s: float) -> None:
        pauses.append(s)

    rest = peer_rest(peer, session, weight_limit_1m=120, weight_headroom=1.0, sleep=fake_sleep)
    await rest.depth("BTCUSDT", 1000, 0)
    await rest.depth("BTCUSDT", 1000, 0)
    assert rest.used_weight == 100 == peer.weight_used
    await rest.depth("BTCUSDT", 1000, 0)
    assert len(pauses) == 1 and 0 <= pauses[0] <= 60


async def test_exchange_info_becomes_instruments(peer: BinancePeer, session: aiohttp.ClientSession) -> None:
    rest = peer_rest(peer, session, weight_limit_1m=100)
    info = await rest.exchange_info(["BTCUSDT"])
    inst = info["BTCUSDT"].instrument
    assert info["BTCUSDT"].trading and inst.id == "BTCUSDT.BINANCE"
    assert (inst.tick_size, inst.lot_size, inst.min_qty, inst.min_notional) == (0.01, 0.00001, 0.00001, 5.0)
    assert (inst.base_currency, inst.quote_currency) == ("BTC", "USDT")
    assert rest.weight_limit == 6000  # taken from rateLimits
    with pytest.raises(RejectedError):
        await rest.exchange_info(["NOPE"])


async def test_signed_calls_need_credentials(peer: BinancePeer, session: aiohttp.ClientSession) -> None:
    with pytest.raises(FatalError):
        await BinanceRest(session, peer.rest_url).account()


async def test_connection_refused_is_status_unknown(session: aiohttp.ClientSession) -> None:
    rest = BinanceRest(session, "http://127.0.0.1:9", timeout_s=2)
    with pytest.raises(StatusUnknownError):
        await rest.public("/api/v3/time")


async def test_trade_history_pages_by_from_id(peer: BinancePeer, session: aiohttp.ClientSession) -> None:
    """historicalTrades and aggTrades: ids from fromId on, oldest first, at most limit, weights 25 and 4."""
    peer.add_trades("BTCUSDT", 7)
    await peer.agg_trade("BTCUSDT", "50000.00", "0.03000", fills=3)
    await peer.agg_trade("BTCUSDT", "50001.00", "0.01000", fills=1, buyer_maker=True)
    rest = BinanceRest(session, peer.rest_url)  # no key: the current doc asks for none
    page = await rest.historical_trades("BTCUSDT", 3, limit=2, ts_init=5)
    assert [i for i, _ in page] == [3, 4] and [t.trade_id for _, t in page] == ["3", "4"]
    assert page[0][1].ts_init == 5 and page[0][1].price == 100.0
    assert [i for i, _ in await rest.historical_trades("BTCUSDT", 9)] == [9, 10, 11]
    aggs = await rest.agg_trades("BTCUSDT", 2)
    assert [(i, t.price, t.size, t.side.name) for i, t in aggs] == [(2, 50001.0, 0.01, "SELL")]
    assert rest.used_weight == 25 + 25 + 4
    assert [p for _, n, p in peer.requests] == [
        {"symbol": "BTCUSDT", "fromId": "3", "limit": "2"}, {"symbol": "BTCUSDT", "fromId": "9", "limit": "1000"},
        {"symbol": "BTCUSDT", "fromId": "2", "limit": "1000"}]
