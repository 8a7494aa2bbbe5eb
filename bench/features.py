"""Feature engine throughput: ns per update for each indicator, and trades per second for the full
indicator set on one instrument through ``FeatureEngine.on_trade``.

    .venv/bin/python bench/features.py [--trades 200000] [--runs 5] [--load-rows 1000000]

Prints medians of ``--runs`` runs. Inputs are prebuilt (plain float lists, Trade structs) so the
figures are the features' own cost, not data generation. Also times ``omnid.datafiles.load_ticks``
on a generated tick CSV (what ``omnid features`` and the backtester read).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from omnid.calendar import CRYPTO_24_7
from omnid.datafiles import load_ticks
from omnid.features import (
    ATR,
    EMA,
    MACD,
    RSI,
    SMA,
    BBands,
    FeatureEngine,
    Momentum,
    RealisedVol,
    RollingVWAP,
    SessionVWAP,
)
from omnid.model import Instrument, Side, Trade

FULL_SET = "sma:20,ema:20,rsi:14,atr:14,macd:12:26:9,bbands:20:2,vwap,vwap:100,rv:30,mom:10"
T0 = 1_767_225_600 * 1_000_000_000


def median_seconds(fn: Callable[[], None], runs: int) -> float:
    times = []
    for _ in range(runs):
        gc.collect()
        gc.disable()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
        gc.enable()
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trades", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--load-rows", type=int, default=1_000_000)
    args = ap.parse_args()
    n, runs = args.trades, args.runs
    rng = np.random.default_rng(0)
    prices = (100 * np.exp(np.cumsum(rng.normal(0, 1e-4, n)))).tolist()
    sizes = rng.exponential(1.0, n).tolist()
    stamps = (T0 + np.cumsum(rng.integers(1, 200_000_000, n))).tolist()

    print(f"per-indicator update cost, {n:,} updates, median of {runs} runs")
    base = median_seconds(lambda: [None for _ in prices], runs)
    makers: dict[str, Callable[[], Callable[[], None]]] = {}

    def close_only(ind_factory: Callable[[], object]) -> Callable[[], Callable[[], None]]:
        def make() -> Callable[[], None]:
            upd = ind_factory().update  # type: ignore[attr-defined]
            return lambda: [upd(p) for p in prices] and None
        return make

    makers["sma:20"] = close_only(lambda: SMA(20))
    makers["ema:20"] = close_only(lambda: EMA(20))
    makers["rsi:14"] = close_only(lambda: RSI(14))
    makers["macd:12:26:9"] = close_only(lambda: MACD(12, 26, 9))
    makers["bbands:20:2"] = close_only(lambda: BBands(20, 2.0))
    makers["rv:30"] = close_only(lambda: RealisedVol(30))

    def atr() -> Callable[[], None]:
        upd = ATR(14).update
        return lambda: [upd(p, p, p) for p in prices] and None

    def vwap_n() -> Callable[[], None]:
        upd = RollingVWAP(100).update
        return lambda: [upd(p, q) for p, q in zip(prices, sizes)] and None  # noqa: B905

    def mom() -> Callable[[], None]:
        upd = Momentum(10).update
        return lambda: [upd(p, q) for p, q in zip(prices, sizes)] and None  # noqa: B905

    def vwap() -> Callable[[], None]:
        upd = SessionVWAP(CRYPTO_24_7).update
        return lambda: [upd(t, p, q) for t, p, q in zip(stamps, prices, sizes)] and None  # noqa: B905

    makers.update({"atr:14": atr, "vwap:100": vwap_n, "mom:10": mom, "vwap (session)": vwap})
    total_ns = 0.0
    for name, make in makers.items():
        ns = (median_seconds(make(), runs) - base) / n * 1e9
        total_ns += ns
        print(f"  {name:16s} {ns:7.1f} ns/update")
    print(f"  {'sum of the above':16s} {total_ns:7.1f} ns (loop overhead {base / n * 1e9:.1f} ns taken off)")

    ins = Instrument("BTCUSDT", "SIM")
    trades = [Trade(ins.id, p, q, Side.BUY, t, t) for p, q, t in zip(prices, sizes, stamps)]  # noqa: B905

    def engine_run(bar_source: str | None) -> Callable[[], None]:
        eng = FeatureEngine([ins])
        eng.ensure_all(ins.id, FULL_SET, "tick")
        if bar_source:
            eng.ensure_all(ins.id, FULL_SET, bar_source)
        on_trade = eng.on_trade
        return lambda: [on_trade(t) for t in trades] and None

    print(f"\nFeatureEngine.on_trade, full set ({FULL_SET}), one instrument")
    for label, src in (("tick source", None), ("tick + 1m bars built", "1m")):
        secs = median_seconds(engine_run(src), runs)
        print(f"  {label:22s} {n / secs:12,.0f} trades/s  {secs / n * 1e9:8.0f} ns/trade")

    if args.load_rows:
        bench_load(args.load_rows, runs)


def bench_load(rows: int, runs: int) -> None:
    """Median time to load a tick CSV of ``rows`` rows (ts ns, symbol, price, qty, side)."""
    rng = np.random.default_rng(1)
    ts = T0 + np.cumsum(rng.integers(0, 10_000_000, rows))
    price = np.round(100 * np.exp(np.cumsum(rng.normal(0, 1e-4, rows))), 4)
    qty = np.round(rng.exponential(1.0, rows), 6)
    side = np.where(rng.random(rows) < 0.5, "buy", "sell")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ticks.csv"
        with path.open("w") as fh:
            fh.write("ts,symbol,price,qty,side\n")
            fh.writelines(f"{a},BTCUSDT,{b},{c},{d}\n" for a, b, c, d in
                          zip(ts.tolist(), price.tolist(), qty.tolist(), side.tolist()))  # noqa: B905
        mb = path.stat().st_size / 1e6
        secs = median_seconds(lambda: load_ticks(path) and None, runs)
    rate = rows / secs / 1e6
    print(f"\nload_ticks, {rows:,}-row tick CSV ({mb:.0f} MB): {secs:.3f} s ({rate:.1f}M rows/s)")


if __name__ == "__main__":
    main()
