"""Where a tick's time goes in the Engine: a per-tick cost breakdown, layer by layer.

Each row adds one layer to the previous and prints CPU microseconds per tick (median of
``--runs``; CPU time, not wall time, so other work on the shared cores disturbs it less):

  replay loop            Trade objects handed to a function that does nothing
  engine, no strategy    paper broker check, marks, feature engine, managed exits, dispatch
  + features             the indicators the strategy reads (scenario a: vwap, rsi:14, obi:5;
                         b: ema:10, ema:50), strategies paused
  + strategy, no orders  the strategy decides on every tick but never qualifies
  full                   the scenario itself: strategy decisions → risk → orders → paper fills → ledger

Scenario a: 10 instruments, momentum (trade-flow imbalance), fraction sizing, at most 10 positions.
Scenario b: 1 instrument, sma_cross EMA(10)/EMA(50) long-only, a fixed 1-unit order per cross.

    .venv/bin/python bench/engine.py [--ticks 300000] [--runs 5]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

from omnid.clock import SimClock
from omnid.config import OmnidConfig
from omnid.engine import Engine, build_engine
from omnid.model import Instrument, Side, Trade
from omnid.ports import NullRecorder
from omnid.risk.config import RiskConfig, SizingConfig
from omnid.sim.synthetic import generate_ticks
from omnid.strategies.config import StrategyConfig
from omnid.venues.paper.config import PaperConfig

_SIDES = {1: Side.BUY, -1: Side.SELL, 0: Side.NONE}


def _trades(n: int, k: int) -> list[Trade]:
    data = generate_ticks(n, instruments=k, seed=7)
    ids = [f"{s}.SIM" for s in data.symbols]
    return [
        Trade(ids[c], p, q, _SIDES[s], t, t)
        for c, p, q, s, t in zip(
            data.symbol_codes.tolist(), data.price.tolist(), data.qty.tolist(), data.side.tolist(),
            data.ts.tolist(), strict=True,
        )
    ]


def _engine(trades: list[Trade], scenario: str, params: dict[str, Any] | None) -> tuple[Engine, SimClock]:
    ids = sorted({t.instrument_id for t in trades})
    insts = [Instrument(symbol=i.rpartition(".")[0], venue="SIM", tick_size=0.0, lot_size=0.001) for i in ids]
    if scenario == "a":
        risk = RiskConfig(sizing=SizingConfig(mode="fraction", fraction_pct=10.0), max_open_positions=10)
        sc = StrategyConfig(name="s", kind="momentum", instruments=ids, params={"no_book": "trade_flow"})
    else:
        risk = RiskConfig(sizing=SizingConfig(mode="all_in", commission_rate=0.0005))
        sc = StrategyConfig(name="s", kind="sma_cross", instruments=ids,
                            params={"kind": "ema", "fast": 10, "slow": 50, "qty": 1.0, "mode": "long_only"})
    if params is not None:
        sc = StrategyConfig(name=sc.name, kind=sc.kind, instruments=sc.instruments,
                            params={**sc.params, **params})
    clock = SimClock(trades[0].ts_event - 1)
    eng = build_engine(
        OmnidConfig(risk=risk), clock=clock, recorder=NullRecorder(), cash=1_000_000.0,
        paper=PaperConfig(venue="SIM", commission_rate=0.0005, limit_by_volume=False),
        strategies=[sc], instruments=insts, record_intents=False,
    )
    return eng, clock


Make = Callable[[], tuple[Callable[[Trade], object], SimClock]]


def _time(trades: list[Trade], make: Make, runs: int) -> float:
    out = []
    for _ in range(runs):
        handle, clock = make()
        advance = clock.advance_to
        gc.collect()
        t0 = time.process_time()
        for tr in trades:
            advance(tr.ts_event)
            handle(tr)
        out.append(time.process_time() - t0)
    return statistics.median(out) / len(trades) * 1e6


def breakdown(scenario: str, trades: list[Trade], runs: int) -> None:
    no_entry = {"rsi_entry": 100.0} if scenario == "a" else {"fast": 10, "slow": 10**9}

    def nothing() -> tuple[Callable[[Trade], object], SimClock]:
        return (lambda t: None), SimClock(0)

    def bare() -> tuple[Callable[[Trade], object], SimClock]:
        eng, clock = _engine(trades, scenario, None)
        eng.runners.clear()
        eng.start()
        return eng.on_trade, clock

    def features() -> tuple[Callable[[Trade], object], SimClock]:
        eng, clock = _engine(trades, scenario, None)
        eng.start()
        eng.pause()
        return eng.on_trade, clock

    def idle() -> tuple[Callable[[Trade], object], SimClock]:
        eng, clock = _engine(trades, scenario, no_entry)
        eng.start()
        return eng.on_trade, clock

    full_engine: list[Engine] = []

    def full() -> tuple[Callable[[Trade], object], SimClock]:
        eng, clock = _engine(trades, scenario, None)
        eng.start()
        full_engine[:] = [eng]
        return eng.on_trade, clock

    rows = [("replay loop", nothing), ("engine, no strategy", bare),
            ("+ features (strategy paused)", features), ("+ strategy, never orders", idle), ("full", full)]
    n_inst = len({t.instrument_id for t in trades})
    print(f"scenario {scenario}: {len(trades):,} ticks, {n_inst} instrument(s)")
    for label, make in rows:
        us = _time(trades, make, runs)
        print(f"  {label:32s} {us:6.3f} us/tick  {1e6 / us:>12,.0f} ticks/s (cpu)")
    eng = full_engine[0]
    pct = 100.0 * eng.orders / len(trades)
    print(f"  orders {eng.orders:,} ({pct:.2f} % of ticks), denials {eng.denials}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ticks", type=int, default=300_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    for scenario, k in (("a", 10), ("b", 1)):
        breakdown(scenario, _trades(args.ticks, k), args.runs)


if __name__ == "__main__":
    main()
