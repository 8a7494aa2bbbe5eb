"""Micro-benchmark of :meth:`Portfolio.apply_fill`: µs per fill over a scenario-a-like fill stream.

The stream mimics the backtest bench's scenario a (10 instruments, prices on a 0.01 tick, sizes on
a 0.001 lot worth ~50k, commission = notional * 0.0005 as the paper broker computes it): opens,
adds, partial closes, closes and reversals in about its proportions. Each run replays the whole
stream into a fresh portfolio with the module's float->decimal caches emptied first (in a backtest
the commission, and most sizes, are new numbers at every fill; ``--warm`` keeps them). The figure is
the median of the runs; this VM is shared, so for small differences count instructions instead
(valgrind) or alternate A/B runs in one process.

    .venv/bin/python bench/ledger.py [--fills 20000] [--runs 5] [--warm]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import omnid.portfolio
from omnid.clock import SimClock
from omnid.model import Fill, Side
from omnid.portfolio import Portfolio


def make_fills(n: int, seed: int = 7) -> list[Fill]:
    """``n`` fills over 10 instruments; each action is drawn against the instrument's position."""
    rng = random.Random(seed)
    ids = [f"S{i}.SIM" for i in range(10)]
    price = {iid: float(rng.randint(20, 200)) for iid in ids}
    pos = dict.fromkeys(ids, 0.0)
    out: list[Fill] = []
    for k in range(n):
        iid = ids[rng.randrange(10)]
        price[iid] = max(1.0, round(price[iid] * (1 + rng.gauss(0, 0.002)), 2))
        px = price[iid]
        size = round(50_000.0 / px, 3)
        held = pos[iid]
        roll = rng.random()
        if held == 0.0 or roll < 0.25:  # open or add
            side = Side.BUY if (held > 0 or (held == 0.0 and roll < 0.6)) else Side.SELL
            qty = size
        elif roll < 0.5:  # partial close
            side = Side.SELL if held > 0 else Side.BUY
            qty = round(abs(held) * rng.choice((0.25, 0.5, 0.3)), 3) or 0.001
        elif roll < 0.75:  # close
            side = Side.SELL if held > 0 else Side.BUY
            qty = abs(held)
        else:  # reverse
            side = Side.SELL if held > 0 else Side.BUY
            qty = round(abs(held) + size, 3)
        pos[iid] = round(held + side.sign * qty, 3)
        out.append(Fill(fill_id=f"f{k}", client_order_id=f"o{k}", instrument_id=iid, strategy_id="s",
                        side=side, qty=qty, price=px, commission=qty * px * 0.0005,
                        ts_event=k * 10**9))
    return out


def run(fills: list[Fill], warm: bool = False) -> float:
    """Seconds to book ``fills`` into a fresh portfolio."""
    if not warm:
        for cache in ("_SHORT", "_DEC_CACHE"):  # the current one, and the one before it (for A/B)
            getattr(omnid.portfolio, cache, {}).clear()
    pf = Portfolio(SimClock(0), initial_cash=1_000_000.0)
    apply = pf.apply_fill
    t0 = time.perf_counter()
    for f in fills:
        apply(f)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fills", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warm", action="store_true", help="keep the conversion caches between runs")
    args = ap.parse_args()
    fills = make_fills(args.fills)
    run(fills[:1000])  # warm up
    times = [run(fills, args.warm) / len(fills) * 1e6 for _ in range(args.runs)]
    print(f"apply_fill ({'warm' if args.warm else 'cold'} caches): {statistics.median(times):.2f} µs/fill "
          f"(median of {args.runs}; "
          f"runs {', '.join(f'{t:.2f}' for t in times)})")


if __name__ == "__main__":
    main()
