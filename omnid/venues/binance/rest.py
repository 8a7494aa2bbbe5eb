"""Binance spot REST: signing, server-time offset, request-weight budget, errors → omnid.errors.

Facts relied on (binance-spot-api-docs, rest-api/request-security.md, general-api-information.md,
limits.md, http-return-codes.md, errors.md):

- SIGNED requests carry ``timestamp`` (ms) and optionally ``recvWindow``; ``signature`` is the
  hex HMAC-SHA256 of the exact query string, keyed by the secret; the key goes in ``X-MBX-APIKEY``.
- ``X-MBX-USED-WEIGHT-1M`` reports the IP's weight used in the current minute.
- HTTP 429: too many requests, back off for ``Retry-After`` seconds; 418: IP banned after ignoring
  429s (also with ``Retry-After``). 5XX: the request may or may not have been executed.
- Error bodies are ``{"code": -1121, "msg": "Invalid symbol."}``. -1021: timestamp outside the
  recvWindow; -1007: backend timeout, execution status unknown; -1013: a filter failure;
  -2010: new order rejected; -2011: cancel rejected; -2013: order does not exist; -2014/-2015:
  bad API key or permissions.
- market-data-endpoints.md: ``GET /api/v3/historicalTrades`` (old trade lookup; weight 25; ``fromId``
  = first trade id wanted; ``limit`` default 500, max 1000) and ``GET /api/v3/aggTrades`` (weight 4;
  ``fromId`` inclusive; ``limit`` default 500, max 1000); general-api-information.md: data comes in
  ascending order, oldest first. Earlier versions of the doc marked historicalTrades MARKET_DATA (an
  API key in the header); the current one lists no security, and the key goes with every request here
  anyway when one is configured.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import aiohttp
import msgspec

from omnid.errors import (
    DataError,
    FatalError,
    OmnidError,
    RateLimitedError,
    RejectedError,
    StatusUnknownError,
    TransientError,
)
from omnid.model import Bar, BookSnapshot, Trade
from omnid.venues.binance import wire
from omnid.venues.binance.config import Credentials

log = logging.getLogger("omnid.venues.binance.rest")

Params = Mapping[str, str | int | float]


def sign(secret: bytes, query: str) -> str:
    """Hex HMAC-SHA256 of ``query`` (Binance's SIGNED endpoint signature)."""
    return hmac.new(secret, query.encode(), hashlib.sha256).hexdigest()


class _ErrorBody(msgspec.Struct):
    code: int = 0
    msg: str = ""


_error_dec = msgspec.json.Decoder(_ErrorBody)

#: Binance error codes that mean "this request as it stands is invalid".
_REJECT_CODES = {-1013, -2010, -2011, -2013, -1100, -1101, -1102, -1104, -1106, -1111, -1115, -1116, -1117,
                 -1121}
_FATAL_CODES = {-2014, -2015, -1002, -1022}


def map_error(status: int, body: bytes, *, path: str, retry_after: float | None) -> OmnidError:
    """Turn a failed HTTP answer into the omnid error that says what to do about it."""
    try:
        err = _error_dec.decode(body) if body else _ErrorBody()
    except msgspec.DecodeError:
        err = _ErrorBody(msg=body[:200].decode(errors="replace"))
    ctx: dict[str, Any] = {"http_status": status, "code": err.code, "path": path}
    text = f"binance {path}: HTTP {status} code {err.code}: {err.msg}"
    if status in (429, 418):
        return RateLimitedError(text, retry_after=retry_after if retry_after is not None else 60.0, **ctx)
    if status >= 500 or err.code == -1007:
        return StatusUnknownError(text, **ctx)
    if err.code == -1021:
        return TransientError(text, **ctx)
    if err.code in _FATAL_CODES or status == 401:
        return FatalError(text, **ctx)
    if err.code in _REJECT_CODES or 400 <= status < 500:
        return RejectedError(text, **ctx)
    return TransientError(text, **ctx)


class BinanceRest:
    """One venue's REST client. Async; shared by the feed (snapshots, klines) and the broker."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        credentials: Credentials | None = None,
        recv_window_ms: int = 5000,
        weight_limit_1m: int = 6000,
        weight_headroom: float = 0.8,
        timeout_s: float = 10.0,
        wall_ms: Callable[[], int] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._creds = credentials
        self.recv_window_ms = recv_window_ms
        self.weight_limit = weight_limit_1m
        self.weight_headroom = weight_headroom
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._wall_ms = wall_ms or (lambda: time.time_ns() // 1_000_000)
        self._sleep = sleep
        self.offset_ms = 0  # server time minus local time
        self.used_weight = 0
        self._weight_minute = 0
        self._banned_until = 0.0  # monotonic seconds
        self.requests = 0
        self.time_syncs = 0
        self._weight_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"BinanceRest({self._base!r}, credentials={self._creds!r})"

    # ---------------------------------------------------------------------------------------------
    # Time and budgets

    def server_ms(self) -> int:
        return self._wall_ms() + self.offset_ms

    async def sync_time(self) -> int:
        """Measure the server-time offset (midpoint of the round trip); returns it in ms."""
        t0 = self._wall_ms()
        body = await self._send("GET", "/api/v3/time", "", weight=1)
        t1 = self._wall_ms()
        try:
            server = msgspec.json.decode(body)["serverTime"]
        except (msgspec.DecodeError, KeyError, TypeError) as exc:
            raise DataError(f"binance /api/v3/time answer is malformed: {exc}") from None
        self.offset_ms = int(server) - (t0 + t1) // 2
        self.time_syncs += 1
        return self.offset_ms

    def banned_for(self) -> float:
        """Seconds left before Binance will accept requests again (0 when not rate limited)."""
        return max(self._banned_until - time.monotonic(), 0.0)

    async def _reserve(self, weight: int) -> None:
        """Wait for the next minute if this request would push the used weight past the headroom."""
        async with self._weight_lock:
            minute = self.server_ms() // 60_000
            if minute != self._weight_minute:
                self._weight_minute, self.used_weight = minute, 0
            budget = self.weight_limit * self.weight_headroom
            if self.used_weight + weight > budget:
                wait = (minute + 1) * 60_000 - self.server_ms()
                log.warning("binance request weight %d/%d: pausing %.1fs",
                            self.used_weight, self.weight_limit, wait / 1000)
                await self._sleep(max(wait, 0) / 1000)
                self._weight_minute, self.used_weight = self.server_ms() // 60_000, 0
            self.used_weight += weight

    # ---------------------------------------------------------------------------------------------
    # Requests

    async def _send(self, method: str, path: str, query: str, *, weight: int) -> bytes:
        left = self.banned_for()
        if left > 0:
            raise RateLimitedError(
                f"binance: rate limited, not sending {method} {path} for another {left:.1f}s",
                retry_after=left, path=path,
            )
        await self._reserve(weight)
        headers = {}
        if self._creds is not None:
            headers["X-MBX-APIKEY"] = self._creds.api_key
        url = f"{self._base}{path}" + (f"?{query}" if query else "")
        self.requests += 1
        try:
            async with self._session.request(method, url, headers=headers, timeout=self._timeout) as resp:
                body = await resp.read()
                used = resp.headers.get("X-MBX-USED-WEIGHT-1M")
                if used is not None and used.isdigit():
                    self.used_weight = max(self.used_weight, int(used))
                if resp.status == 200:
                    return body
                retry_after = _float_or_none(resp.headers.get("Retry-After"))
                error = map_error(resp.status, body, path=path, retry_after=retry_after)
                if isinstance(error, RateLimitedError):
                    self._banned_until = time.monotonic() + (error.retry_after or 60.0)
                raise error
        except (TimeoutError, aiohttp.ClientError) as exc:
            # The request may have reached the venue: callers that change state must query.
            raise StatusUnknownError(
                f"binance {method} {path}: {type(exc).__name__}: {exc}", path=path
            ) from None

    async def public(self, path: str, params: Params | None = None, *, weight: int = 1) -> bytes:
        return await self._send("GET", path, urlencode(params or {}), weight=weight)

    async def signed(self, method: str, path: str, params: Params | None = None, *, weight: int = 1) -> Any:
        """A SIGNED request; on -1021 (clock drift) resync the offset and try once more."""
        if self._creds is None:
            raise FatalError(f"binance {path}: needs API credentials, none configured", path=path)
        for attempt in (0, 1):
            query = self.signed_query(params or {})
            try:
                body = await self._send(method, path, query, weight=weight)
            except TransientError as exc:
                if exc.context.get("code") == -1021 and attempt == 0:
                    log.warning("binance -1021 (timestamp outside recvWindow): resyncing server time")
                    await self.sync_time()
                    continue
                raise
            try:
                return msgspec.json.decode(body)
            except msgspec.DecodeError as exc:
                raise DataError(f"binance {path}: malformed JSON answer: {exc}", path=path) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def signed_query(self, params: Params) -> str:
        assert self._creds is not None
        q = urlencode({**params, "recvWindow": self.recv_window_ms, "timestamp": self.server_ms()})
        return f"{q}&signature={sign(self._creds.secret, q)}"

    # ---------------------------------------------------------------------------------------------
    # Endpoints (weights from market-data-endpoints.md, trading-endpoints.md, account-endpoints.md)

    async def exchange_info(self, symbols: list[str] | None = None) -> dict[str, wire.SymbolInfo]:
        params = {"symbols": msgspec.json.encode([s.upper() for s in symbols]).decode()} if symbols else {}
        info, limit = wire.decode_exchange_info(await self.public("/api/v3/exchangeInfo", params, weight=20))
        if limit:
            self.weight_limit = limit
        return info

    async def depth(self, symbol: str, limit: int, ts_init: int) -> BookSnapshot:
        weight = 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
        body = await self.public("/api/v3/depth", {"symbol": symbol, "limit": limit}, weight=weight)
        return wire.decode_depth_snapshot(body, symbol, ts_init)

    async def klines(
        self, symbol: str, interval: str, *, start_ms: int | None = None, end_ms: int | None = None,
        limit: int = 1000, ts_init: int = 0,
    ) -> list[Bar]:
        params: dict[str, str | int] = {"symbol": symbol, "interval": interval, "limit": limit}
        if start_ms is not None:
            params["startTime"] = start_ms
        if end_ms is not None:
            params["endTime"] = end_ms
        body = await self.public("/api/v3/klines", params, weight=2)
        return wire.decode_klines(body, symbol, interval, ts_init)

    async def historical_trades(self, symbol: str, from_id: int, *, limit: int = 1000, ts_init: int = 0
                                ) -> list[tuple[int, Trade]]:
        """Trades with id >= ``from_id``, ascending, at most ``limit`` (<= 1000): the ids the
        ``@trade`` stream carries in ``t``. Weight 25; no key needed today (sent if configured)."""
        body = await self.public("/api/v3/historicalTrades",
                                 {"symbol": symbol, "fromId": from_id, "limit": limit}, weight=25)
        return wire.decode_historical_trades(body, symbol, ts_init)

    async def agg_trades(self, symbol: str, from_id: int, *, limit: int = 1000, ts_init: int = 0
                         ) -> list[tuple[int, Trade]]:
        """Aggregate trades with id >= ``from_id`` (inclusive), ascending, at most ``limit`` (<= 1000):
        the ids the ``@aggTrade`` stream carries in ``a``. Weight 4."""
        body = await self.public("/api/v3/aggTrades",
                                 {"symbol": symbol, "fromId": from_id, "limit": limit}, weight=4)
        return wire.decode_agg_trades(body, symbol, ts_init)

    async def new_order(self, params: Params) -> Any:
        return await self.signed("POST", "/api/v3/order", params, weight=1)

    async def cancel_order(self, symbol: str, client_order_id: str) -> Any:
        return await self.signed("DELETE", "/api/v3/order",
                                 {"symbol": symbol, "origClientOrderId": client_order_id}, weight=1)

    async def query_order(self, symbol: str, client_order_id: str) -> Any:
        return await self.signed("GET", "/api/v3/order",
                                 {"symbol": symbol, "origClientOrderId": client_order_id}, weight=4)

    async def open_orders(self, symbol: str | None = None) -> Any:
        if symbol:
            return await self.signed("GET", "/api/v3/openOrders", {"symbol": symbol}, weight=6)
        return await self.signed("GET", "/api/v3/openOrders", {}, weight=80)

    async def account(self) -> Any:
        return await self.signed("GET", "/api/v3/account", {"omitZeroBalances": "true"}, weight=20)


def _float_or_none(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
