"""Historical klines from Binance's REST ``/api/v3/klines`` into the store, paged and rate-limited.

Pages of up to 1000 rows (market-data-endpoints.md: ``limit`` max 1000, ``startTime``/``endTime``
in ms, rows oldest first); the REST client keeps request weight under the limit and a 429/418
waits out its ``Retry-After`` before the page is asked again. Only closed bars are stored. Rows go
through the storage sink's idempotent replay path, so running a backfill twice stores each bar once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import msgspec

from omnid.errors import RateLimitedError, StorageError
from omnid.model import Bar
from omnid.storage.catalog import CATALOG
from omnid.storage.config import StorageConfig
from omnid.storage.history import route, write_rows
from omnid.storage.service import build_sinks
from omnid.venues.binance import wire
from omnid.venues.binance.config import BinanceConfig
from omnid.venues.binance.rest import BinanceRest

log = logging.getLogger("omnid.venues.binance.backfill")

PAGE = 1000


class BackfillResult(msgspec.Struct):
    symbol: str
    interval: str
    bars: int
    pages: int
    first_open_ns: int
    last_open_ns: int
    sink: str


async def kline_pages(
    rest: BinanceRest, symbol: str, interval: str, start_ms: int, end_ms: int, *, page: int = PAGE,
    max_waits: int = 5,
) -> AsyncIterator[list[Bar]]:
    """Closed bars opening in ``[start_ms, end_ms]``, one page at a time, oldest first."""
    if interval not in wire.INTERVAL_MS:
        raise ValueError(f"unknown interval {interval!r} (known: {', '.join(wire.INTERVAL_MS)})")
    step = wire.INTERVAL_MS[interval]
    start, waits = start_ms, 0
    while start <= end_ms:
        try:
            bars = await rest.klines(symbol, interval, start_ms=start, end_ms=end_ms, limit=page,
                                     ts_init=time.time_ns())
        except RateLimitedError as exc:
            waits += 1
            if waits > max_waits:
                raise
            log.warning("binance backfill: rate limited, waiting %.0fs", exc.retry_after or 60)
            await asyncio.sleep(exc.retry_after or 60)
            continue
        now_ms = rest.server_ms()
        closed = [b for b in bars if b.ts_event // wire.MS <= now_ms]
        if closed:
            yield closed
        if len(bars) < page or len(closed) < len(bars):
            return
        start = bars[-1].ts_open // wire.MS + step


async def backfill(
    cfg: BinanceConfig,
    symbol: str,
    interval: str,
    start_ms: int,
    end_ms: int,
    *,
    write: Callable[[list[Bar]], object] | None = None,
    storage: StorageConfig | None = None,
    data_dir: Path | None = None,
    session: aiohttp.ClientSession | None = None,
) -> BackfillResult:
    """Fetch and store where ``[storage]`` routes ``md.bars`` (``storage`` and ``data_dir``), or
    hand each page to ``write`` (sync or async) when no storage is given."""
    own = session is None
    sess = session or aiohttp.ClientSession()
    sink = None
    sink_name = "callback"
    spec = CATALOG.spec_for(Bar)
    try:
        if storage is not None:
            sink_name = route(storage, spec)
            if sink_name == "none":
                raise StorageError("[storage] routes md.bars to none: nothing to backfill into")
            sink = build_sinks(storage, data_dir or Path("."), only={sink_name})[sink_name]
            await sink.start([spec])
        rest = BinanceRest(sess, cfg.urls[0], recv_window_ms=cfg.recv_window_ms,
                           weight_limit_1m=cfg.weight_limit_1m, weight_headroom=cfg.weight_headroom,
                           timeout_s=cfg.request_timeout_s)
        await rest.sync_time()
        n = pages = 0
        first = last = 0
        async for bars in kline_pages(rest, symbol.upper(), interval, start_ms, end_ms):
            pages += 1
            n += len(bars)
            first = first or bars[0].ts_open
            last = bars[-1].ts_open
            if sink is not None:
                await write_rows(sink, spec, [spec.row(b) for b in bars])
            elif write is not None:
                out = write(bars)
                if asyncio.iscoroutine(out):
                    await out
        return BackfillResult(symbol.upper(), interval, n, pages, first, last, sink_name)
    finally:
        if sink is not None:
            await sink.close()
        if own:
            await sess.close()
