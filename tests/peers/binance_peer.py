"""A local Binance spot peer on 127.0.0.1: REST, combined market streams and the WebSocket API.

It speaks the documented formats message for message so omnid's client can be tested without the
internet, including the failures: gaps in the diff stream, dropped connections, silence,
``serverShutdown``, 429 with ``Retry-After``, -1021 clock drift, 5xx after an order was in fact
accepted, and partial fills. Tests drive it from the same event loop.

Where each message comes from (binance-spot-api-docs, as of 2026):
- web-socket-streams.md: combined stream path ``/stream`` and envelope ``{"stream", "data"}``;
  ``SUBSCRIBE`` request and ``{"result": null, "id": n}`` reply; trade, aggTrade, bookTicker,
  depthUpdate (``U``/``u``), kline payloads; ``{"stream": "!serverShutdown", "data":
  {"e": "serverShutdown", "E": ms}}``; the server pings every 20 s (here: configurable).
- rest-api/general-endpoints.md: ``GET /api/v3/time`` ``{"serverTime"}``, ``GET /api/v3/exchangeInfo``
  with ``rateLimits`` and ``symbols[].filters``; filters.md: PRICE_FILTER, LOT_SIZE, NOTIONAL.
- rest-api/market-data-endpoints.md: ``GET /api/v3/depth`` ``{"lastUpdateId", "bids", "asks"}``;
  ``GET /api/v3/klines`` rows ``[open time, o, h, l, c, v, close time, quote vol, trades, taker
  base, taker quote, ignore]`` with ``startTime``/``endTime``/``limit``; ``GET /api/v3/historicalTrades``
  (old trade lookup, weight 25; ``fromId`` = the first trade id returned, else the most recent;
  ``limit`` default 500, max 1000; rows ``{id, price, qty, quoteQty, time, isBuyerMaker,
  isBestMatch}``; the current doc lists no security, older ones said MARKET_DATA, so the key is not
  checked here); ``GET /api/v3/trades`` (recent, weight 25, same rows); ``GET /api/v3/aggTrades``
  (weight 4; ``fromId`` inclusive, ``startTime``/``endTime`` inclusive, ``limit`` default 500, max
  1000; rows ``{a, p, q, f, l, T, m, M}``). general-api-information.md: data is returned oldest first.
- web-socket-streams.md: the trade stream's trade id is ``t``, the aggTrade stream's aggregate id is
  ``a`` (with ``f``/``l``, the first and last trade ids it aggregates). Ids count up per symbol, so
  every trade here gets the symbol's next id whether or not a client is connected: what happens
  while a client is away is only in the REST history, as on Binance.
- What omnid's trade-gap recovery (after a reconnect, and on start from the ids saved by the previous
  run) relies on, from the same docs: ``fromId`` is inclusive on both historicalTrades and aggTrades,
  answers are oldest first and at most 1000 rows, so paging from the last delivered id + 1 returns
  every later trade once; historicalTrades takes no time filter (only ids), so how far back a
  restart can reach is bounded by pages (weight 25 each), hence ``recover_max_age_s``; a stream
  subscription carries only trades made after it (no replay), so a live id at or below the last
  delivered one means the venue's ids started over, never a repeat.
- rest-api/trading-endpoints.md: ``POST /api/v3/order`` (newOrderRespType RESULT answer),
  ``DELETE /api/v3/order``, ``GET /api/v3/order`` by ``origClientOrderId``, ``GET /api/v3/openOrders``;
  account-endpoints.md: ``GET /api/v3/account`` ``balances[{asset, free, locked}]``.
- rest-api/request-security.md: ``X-MBX-APIKEY``; HMAC-SHA256 hex over the query string;
  ``timestamp`` outside ``recvWindow`` of server time → -1021.
- rest-api/limits.md + http-return-codes.md: ``X-MBX-USED-WEIGHT-1M`` on every answer; HTTP 429 and
  418 with ``Retry-After``; 5XX means execution status unknown.
- errors.md: ``{"code", "msg"}`` bodies: -1013 filter failure, -1021, -1022 bad signature, -2010
  (duplicate order), -2011 cancel rejected, -2013 order does not exist, -2014/-2015 bad key.
- websocket-api/request-format.md + response-format.md: ``{"id", "method", "params"}`` →
  ``{"id", "status", "result"}`` or ``{"id", "status", "error": {"code", "msg"}}``;
  websocket-api/request-security.md: WS API signature is over the params sorted by name.
- websocket-api/user-data-stream-requests.md: ``userDataStream.subscribe.signature`` (apiKey,
  timestamp, signature) → ``{"subscriptionId": n}``; events arrive as ``{"subscriptionId": n,
  "event": {...}}``; connection-events.md: ``{"event": {"e": "serverShutdown", "E": ms}}``.
- user-data-stream.md: ``executionReport`` fields (``c`` client id, ``C`` original client id on
  cancels, ``x`` execution type, ``X`` order status, ``l``/``L`` last fill, ``z`` cumulative,
  ``n``/``N`` commission, ``t`` trade id, ``m`` maker, ``r`` reject reason, ``i`` order id) and
  ``outboundAccountPosition``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from aiohttp import WSMsgType, web

API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"


def _text(obj: Any) -> str:
    """JSON for a WebSocket *text* frame (Binance sends JSON as text frames)."""
    return msgspec.json.encode(obj).decode()


def _d(x: Decimal | float | str) -> str:
    return f"{Decimal(str(x)):.8f}"


@dataclass
class PeerOrder:
    symbol: str
    order_id: int
    client_order_id: str
    side: str
    type: str
    tif: str
    price: Decimal
    stop_price: Decimal
    qty: Decimal
    executed: Decimal = Decimal(0)
    quote: Decimal = Decimal(0)
    status: str = "NEW"
    time_ms: int = 0
    update_ms: int = 0

    def as_rest(self) -> dict[str, Any]:
        """GET /api/v3/order answer (trading-endpoints.md)."""
        return {
            "symbol": self.symbol, "orderId": self.order_id, "orderListId": -1,
            "clientOrderId": self.client_order_id, "price": _d(self.price), "origQty": _d(self.qty),
            "executedQty": _d(self.executed), "cummulativeQuoteQty": _d(self.quote),
            "status": self.status, "timeInForce": self.tif, "type": self.type, "side": self.side,
            "stopPrice": _d(self.stop_price), "icebergQty": "0.00000000", "time": self.time_ms,
            "updateTime": self.update_ms, "isWorking": True, "workingTime": self.time_ms,
            "origQuoteOrderQty": "0.00000000", "selfTradePreventionMode": "NONE",
        }


@dataclass
class Failure:
    status: int
    body: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)
    after_effect: bool = False  # apply the request, then answer with the failure


SYMBOLS = {
    "BTCUSDT": {"base": "BTC", "quote": "USDT", "tick": "0.01", "step": "0.00001", "min_qty": "0.00001",
                "min_notional": "5"},
    "ETHUSDT": {"base": "ETH", "quote": "USDT", "tick": "0.01", "step": "0.0001", "min_qty": "0.0001",
                "min_notional": "5"},
}


class BinancePeer:
    """The peer's state and its knobs. ``await start()`` then point the client at ``rest_url`` etc."""

    def __init__(self, *, ping_interval: float = 20.0, weight_limit: int = 6000) -> None:
        self.ping_interval = ping_interval
        self.weight_limit = weight_limit
        self.time_offset_ms = 0  # the peer's clock minus the wall clock (to provoke -1021)
        self.stream_clients: list[tuple[web.WebSocketResponse, set[str]]] = []
        self.api_clients: list[web.WebSocketResponse] = []
        self.subscribe_requests: list[list[str]] = []
        self.subscribe_reply_delay = 0.0  # seconds between a SUBSCRIBE taking effect and its reply
        self.slow: dict[str, float] = {}  # REST endpoint name → seconds to wait before answering
        self.stream_connections = 0
        self.api_connections = 0
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.failures: dict[tuple[str, str], list[Failure]] = {}
        self.orders: dict[str, PeerOrder] = {}
        self.order_posts = 0
        self.books: dict[str, tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]] = {}
        self.update_ids: dict[str, int] = {}
        self.klines: dict[str, list[list[Any]]] = {}
        self.balances: dict[str, tuple[Decimal, Decimal]] = {"USDT": (Decimal(10000), Decimal(0)),
                                                            "BTC": (Decimal(1), Decimal(0))}
        self.symbol_status: dict[str, str] = {}  # symbol → TRADING | HALT | BREAK (enums.md)
        self.weight_used = 0
        self._weight_minute = 0
        self._ids = itertools.count(1000)
        self._trade_ids = itertools.count(1)  # executionReport trade ids
        self.trade_log: dict[str, list[dict[str, Any]]] = {}  # symbol → historicalTrades rows, by id
        self.agg_log: dict[str, list[dict[str, Any]]] = {}  # symbol → aggTrades rows, by id
        self._sub_ids = itertools.count(0)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ---------------------------------------------------------------------------------------------
    # Lifecycle

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/stream", self._stream)
        app.router.add_get("/ws-api/v3", self._ws_api)
        app.router.add_route("*", "/api/v3/{name}", self._rest)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        for ws, _ in list(self.stream_clients):
            await ws.close()
        for ws in list(self.api_clients):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def ws_api_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws-api/v3"

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.time_offset_ms

    # ---------------------------------------------------------------------------------------------
    # Market streams

    async def _stream(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=self.ping_interval)
        await ws.prepare(request)
        self.stream_connections += 1
        subs: set[str] = set(filter(None, request.query.get("streams", "").split("/")))
        entry = (ws, subs)
        self.stream_clients.append(entry)
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                try:
                    req = msgspec.json.decode(msg.data)
                except msgspec.DecodeError:
                    await ws.send_str('{"code":3,"msg":"Invalid JSON: expected value at line 1 column 1"}')
                    continue
                if req.get("method") == "SUBSCRIBE":
                    subs.update(req.get("params", []))
                    self.subscribe_requests.append(list(req.get("params", [])))
                    if self.subscribe_reply_delay:
                        await asyncio.sleep(self.subscribe_reply_delay)
                    await ws.send_str(_text({"result": None, "id": req.get("id")}))
                elif req.get("method") == "LIST_SUBSCRIPTIONS":
                    await ws.send_str(_text({"result": sorted(subs), "id": req.get("id")}))
        finally:
            if entry in self.stream_clients:
                self.stream_clients.remove(entry)
        return ws

    def subscribed(self) -> set[str]:
        out: set[str] = set()
        for _, subs in self.stream_clients:
            out |= subs
        return out

    async def push(self, stream: str, data: dict[str, Any] | str) -> int:
        """Send one combined-stream event to every client subscribed to ``stream``; returns how many."""
        if isinstance(data, str):
            frame = '{"stream":"%s","data":%s}' % (stream, data)  # noqa: UP031 - raw, maybe malformed
        else:
            frame = msgspec.json.encode({"stream": stream, "data": data}).decode()
        n = 0
        for ws, subs in list(self.stream_clients):
            if (stream in subs or stream.startswith("!")) and not ws.closed:
                await ws.send_str(frame)
                n += 1
        return n

    async def push_raw(self, text: str) -> None:
        for ws, _ in list(self.stream_clients):
            if not ws.closed:
                await ws.send_str(text)

    def _record_trade(self, symbol: str, price: str, qty: str, buyer_maker: bool, now: int) -> int:
        log = self.trade_log.setdefault(symbol, [])
        tid = log[-1]["id"] + 1 if log else 1
        log.append({"id": tid, "price": price, "qty": qty, "quoteQty": _d(Decimal(price) * Decimal(qty)),
                    "time": now, "isBuyerMaker": buyer_maker, "isBestMatch": True})
        return tid

    async def trade(self, symbol: str, price: str, qty: str, *, buyer_maker: bool = False) -> int:
        """One market trade (the symbol's next trade id), sent on ``@trade``; returns how many got it."""
        now = self.now_ms()
        tid = self._record_trade(symbol, price, qty, buyer_maker, now)
        return await self.push(f"{symbol.lower()}@trade", {
            "e": "trade", "E": now, "s": symbol, "t": tid, "p": price, "q": qty, "T": now,
            "m": buyer_maker, "M": True})

    async def agg_trade(self, symbol: str, price: str, qty: str, *, fills: int = 2, buyer_maker: bool = False
                        ) -> int:
        """One taker order filling ``fills`` trades at one price: that many trade ids, one aggregate id
        (its own sequence), sent on ``@aggTrade``; returns how many clients got it."""
        now = self.now_ms()
        part = _d(Decimal(qty) / fills)
        ids = [self._record_trade(symbol, price, part, buyer_maker, now) for _ in range(fills)]
        log = self.agg_log.setdefault(symbol, [])
        aid = log[-1]["a"] + 1 if log else 1
        row = {"a": aid, "p": price, "q": qty, "f": ids[0], "l": ids[-1], "T": now, "m": buyer_maker, "M": True}
        log.append(row)
        return await self.push(f"{symbol.lower()}@aggTrade", {"e": "aggTrade", "E": now, "s": symbol, **row})

    async def book_ticker(self, symbol: str, bid: str, bid_qty: str, ask: str, ask_qty: str) -> int:
        self.update_ids[symbol] = self.update_ids.get(symbol, 0) + 1
        return await self.push(f"{symbol.lower()}@bookTicker", {
            "u": self.update_ids[symbol], "s": symbol, "b": bid, "B": bid_qty, "a": ask, "A": ask_qty})

    async def kline(self, symbol: str, interval: str, row: list[Any], *, closed: bool) -> int:
        return await self.push(f"{symbol.lower()}@kline_{interval}", {
            "e": "kline", "E": row[6] + 1, "s": symbol, "k": {
                "t": row[0], "T": row[6], "s": symbol, "i": interval, "f": 1, "L": 2, "o": row[1],
                "c": row[4], "h": row[2], "l": row[3], "v": row[5], "n": row[8], "x": closed,
                "q": row[7], "V": row[9], "Q": row[10], "B": "0"}})

    async def book_update(
        self, symbol: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]], *, emit: bool = True,
        updates: int = 1,
    ) -> int:
        """Change the peer's book (``updates`` ids' worth) and, unless ``emit`` is False, send the diff."""
        book = self.books.setdefault(symbol, ({}, {}))
        first = self.update_ids.get(symbol, 0) + 1
        last = first + updates - 1
        self.update_ids[symbol] = last
        for side, levels in ((book[0], bids), (book[1], asks)):
            for p, q in levels:
                if Decimal(q) == 0:
                    side.pop(Decimal(p), None)
                else:
                    side[Decimal(p)] = Decimal(q)
        if not emit:
            return 0
        return await self.push(f"{symbol.lower()}@depth@100ms", {
            "e": "depthUpdate", "E": self.now_ms(), "s": symbol, "U": first, "u": last,
            "b": [list(x) for x in bids], "a": [list(x) for x in asks]})

    async def server_shutdown(self) -> None:
        await self.push("!serverShutdown", {"e": "serverShutdown", "E": self.now_ms()})
        for ws in list(self.api_clients):
            await ws.send_str(_text({"event": {"e": "serverShutdown", "E": self.now_ms()}}))

    async def drop_streams(self) -> None:
        """Cut every market-data connection (as a network fault would)."""
        for ws, _ in list(self.stream_clients):
            await ws.close(code=1011, message=b"dropped")

    async def drop_api(self) -> None:
        for ws in list(self.api_clients):
            await ws.close(code=1011, message=b"dropped")

    # ---------------------------------------------------------------------------------------------
    # REST

    def fail_next(self, method: str, name: str, failure: Failure) -> None:
        """Answer the next ``method /api/v3/<name>`` with ``failure`` (FIFO per endpoint)."""
        self.failures.setdefault((method, name), []).append(failure)

    def _json(self, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        h = {"X-MBX-USED-WEIGHT-1M": str(self.weight_used), **(headers or {})}
        return web.Response(body=msgspec.json.encode(body), status=status, headers=h,
                            content_type="application/json")

    def _error(self, status: int, code: int, msg: str) -> web.Response:
        return self._json({"code": code, "msg": msg}, status)

    async def _rest(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        params = dict(parse_qsl(request.query_string, keep_blank_values=True))
        if request.can_read_body:
            params.update(parse_qsl(await request.text()))
        self.requests.append((request.method, name, params))
        if name in self.slow:
            await asyncio.sleep(self.slow[name])
        minute = self.now_ms() // 60_000
        if minute != self._weight_minute:
            self._weight_minute, self.weight_used = minute, 0
        self.weight_used += {"exchangeInfo": 20, "depth": 50, "klines": 2, "account": 20, "openOrders": 6,
                             "historicalTrades": 25, "trades": 25, "aggTrades": 4,
                             "order": 4 if request.method == "GET" else 1}.get(name, 1)
        queued = self.failures.get((request.method, name))
        failure = queued.pop(0) if queued else None
        if failure is not None and not failure.after_effect:
            return self._json(failure.body if failure.body is not None else {}, failure.status, failure.headers)
        if name in ("order", "openOrders", "account"):
            bad = self._check_signed(request, params)
            if bad is not None:
                return bad
        handler = getattr(self, f"_r_{request.method.lower()}_{name}", None)
        if handler is None:
            return self._error(404, -1000, f"unknown endpoint {request.method} {name}")
        resp: web.Response = handler(params)
        if failure is not None:
            return self._json(failure.body if failure.body is not None else {}, failure.status, failure.headers)
        return resp

    def _check_signed(self, request: web.Request, params: dict[str, str]) -> web.Response | None:
        if request.headers.get("X-MBX-APIKEY") != API_KEY:
            return self._error(401, -2014, "API-key format invalid.")
        qs = request.query_string
        payload, _, sig = qs.rpartition("&signature=")
        if not sig or hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest() != sig.lower():
            return self._error(400, -1022, "Signature for this request is not valid.")
        ts, window = int(params.get("timestamp", 0)), int(params.get("recvWindow", 5000))
        now = self.now_ms()
        if ts > now + 1000 or now - ts > window:
            return self._error(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        return None

    def _r_get_time(self, params: dict[str, str]) -> web.Response:
        """GET /api/v3/time (rest-api/general-endpoints.md): {"serverTime"}."""
        return self._json({"serverTime": self.now_ms()})

    def _r_get_exchangeInfo(self, params: dict[str, str]) -> web.Response:
        """GET /api/v3/exchangeInfo (general-endpoints.md; filters.md for the filter objects)."""
        wanted = msgspec.json.decode(params["symbols"]) if "symbols" in params else list(SYMBOLS)
        symbols = []
        for s in wanted:
            if s not in SYMBOLS:
                return self._error(400, -1121, "Invalid symbol.")
            c = SYMBOLS[s]
            symbols.append({
                "symbol": s, "status": self.symbol_status.get(s, "TRADING"), "baseAsset": c["base"], "baseAssetPrecision": 8,
                "quoteAsset": c["quote"], "quotePrecision": 8, "quoteAssetPrecision": 8,
                "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT",
                               "TAKE_PROFIT_LIMIT"],
                "icebergAllowed": True, "ocoAllowed": True, "isSpotTradingAllowed": True,
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": c["tick"], "maxPrice": "1000000.00000000",
                     "tickSize": c["tick"]},
                    {"filterType": "LOT_SIZE", "minQty": c["min_qty"], "maxQty": "9000.00000000",
                     "stepSize": c["step"]},
                    {"filterType": "ICEBERG_PARTS", "limit": 10},
                    {"filterType": "NOTIONAL", "minNotional": c["min_notional"], "applyMinToMarket": True,
                     "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
                ],
                "permissions": [], "permissionSets": [["SPOT"]], "defaultSelfTradePreventionMode": "NONE",
                "allowedSelfTradePreventionModes": ["NONE"],
            })
        return self._json({
            "timezone": "UTC", "serverTime": self.now_ms(),
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                 "limit": self.weight_limit},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
            ],
            "exchangeFilters": [], "symbols": symbols})

    def _r_get_depth(self, params: dict[str, str]) -> web.Response:
        """GET /api/v3/depth (market-data-endpoints.md): lastUpdateId, bids, asks as [price, qty]."""
        sym = params.get("symbol", "")
        bids, asks = self.books.get(sym, ({}, {}))
        limit = int(params.get("limit", 100))
        return self._json({
            "lastUpdateId": self.update_ids.get(sym, 0),
            "bids": [[_d(p), _d(q)] for p, q in sorted(bids.items(), reverse=True)[:limit]],
            "asks": [[_d(p), _d(q)] for p, q in sorted(asks.items())[:limit]]})

    def _r_get_klines(self, params: dict[str, str]) -> web.Response:
        """GET /api/v3/klines (market-data-endpoints.md): rows, oldest first, startTime/endTime/limit."""
        rows = self.klines.get(params.get("symbol", ""), [])
        start = int(params.get("startTime", 0))
        end = int(params.get("endTime", 2**62))
        limit = min(int(params.get("limit", 500)), 1000)
        out = [r for r in rows if start <= r[0] <= end][:limit]
        return self._json(out)

    def _r_get_historicalTrades(self, params: dict[str, str]) -> web.Response:
        """GET /api/v3/historicalTrades (market-data-endpoints.md): from ``fromId`` on, oldest first."""
        rows = self.trade_log.get(params.get("symbol", ""), [])
        limit = min(int(params.get("limit", 500)), 1000)
        if "fromId" not in params:
            return self._json(rows[-limit:])
        start = int(params["fromId"])
        return self._json([r for r in rows if r["id"] >= start][:limit])

    def _r_get_trades(self, params: dict[str, str]) -> web.Response:
        """GET /api/v3/trades (market-data-endpoints.md): the most recent ``limit`` trades."""
        limit = min(int(params.get("limit", 500)), 1000)
        return self._json(self.trade_log.get(params.get("symbol", ""), [])[-limit:])

    def _r_get_aggTrades(self, params: dict[str, str]) -> web.Response:
        """GET /api/v3/aggTrades (market-data-endpoints.md): fromId/startTime/endTime inclusive, oldest first."""
        rows = self.agg_log.get(params.get("symbol", ""), [])
        limit = min(int(params.get("limit", 500)), 1000)
        if not {"fromId", "startTime", "endTime"} & params.keys():
            return self._json(rows[-limit:])
        start = int(params.get("fromId", 0))
        t0, t1 = int(params.get("startTime", 0)), int(params.get("endTime", 2**62))
        return self._json([r for r in rows if r["a"] >= start and t0 <= r["T"] <= t1][:limit])

    def add_trades(self, symbol: str, count: int, *, price: str = "100.00", qty: str = "0.01000") -> None:
        """``count`` trades that happened with nobody listening (history only, no push)."""
        now = self.now_ms()
        for i in range(count):
            self._record_trade(symbol, price, qty, i % 2 == 0, now)

    def add_klines(self, symbol: str, start_ms: int, count: int, interval_ms: int = 60_000) -> None:
        rows = self.klines.setdefault(symbol, [])
        for i in range(count):
            t = start_ms + i * interval_ms
            o = 100 + i
            rows.append([t, f"{o}.00", f"{o + 2}.00", f"{o - 1}.00", f"{o + 1}.00", "10.0", t + interval_ms - 1,
                         "1000.0", 5, "4.0", "400.0", "0"])

    def _r_post_order(self, params: dict[str, str]) -> web.Response:
        """POST /api/v3/order (trading-endpoints.md), newOrderRespType RESULT; -2010 / -1013 per errors.md."""
        self.order_posts += 1
        sym = params.get("symbol", "")
        if sym not in SYMBOLS:
            return self._error(400, -1121, "Invalid symbol.")
        cid = params.get("newClientOrderId") or f"peer{next(self._ids)}"
        if cid in self.orders and self.orders[cid].status in ("NEW", "PARTIALLY_FILLED"):
            return self._error(400, -2010, "Duplicate order sent.")
        c = SYMBOLS[sym]
        qty = Decimal(params.get("quantity", "0"))
        price = Decimal(params.get("price", "0"))
        if qty < Decimal(c["min_qty"]) or qty % Decimal(c["step"]) != 0:
            return self._error(400, -1013, "Filter failure: LOT_SIZE")
        if price and price % Decimal(c["tick"]) != 0:
            return self._error(400, -1013, "Filter failure: PRICE_FILTER")
        now = self.now_ms()
        order = PeerOrder(sym, next(self._ids), cid, params["side"], params["type"],
                          params.get("timeInForce", "GTC"), price, Decimal(params.get("stopPrice", "0")), qty,
                          time_ms=now, update_ms=now)
        self.orders[cid] = order
        self._emit_report(order, "NEW")
        body = {k: v for k, v in order.as_rest().items()
                if k not in ("stopPrice", "icebergQty", "time", "updateTime", "isWorking")}
        body["transactTime"] = now
        return self._json(body)

    def _r_get_order(self, params: dict[str, str]) -> web.Response:
        """GET /api/v3/order by origClientOrderId (trading-endpoints.md); -2013 when unknown."""
        order = self.orders.get(params.get("origClientOrderId", ""))
        if order is None or order.symbol != params.get("symbol"):
            return self._error(400, -2013, "Order does not exist.")
        return self._json(order.as_rest())

    def _r_delete_order(self, params: dict[str, str]) -> web.Response:
        """DELETE /api/v3/order (trading-endpoints.md); -2011 when not cancelable."""
        order = self.orders.get(params.get("origClientOrderId", ""))
        if order is None or order.status not in ("NEW", "PARTIALLY_FILLED"):
            return self._error(400, -2011, "Unknown order sent.")
        order.status = "CANCELED"
        order.update_ms = self.now_ms()
        self._emit_report(order, "CANCELED")
        body = order.as_rest()
        body["origClientOrderId"] = order.client_order_id
        return self._json(body)

    def _r_get_openOrders(self, params: dict[str, str]) -> web.Response:
        """GET /api/v3/openOrders (trading-endpoints.md)."""
        sym = params.get("symbol")
        return self._json([o.as_rest() for o in self.orders.values()
                           if o.status in ("NEW", "PARTIALLY_FILLED") and (sym is None or o.symbol == sym)])

    def _r_get_account(self, params: dict[str, str]) -> web.Response:
        """GET /api/v3/account (account-endpoints.md): balances[{asset, free, locked}]."""
        return self._json({
            "makerCommission": 10, "takerCommission": 10, "canTrade": True, "canWithdraw": True,
            "canDeposit": True, "accountType": "SPOT", "updateTime": self.now_ms(), "permissions": ["SPOT"],
            "balances": [{"asset": a, "free": _d(f), "locked": _d(lk)} for a, (f, lk) in self.balances.items()]})

    # ---------------------------------------------------------------------------------------------
    # Fills

    def fill(self, client_order_id: str, qty: str, price: str, *, maker: bool = False) -> None:
        """Execute ``qty`` of a resting order at ``price`` and report it through executionReport."""
        order = self.orders[client_order_id]
        q, p = Decimal(qty), Decimal(price)
        order.executed += q
        order.quote += q * p
        order.status = "FILLED" if order.executed >= order.qty else "PARTIALLY_FILLED"
        order.update_ms = self.now_ms()
        self._emit_report(order, "TRADE", last_qty=q, last_price=p, trade_id=next(self._trade_ids), maker=maker)

    def _emit_report(self, order: PeerOrder, exec_type: str, *, last_qty: Decimal = Decimal(0),
                     last_price: Decimal = Decimal(0), trade_id: int = -1, maker: bool = False) -> None:
        """``executionReport`` (user-data-stream.md) wrapped as a WebSocket API subscription event
        (websocket-api/user-data-stream-requests.md); on a cancel, ``C`` holds the original id."""
        now = self.now_ms()
        cancel = exec_type == "CANCELED"
        report = {
            "e": "executionReport", "E": now, "s": order.symbol,
            "c": f"cancel{order.order_id}" if cancel else order.client_order_id,
            "S": order.side, "o": order.type, "f": order.tif, "q": _d(order.qty), "p": _d(order.price),
            "P": _d(order.stop_price), "F": "0.00000000", "g": -1,
            "C": order.client_order_id if cancel else "", "x": exec_type, "X": order.status, "r": "NONE",
            "i": order.order_id, "l": _d(last_qty), "z": _d(order.executed), "L": _d(last_price),
            "n": _d(last_qty * last_price * Decimal("0.001")) if trade_id > 0 else "0",
            "N": order.symbol[-4:] if trade_id > 0 else None, "T": now, "t": trade_id, "v": 3,
            "I": next(self._ids), "w": order.status == "NEW", "m": maker, "M": False, "O": order.time_ms,
            "Z": _d(order.quote), "Y": _d(last_qty * last_price), "Q": "0.00000000", "W": order.time_ms,
            "V": "NONE",
        }
        for ws in list(self.api_clients):
            sub = getattr(ws, "_omnid_sub", None)
            if sub is not None and not ws.closed:
                ws_send = ws.send_str(_text({"subscriptionId": sub, "event": report}))
                asyncio.get_running_loop().create_task(ws_send)

    # ---------------------------------------------------------------------------------------------
    # WebSocket API

    async def _ws_api(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=self.ping_interval)
        await ws.prepare(request)
        self.api_connections += 1
        self.api_clients.append(ws)
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                req = msgspec.json.decode(msg.data)
                rid, method, params = req.get("id"), req.get("method"), req.get("params", {})
                if method != "userDataStream.subscribe.signature":
                    await ws.send_str(_text({
                        "id": rid, "status": 400, "error": {"code": -1100, "msg": f"Unknown method {method}"}}))
                    continue
                payload = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "signature")
                good = hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()
                if params.get("apiKey") != API_KEY:
                    err = {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}
                elif params.get("signature") != good:
                    err = {"code": -1022, "msg": "Signature for this request is not valid."}
                elif abs(int(params.get("timestamp", 0)) - self.now_ms()) > 5000:
                    err = {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."}
                else:
                    sub = next(self._sub_ids)
                    ws._omnid_sub = sub  # type: ignore[attr-defined]
                    await ws.send_str(_text({
                        "id": rid, "status": 200, "result": {"subscriptionId": sub},
                        "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE",
                                        "intervalNum": 1, "limit": self.weight_limit, "count": 2}]}))
                    continue
                await ws.send_str(_text({"id": rid, "status": 400, "error": err}))
        finally:
            if ws in self.api_clients:
                self.api_clients.remove(ws)
        return ws

    def subscribed_accounts(self) -> int:
        return sum(1 for ws in self.api_clients if getattr(ws, "_omnid_sub", None) is not None and not ws.closed)
