"""Per-event cost of the ledger, the paper broker and the order path (median of several runs).

    .venv/bin/python bench/execution.py [--runs 5] [--n 1000000]

Prints ns per call for: ``Portfolio.mark`` (the per-tick hot path), ``PaperBroker.on_trade`` with
no working order on the instrument (what a backtest pays on most ticks), ``on_trade`` with a
resting limit that does not fill, ``Portfolio.apply_fill`` (a few repeating prices and sizes, then
as in a replay: 10 instruments opened and closed in turn at prices, sizes and fees that rarely
repeat, so the ledger's decimal cache mostly misses), ``Instrument.round_qty``, and one whole
market-order round trip (``OrderManager.submit`` → accepted → next trade → fill → portfolio).

Times are this process's CPU time, not wall time: the 2 cores are shared, and CPU time is what a
backtest on an idle machine would see.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

from omnid.clock import SimClock
from omnid.execution import OrderManager, Router
from omnid.model import Fill, Instrument, OrderIntent, OrderType, Side, Trade
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


def _replay_fills(n: int) -> list[Fill]:
    """Fills as a replay makes them: 10 instruments, each opened then closed in turn, at random
    (never repeating) prices on a 0.01 tick, sizes on a 0.001 lot, a 0.05% fee of the notional."""
    rng = random.Random(7)
    fills = []
    prices = [100.0 * (k + 1) for k in range(10)]
    open_qty = [0.0] * 10
    for i in range(n):
        k = rng.randrange(10)
        prices[k] = round(prices[k] * (1 + rng.gauss(0, 0.002)), 2)
        if open_qty[k]:
            side, qty = (Side.SELL, open_qty[k]) if open_qty[k] > 0 else (Side.BUY, -open_qty[k])
            open_qty[k] = 0.0
        else:
            qty = round(rng.uniform(0.001, 50.0), 3)
            side = Side.BUY if rng.random() < 0.5 else Side.SELL
            open_qty[k] = qty * side.sign
        fills.append(
            Fill(
                fill_id=f"f{i}",
                client_order_id="o",
                instrument_id=f"I{k}.SIM",
                strategy_id="s",
                side=side,
                qty=qty,
                price=prices[k],
                commission=0.0005 * qty * prices[k],
                ts_event=T0 + i,
            )
        )
    return fills


def bench_apply_fill_replay(n: int) -> None:
    pf = Portfolio(SimClock(T0), initial_cash=1e6)
    apply = pf.apply_fill
    for f in _REPLAY_FILLS[:n]:
        apply(f)


def bench_round_qty(n: int) -> None:
    inst = Instrument(symbol="BTC", venue="PAPER", lot_size=0.001)
    round_qty = inst.round_qty
    for q in _QTYS[:n]:
        round_qty(q)


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
_REPLAY_FILLS: list[Fill] = []
_QTYS: list[float] = []


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--n", type=int, default=1_000_000)
    args = ap.parse_args()
    n, runs = args.n, args.runs
    _TRADES.extend(_trades(n))
    small = max(n // 20, 1000)
    _REPLAY_FILLS.extend(_replay_fills(small))
    rng = random.Random(3)
    _QTYS.extend(rng.uniform(0.0, 100.0) for _ in range(small))
    rows = [
        ("Portfolio.mark", _median_ns(bench_mark, n, runs)),
        ("PaperBroker.on_trade, nothing working", _median_ns(bench_idle_broker, n, runs)),
        ("PaperBroker.on_trade, one resting limit", _median_ns(bench_resting_limit, n, runs)),
        ("Portfolio.apply_fill", _median_ns(bench_apply_fill, small, runs)),
        ("Portfolio.apply_fill, replay-like (10 instr.)", _median_ns(bench_apply_fill_replay, small, runs)),
        ("Instrument.round_qty (lot 0.001)", _median_ns(bench_round_qty, small, runs)),
        ("market order round trip (submit..fill)", _median_ns(bench_round_trip, small, runs)),
    ]
    print(f"median of {runs} runs, n={n} (fills and round trips: {small})")
    for name, ns in rows:
        print(f"{name:45s} {ns:9.0f} ns/call  ({1e9 / ns:12,.0f} /s)")


if __name__ == "__main__":
    main()
