"""Messages per second the Binance feed decodes on one core: combined-stream frames → omnid events.

Frames are ``str``, as aiohttp hands over WebSocket text frames.

Runs the feed's real frame handler (envelope decode, payload decode into Trade/BookDelta, book
update for depth, hand-off to a no-op callback); no network. Prints the median of several runs.

    .venv/bin/python bench/binance_feed.py [--n 200000] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import aiohttp
import msgspec
from omnid.model import BookSnapshot, MarketEvent
from omnid.venues.binance.config import BinanceConfig
from omnid.venues.binance.feed import BinanceFeed
from omnid.venues.binance.rest import BinanceRest
from omnid.venues.binance.wire import decode_trade


def trade_frames(n: int) -> list[str]:
    out = []
    for i in range(n):
        p = 50000 + (i % 200) * 0.01
        data = {"e": "trade", "E": 1700000000000 + i, "s": "BTCUSDT", "t": i, "p": f"{p:.2f}",
                "q": "0.00120000", "T": 1700000000000 + i, "m": i % 2 == 0, "M": True}
        out.append(msgspec.json.encode({"stream": "btcusdt@trade", "data": data}).decode())
    return out


def depth_frames(n: int, levels: int) -> list[str]:
    out = []
    for i in range(n):
        bids = [[f"{50000 - (i + k) % 50 * 0.01:.2f}", f"{(k + 1) * 0.1:.8f}"] for k in range(levels)]
        asks = [[f"{50001 + (i + k) % 50 * 0.01:.2f}", "0.00000000" if k == 0 else f"{k * 0.2:.8f}"]
                for k in range(levels)]
        data = {"e": "depthUpdate", "E": 1700000000000 + i, "s": "BTCUSDT", "U": i + 1, "u": i + 1,
                "b": bids, "a": asks}
        out.append(msgspec.json.encode({"stream": "btcusdt@depth@100ms", "data": data}).decode())
    return out


def run(feed: BinanceFeed, frames: list[str]) -> float:
    on_frame = feed.on_frame
    t0 = time.perf_counter()
    for f in frames:
        on_frame(f)
    return len(frames) / (time.perf_counter() - t0)


async def main(n: int, runs: int, levels: int) -> None:
    count = 0

    def sink(_e: MarketEvent) -> None:
        nonlocal count
        count += 1

    async with aiohttp.ClientSession() as session:
        cfg = BinanceConfig(symbols=["BTCUSDT"], streams=["trade", "depth@100ms"])
        feed = BinanceFeed(cfg, sink, session=session, rest=BinanceRest(session, "http://127.0.0.1:9"))
        trades, depths = trade_frames(n), depth_frames(n, levels)
        raw = [msgspec.json.encode(msgspec.json.decode(f)["data"]) for f in trades[:n]]
        results: dict[str, list[float]] = {"trade": [], "depth": [], "decode_trade_only": []}
        for _ in range(runs):
            results["trade"].append(run(feed, trades))
            book = feed.books["BTCUSDT"]
            book.reset()
            book.on_snapshot(BookSnapshot("BTCUSDT.BINANCE", [], [], 0, 0, 0))
            results["depth"].append(run(feed, depths))
            t0 = time.perf_counter()
            for r in raw:
                decode_trade(r, 0)
            results["decode_trade_only"].append(len(raw) / (time.perf_counter() - t0))
        assert feed.stats.malformed == {} and feed.stats.gaps == 0, feed.stats.as_dict()
        assert count == 2 * n * runs, count
    print(f"binance feed decode, {n} frames x {runs} runs, depth diffs with {levels}+{levels} levels")
    for name, vals in results.items():
        med = statistics.median(vals)
        print(f"  {name:18s} median {med:>12,.0f} msg/s  ({1e6 / med:.2f} µs/msg; "
              f"min {min(vals):,.0f} max {max(vals):,.0f})")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--levels", type=int, default=10)
    a = ap.parse_args()
    asyncio.run(main(a.n, a.runs, a.levels))
