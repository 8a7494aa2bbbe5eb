"""NautilusTrader on this machine: the reference figures omnid's replay bench is compared with.

``/work/shared/DESIGN.md`` quotes NautilusTrader 1.221 figures measured on another machine. Wall
clock on a shared VM moves with the load, so this script measures NautilusTrader here, on the data
omnid's ``bench/replay.py`` scenario (b) replays, to be run alternately with that bench:

  do-nothing  a strategy subscribed to the trade ticks whose ``on_trade_tick`` does nothing;
  ema         EMA(10)/EMA(50) (NautilusTrader's ``ExponentialMovingAverage``, registered for trade
              ticks) checked on every trade tick, long only like omnid's ``sma_cross`` (kind=ema,
              fast=10, slow=50, qty=1, mode=long_only): a market buy of 1 on an up-cross when flat,
              a market sell of 1 (closing) on a down-cross when long; the first tick where both
              averages are ready fixes the side without trading.

Data: 1,000,000 trade ticks of one instrument from ``omnid.sim.synthetic.generate_ticks(n, seed=3)``
(scenario b's data). omnid is imported from this repository (its root goes on ``sys.path``): the
generator needs only numpy and pyarrow, which NautilusTrader's venv has too, and the same numpy
version gives the same bytes (checked: identical SHA-1 of ts/price/qty in both venvs).

Each run builds a fresh ``BacktestEngine`` (low-level API: one simulated venue ``SIM``, netting,
cash account with 1,000,000 USD, taker fee 0.0005 like the bench's commission, the ticks added
already in time order; building the engine and the ticks is not timed) and times its run: the
main loop plus ``end()`` (stopping the components, settling the venue, the post-run log), which is
what ``engine.run()`` does; ``end_s_median`` is the part spent in ``end()``. The engine's post-run
portfolio analysis is switched off (``run_analysis=False``): it is a report, not replay (omnid's
bench does not time its metrics either), and it grows a pandas Series one position at a time,
which is quadratic (~4 s for 1.5k positions here; scenario b has ~10.8k). Log level is ERROR so
no figure includes log formatting.

Orders: on scenario (b)'s 1M ticks NautilusTrader submits 21,627 orders to omnid's 21,625. The
two are NautilusTrader's EMA seeding (its first value is the first price; omnid seeds with the
SMA of the first ``period`` inputs), which moves two early crosses: a plain-Python replay of the
rule on the same prices gives 21,625 with SMA seeding and 21,627 with first-price seeding.
NautilusTrader fills a market order of 1 against an L1 book built from the last trade's size, so
an order often fills in several fill events (``fill_events``); every order still fills in full.

NautilusTrader is not an omnid dependency: it runs in its own venv.

    /root/.pyenv/versions/3.11.7/bin/python -m venv /tmp/ntvenv
    /tmp/ntvenv/bin/pip install nautilus_trader==1.221.0 numpy
    /tmp/ntvenv/bin/python bench/nautilus_reference.py [--ticks 1000000] [--runs 5] [--only do-nothing|ema]

Run it alternately with ``.venv/bin/python bench/replay.py --runs 5 --skip-e2e`` and compare medians
from the same session (omnid b / NT ema, omnid a / NT do-nothing).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
from nautilus_trader.backtest.config import BacktestEngineConfig
from nautilus_trader.backtest.engine import BacktestEngine
from nautilus_trader.config import LoggingConfig, StrategyConfig
from nautilus_trader.indicators import ExponentialMovingAverage
from nautilus_trader.model.currencies import USD
from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.enums import AccountType, CurrencyType, OmsType, OrderSide, OrderStatus
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.identifiers import InstrumentId, Symbol, Venue
from nautilus_trader.model.instruments import CurrencyPair
from nautilus_trader.model.objects import Currency, Money, Price, Quantity
from nautilus_trader.trading.strategy import Strategy

ROOT = Path(__file__).resolve().parent.parent
VENUE = Venue("SIM")


def _instrument(symbol: str) -> CurrencyPair:
    """``symbol``/USD with the synthetic data's grid: price tick 0.01, lot 0.001."""
    base = Currency(symbol, 3, 0, symbol, CurrencyType.CRYPTO)
    Currency.register(base, overwrite=True)
    return CurrencyPair(
        instrument_id=InstrumentId(Symbol(f"{symbol}/USD"), VENUE),
        raw_symbol=Symbol(f"{symbol}/USD"),
        base_currency=base,
        quote_currency=USD,
        price_precision=2,
        size_precision=3,
        price_increment=Price(0.01, 2),
        size_increment=Quantity(0.001, 3),
        ts_event=0,
        ts_init=0,
        maker_fee=Decimal("0.0005"),
        taker_fee=Decimal("0.0005"),
    )


def _ticks(n: int, instrument: CurrencyPair) -> list[TradeTick]:
    """Scenario (b)'s ticks as NautilusTrader trade ticks (aggressor: buy 1, sell 2, unknown 0)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from omnid.sim.synthetic import generate_ticks

    data = generate_ticks(n, seed=3)
    if len(data.symbols) != 1:
        raise SystemExit(f"expected one instrument, got {data.symbols}")
    ts = data.ts.astype(np.uint64)
    aggressor = np.select([data.side == 1, data.side == -1], [1, 2], 0).astype(np.uint8)
    return TradeTick.from_raw_arrays_to_list(
        instrument.id, 2, 3, data.price.astype(np.float64), data.qty.astype(np.float64), aggressor,
        [str(i) for i in range(1, n + 1)], ts, ts,
    )


class IdleConfig(StrategyConfig, frozen=True):
    instrument_id: InstrumentId


class Idle(Strategy):
    """Subscribes to the trade ticks and does nothing with them: the engine's own cost per tick."""

    def __init__(self, config: IdleConfig) -> None:
        super().__init__(config)
        self.instrument_id = config.instrument_id
        self.submitted = 0
        self.crosses = 0

    def on_start(self) -> None:
        self.subscribe_trade_ticks(self.instrument_id)

    def on_trade_tick(self, tick: TradeTick) -> None:
        pass


class EmaCrossConfig(StrategyConfig, frozen=True):
    instrument_id: InstrumentId
    fast: int = 10
    slow: int = 50
    qty: Decimal = Decimal(1)


class EmaCross(Strategy):
    """omnid's ``sma_cross`` (ema, long_only, fixed qty) written against NautilusTrader's API."""

    def __init__(self, config: EmaCrossConfig) -> None:
        super().__init__(config)
        self.instrument_id = config.instrument_id
        self.fast = ExponentialMovingAverage(config.fast)
        self.slow = ExponentialMovingAverage(config.slow)
        self.side = 0  # which side of the slow average the fast one is on; 0 = not yet known
        self.submitted = 0
        self.crosses = 0
        self.qty = Quantity(float(config.qty), 3)

    def on_start(self) -> None:
        self.register_indicator_for_trade_ticks(self.instrument_id, self.fast)
        self.register_indicator_for_trade_ticks(self.instrument_id, self.slow)
        self.subscribe_trade_ticks(self.instrument_id)

    def on_trade_tick(self, tick: TradeTick) -> None:
        # NautilusTrader updates registered indicators before calling on_trade_tick.
        if not self.slow.initialized:  # the fast one is ready earlier
            return
        f = self.fast.value
        s = self.slow.value
        if f > s:
            side = 1
        elif f < s:
            side = -1
        else:
            return
        if side == self.side:
            return
        was, self.side = self.side, side
        if was == 0:
            return
        self.crosses += 1
        if side > 0:
            if self.portfolio.is_flat(self.instrument_id):
                self._market(OrderSide.BUY)
        elif self.portfolio.is_net_long(self.instrument_id):
            self._market(OrderSide.SELL)

    def _market(self, side: OrderSide) -> None:
        order = self.order_factory.market(self.instrument_id, side, self.qty)
        self.submit_order(order)
        self.submitted += 1


Build = Callable[[InstrumentId], Strategy]


def _engine(instrument: CurrencyPair, ticks: list[TradeTick], strategy: Strategy) -> BacktestEngine:
    # No post-run portfolio analysis: it is a report, not replay (omnid's bench does not time its
    # metrics either), and its pandas enlargement per position is quadratic: ~4 s for 1.5k positions.
    config = BacktestEngineConfig(logging=LoggingConfig(log_level="ERROR"), run_analysis=False)
    engine = BacktestEngine(config)
    engine.add_venue(venue=VENUE, oms_type=OmsType.NETTING, account_type=AccountType.CASH,
                     starting_balances=[Money(1_000_000, USD)], base_currency=None)
    engine.add_instrument(instrument)
    engine.add_data(ticks, sort=False)  # generated in time order
    engine.add_strategy(strategy)
    return engine


def _one(instrument: CurrencyPair, ticks: list[TradeTick], build: Build) -> dict[str, Any]:
    """One backtest on a fresh engine: seconds of its run (loop and end), CPU seconds, counts.

    ``run(streaming=True)`` followed by ``end()`` is what ``run()`` does (the flag only changes
    how an account error propagates); splitting it shows the engine's end-of-run share.
    """
    strategy = build(instrument.id)
    engine = _engine(instrument, ticks, strategy)
    gc.collect()
    c0 = time.process_time()
    t0 = time.perf_counter()
    engine.run(streaming=True)
    t1 = time.perf_counter()
    engine.end()
    t2 = time.perf_counter()
    cpu = time.process_time() - c0
    orders = engine.cache.orders()
    out = {
        "run_s": t2 - t0,
        "loop_s": t1 - t0,
        "end_s": t2 - t1,
        "cpu_s": cpu,
        "iterations": engine.iteration,
        "crosses": getattr(strategy, "crosses", 0),
        "orders_submitted": getattr(strategy, "submitted", 0),
        "orders": engine.cache.orders_total_count(),
        "orders_filled": sum(1 for o in orders if o.status == OrderStatus.FILLED),
        "fill_events": sum(1 for o in orders for e in o.events if isinstance(e, OrderFilled)),
        "positions": engine.cache.positions_total_count() + len(engine.cache.position_snapshots()),
        "open_position_qty": float(engine.portfolio.net_position(instrument.id)),
    }
    engine.dispose()
    return out


def scenario(name: str, instrument: CurrencyPair, ticks: list[TradeTick], build: Build,
             runs: int) -> dict[str, object]:
    results = [_one(instrument, ticks, build) for _ in range(runs)]
    n = len(ticks)
    last = results[-1]
    med = statistics.median(r["run_s"] for r in results)
    out: dict[str, object] = {
        "scenario": name,
        "ticks": n,
        "ticks_per_s_median": round(n / med),
        "ticks_per_s_runs": [round(n / r["run_s"]) for r in results],
        # CPU time of this process: what the figure would be on an idle core (the machine is shared).
        "ticks_per_cpu_s_median": round(n / statistics.median(r["cpu_s"] for r in results)),
        "end_s_median": round(statistics.median(r["end_s"] for r in results), 3),
        **{k: v for k, v in last.items() if not k.endswith("_s")},
    }
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ticks", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--only", choices=["do-nothing", "ema"], default=None)
    args = ap.parse_args()
    import nautilus_trader

    instrument = _instrument("SYM00")
    ticks = _ticks(args.ticks, instrument)
    print(json.dumps({"nautilus_trader": nautilus_trader.__version__, "python": sys.version.split()[0]}))
    if args.only in (None, "do-nothing"):
        scenario("NT do-nothing strategy, 1 instrument", instrument, ticks,
                 lambda iid: Idle(IdleConfig(instrument_id=iid)), args.runs)
    if args.only in (None, "ema"):
        scenario("NT EMA(10)/EMA(50) cross, long only, qty 1", instrument, ticks,
                 lambda iid: EmaCross(EmaCrossConfig(instrument_id=iid)), args.runs)


if __name__ == "__main__":
    main()
