"""Per-event cost of the ledger, the paper broker and the order path (median of several runs).

    .venv/bin/python bench/execution.py [--runs 5] [--n 1000000]

Prints ns per call for: ``Portfolio.mark`` (the per-tick hot path), ``PaperBroker.on_trade`` with
no working order on the instrument (what a backtest pays on most ticks), ``on_trade`` with a
resting limit that does not fill, ``Portfolio.apply_fill``, and one whole market-order round trip
(``OrderManager.submit`` → accepted → next trade → fill → portfolio).

Times are this process's CPU time, not wall time: the 2 cores are shared, and CPU time is what a
backtest on an idle machine would see.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from omnid.clock import SimClock
from omnid.execution import OrderManager, Router
from omnid.model import Fill, OrderIntent, OrderType, Side, Trade
from omnid.portfolio import Portfolio
from omnid.venues.paper import PaperBroker

T0 = 1_767_225_600 * 10**9
IID = "BTC.PAPER"


def _median_ns(fn: Callable[[int], None], n: int, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.process_time_ns()
        fn(n)
        times.append((time.process_time_ns() - t) / n)
    return statistics.median(times)


def bench_mark(n: int) -> None:
    pf = Portfolio(SimClock(T0), initial_cash=1e6)
    pf.apply_fill(
        Fill(
            fill_id="f",
            client_order_id="o",
            instrument_id=IID,
            strategy_id="s",
            side=Side.BUY,
            qty=1.0,
            price=100.0,
            ts_event=T0,
        )
    )
    mark = pf.mark
    for i in range(n):
        mark(IID, 100.0 + (i & 7))


def _trades(n: int) -> list[Trade]:
    return [
        Trade(
            instrument_id=IID,
            price=100.0 + (i & 7) * 0.01,
            size=1.0,
            side=Side.NONE,
            ts_event=T0 + i,
            ts_init=T0 + i,
        )
        for i in range(n)
    ]


def bench_idle_broker(n: int) -> None:
    broker = PaperBroker(SimClock(T0))
    on_trade = broker.on_trade
    for t in _TRADES[:n]:
        on_trade(t)


def bench_resting_limit(n: int) -> None:
    clock = SimClock(T0)
    broker = PaperBroker(clock)
    om = OrderManager(clock=clock, router=Router([broker]))
    om.submit(
        OrderIntent(
            strategy_id="s",
            instrument_id=IID,
            side=Side.BUY,
            qty=1.0,
            order_type=OrderType.LIMIT,
            limit_price=1.0,
        )
    )
    on_trade = broker.on_trade
    for t in _TRADES[:n]:
        on_trade(t)


def bench_apply_fill(n: int) -> None:
    pf = Portfolio(SimClock(T0), initial_cash=1e6)
    fills = [
        Fill(
            fill_id=f"f{i}",
            client_order_id="o",
            instrument_id=IID,
            strategy_id="s",
            side=Side.BUY if i % 3 else Side.SELL,
            qty=0.5 + (i % 5) * 0.25,
            price=100.0 + (i % 11) * 0.01,
            commission=0.01,
            ts_event=T0,
        )
        for i in range(n)
    ]
    apply = pf.apply_fill
    for f in fills:
        apply(f)


def bench_round_trip(n: int) -> None:
    clock = SimClock(T0)
    broker = PaperBroker(clock)
    pf = Portfolio(clock, initial_cash=1e9)
    om = OrderManager(clock=clock, router=Router([broker]), portfolio=pf)
    buy = OrderIntent(strategy_id="s", instrument_id=IID, side=Side.BUY, qty=1.0)
    sell = OrderIntent(strategy_id="s", instrument_id=IID, side=Side.SELL, qty=1.0)
    trades = _TRADES
    for i in range(n):
        om.submit(buy if i & 1 else sell)
        broker.on_trade(trades[i])


_TRADES: list[Trade] = []


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--n", type=int, default=1_000_000)
    args = ap.parse_args()
    n, runs = args.n, args.runs
    _TRADES.extend(_trades(n))
    small = max(n // 20, 1000)
    rows = [
        ("Portfolio.mark", _median_ns(bench_mark, n, runs)),
        ("PaperBroker.on_trade, nothing working", _median_ns(bench_idle_broker, n, runs)),
        ("PaperBroker.on_trade, one resting limit", _median_ns(bench_resting_limit, n, runs)),
        ("Portfolio.apply_fill", _median_ns(bench_apply_fill, small, runs)),
        ("market order round trip (submit..fill)", _median_ns(bench_round_trip, small, runs)),
    ]
    print(f"median of {runs} runs, n={n} (fills and round trips: {small})")
    for name, ns in rows:
        print(f"{name:45s} {ns:9.0f} ns/call  ({1e9 / ns:12,.0f} /s)")


if __name__ == "__main__":
    main()
