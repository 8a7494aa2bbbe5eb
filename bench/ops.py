"""The service layer's costs: sim feed generation, the daemon's per-event overhead, alert emit, and
an admin-socket round trip. Prints medians of several runs; no network.

    .venv/bin/python bench/ops.py [--runs 5]

- sim feed: events/s :meth:`SimMarketFeed.step` generates into a no-op sink (4 instruments).
- daemon hop: ns per event of :meth:`Daemon.on_market_event` with no core (the price tracker and
  the price-alert rule), i.e. what the daemon adds in front of the Engine.
- alert emit: ns per :meth:`AlertManager.emit` into the queue (its info log line filtered out).
- admin round trip: µs per ``status``-sized request/reply over the Unix socket (the sync client).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import structlog
from omnid.calendar import NS_PER_SECOND
from omnid.clock import SimClock
from omnid.config import load_config
from omnid.daemon import Daemon
from omnid.model import MarketEvent, Quote, Side, Trade
from omnid.ops.admin import AdminServer, request
from omnid.ops.alerts import AlertManager
from omnid.ops.config import AlertsConfig, WebhookConfig
from omnid.ops.protocol import AdminRequest
from omnid.venues.sim.config import SimMarketConfig
from omnid.venues.sim.feed import SimMarketFeed

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_795_028_400 * NS_PER_SECOND


def sim_feed_rate() -> float:
    cfg = load_config(ROOT / "omnid.toml.example")
    n = 0

    def sink(_e: MarketEvent) -> None:
        nonlocal n
        n += 1

    feed = SimMarketFeed(SimMarketConfig(rate_hz=2000.0), cfg.instrument_models(), SimClock(T0), sink)
    t = T0
    feed.step(t)
    start = time.perf_counter()
    for _ in range(200):
        t += NS_PER_SECOND // 10
        feed.step(t)
    return n / (time.perf_counter() - start)


async def daemon_hop_ns(tmp: Path) -> float:
    cfg = load_config(ROOT / "omnid.toml.example", env={"OMNID__OMNID__DATA_DIR": str(tmp)})
    d = Daemon(cfg, ROOT / "omnid.toml.example")
    events: list[Trade | Quote] = []
    for i in range(50_000):
        px = 60000.0 + (i % 100) * 0.01
        if i % 2:
            events.append(Trade("BTCUSDT.SIM", px, 0.01, Side.BUY, i, i))
        else:
            events.append(Quote("BTCUSDT.SIM", px, px + 0.02, 1.0, 1.0, i, i))
    hop = d.on_market_event
    start = time.perf_counter_ns()
    for e in events:
        hop(e)
    return (time.perf_counter_ns() - start) / len(events)


async def alert_emit_ns() -> float:
    mgr = AlertManager(
        AlertsConfig(queue_size=200_000, webhooks=[WebhookConfig(url="http://127.0.0.1:9/x")])
    )
    n = 100_000
    start = time.perf_counter_ns()
    for i in range(n):
        mgr.emit("fill", "a fill", i=i)
    return (time.perf_counter_ns() - start) / n


async def admin_round_trip_us(tmp: Path) -> float:
    payload = {"feeds": [{"name": "sim", "rate": 25.0}] * 2, "positions": [{"qty": 1.0}] * 10}

    async def status(_req: AdminRequest) -> Any:
        return payload

    srv = AdminServer(tmp / "b.sock", {"status": status})
    await srv.start()
    try:
        n = 300

        def run() -> float:
            start = time.perf_counter()
            for _ in range(n):
                request(srv.path, "status")
            return (time.perf_counter() - start) / n * 1e6

        return await asyncio.to_thread(run)
    finally:
        await srv.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    logging.disable(logging.CRITICAL)
    # Measure the code, not log rendering: alerts are logged at info, filtered out here.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    rates, hops, emits, trips = [], [], [], []
    for _ in range(args.runs):
        rates.append(sim_feed_rate())
        with tempfile.TemporaryDirectory() as d:
            hops.append(asyncio.run(daemon_hop_ns(Path(d))))
            emits.append(asyncio.run(alert_emit_ns()))
            trips.append(asyncio.run(admin_round_trip_us(Path(d))))
    print(f"sim feed generation:     {statistics.median(rates):>12,.0f} events/s")
    print(f"daemon hop per event:    {statistics.median(hops):>12,.0f} ns (no core)")
    print(f"alert emit:              {statistics.median(emits):>12,.0f} ns")
    print(f"admin status round trip: {statistics.median(trips):>12,.0f} us")


if __name__ == "__main__":
    main()
