"""Replay speed: ticks per second through the daemon's own core, and peak memory.

Scenarios, each on 1,000,000 synthetic trade ticks (omnid.sim.synthetic, seeded):

  (a) 10 instruments through the feature engine, the ``momentum`` strategy (VWAP, RSI, trade-flow
      imbalance), the risk gate (10 % of equity per position, at most 10 positions) and the paper
      broker;
  (b) one instrument, ``sma_cross`` with EMA(10)/EMA(50) evaluated on every tick, a fixed-size
      market order on every cross, every order through risk, paper fill and the ledger;
  (e2e) ``omnid backtest`` as a subprocess on a 1M-row tick CSV, file loading included.

Ticks/second is the median of ``--runs`` runs (replay only for a/b: the data is generated once and
the core is rebuilt for each run). Peak memory is tracemalloc's peak over one extra run (Python
allocations during the replay) and the process's max RSS. ``--profile`` prints cProfile's top
functions for scenarios a and b.

    .venv/bin/python bench/replay.py [--ticks 1000000] [--runs 5] [--profile] [--skip-e2e]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from omnid.datafiles import TickData
from omnid.risk.config import RiskConfig, SizingConfig
from omnid.sim.book import TradeBook
from omnid.sim.core import BacktestCore
from omnid.sim.replay import replay_ticks
from omnid.sim.synthetic import generate_ticks, write_ticks

ROOT = Path(__file__).resolve().parent.parent


def _core_a(data: TickData, ids: list[str], book: TradeBook) -> BacktestCore:
    risk = RiskConfig(sizing=SizingConfig(mode="fraction", fraction_pct=10.0), max_open_positions=10)
    return BacktestCore(ids, strategy="momentum", params={"no_book": "trade_flow"}, cash=1_000_000.0,
                        commission=0.0005, start_ns=int(data.ts[0]) - 1, on_fill=book.on_fill,
                        lot_size=0.001, risk=risk)


def _core_b(data: TickData, ids: list[str], book: TradeBook) -> BacktestCore:
    return BacktestCore(ids, strategy="sma_cross",
                        params={"kind": "ema", "fast": 10, "slow": 50, "qty": 1.0, "mode": "long_only"},
                        cash=1_000_000.0, commission=0.0005, start_ns=int(data.ts[0]) - 1,
                        on_fill=book.on_fill)


Build = Callable[[TickData, list[str], TradeBook], BacktestCore]


def _one(data: TickData, build: Build) -> tuple[float, float, BacktestCore, TradeBook]:
    """One replay: (wall seconds, CPU seconds of this process, the core, the book)."""
    ids = [f"{s}.SIM" for s in data.symbols]
    book = TradeBook(1_000_000.0)
    core = build(data, ids, book)
    core.start()
    gc.collect()
    c0 = time.process_time()
    t0 = time.perf_counter()
    replay_ticks(data, ids, core.clock, core.on_trade, book)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    core.stop()
    return elapsed, cpu, core, book


def scenario(name: str, data: TickData, build: Build, runs: int, profile: bool) -> dict[str, object]:
    times, cpus = [], []
    core: BacktestCore | None = None
    book: TradeBook | None = None
    for _ in range(runs):
        elapsed, cpu, core, book = _one(data, build)
        times.append(elapsed)
        cpus.append(cpu)
    assert core is not None and book is not None
    tracemalloc.start()
    _one(data, build)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    n = len(data)
    med = statistics.median(times)
    eng = core.engine
    out: dict[str, object] = {
        "scenario": name,
        "ticks": n,
        "ticks_per_s_median": round(n / med),
        "ticks_per_s_runs": [round(n / t) for t in times],
        # CPU time of this process: what the figure would be on an idle core (the machine is shared).
        "ticks_per_cpu_s_median": round(n / statistics.median(cpus)),
        "orders": eng.orders,
        "orders_pct_of_ticks": round(100.0 * eng.orders / n, 2),
        "fills": len(book.trips),
        "denials": eng.denials,
        "tracemalloc_peak_mb": round(peak / 2**20, 1),
    }
    print(json.dumps(out))
    if profile:
        prof = cProfile.Profile()
        ids = [f"{s}.SIM" for s in data.symbols]
        book2 = TradeBook(1_000_000.0)
        core2 = build(data, ids, book2)
        core2.start()
        prof.enable()
        replay_ticks(data, ids, core2.clock, core2.on_trade, book2)
        prof.disable()
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(22)
        print(f"--- cProfile, scenario {name} (sorted by own time) ---")
        print("\n".join(s.getvalue().splitlines()[6:]))
    return out


def end_to_end(n: int, runs: int, suffix: str = ".csv") -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"ticks{suffix}"
        write_ticks(path, generate_ticks(n, instruments=1, seed=3), with_symbol=False)
        cmd = [sys.executable, "-m", "omnid.cli", "backtest", "--data", str(path), "--strategy", "sma_cross",
               "--set", "kind=ema", "--set", "fast=10", "--set", "slow=50", "--set", "qty=1",
               "--commission", "0.0005", "--json"]
        times, cpus = [], []
        for _ in range(runs):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            r = subprocess.run(cmd, cwd=ROOT, capture_output=True, check=False)
            times.append(time.perf_counter() - t0)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
            if r.returncode != 0:
                raise SystemExit(f"omnid backtest failed: {r.stderr.decode()}")
        doc = json.loads(r.stdout)
    med = statistics.median(times)
    out: dict[str, object] = {
        "scenario": f"e2e omnid backtest ({suffix[1:]} load + replay + report, new process)",
        "ticks": n,
        "ticks_per_s_median": round(n / med),
        "seconds_median": round(med, 2),
        "seconds_runs": [round(t, 2) for t in times],
        "ticks_per_cpu_s_median": round(n / statistics.median(cpus)),
        "child_max_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "trades": doc["metrics"]["trades"],
    }
    print(json.dumps(out))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ticks", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--skip-e2e", action="store_true")
    ap.add_argument("--only", choices=["a", "b", "e2e"], default=None)
    args = ap.parse_args()
    if args.only in (None, "a"):
        scenario("a: 10 instruments, momentum", generate_ticks(args.ticks, instruments=10, seed=1),
                 _core_a, args.runs, args.profile)
    if args.only in (None, "b"):
        scenario("b: 1 instrument, EMA(10)/EMA(50) cross, fixed size", generate_ticks(args.ticks, seed=3),
                 _core_b, args.runs, args.profile)
    if args.only in (None, "e2e") and not args.skip_e2e:
        end_to_end(args.ticks, max(1, min(args.runs, 3)))
        end_to_end(args.ticks, max(1, min(args.runs, 3)), ".parquet")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"max_rss_mb_bench_process": round(rss / 1024, 1)}))


if __name__ == "__main__":
    main()
