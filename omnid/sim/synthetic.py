"""Seeded, vectorised synthetic market data: trade ticks and bars for tests and benchmarks.

Prices follow geometric Brownian motion with Poisson jumps (Merton), evaluated at each tick's own
time step so volatility scales with elapsed time. Tick times follow an intraday U-shaped intensity
(busier near the session's open and close, as on real exchanges), sizes are log-normal and rounded
to the lot, prices are rounded to the tick, and the aggressor side follows the price move (ties are
a coin flip). Everything is numpy over whole arrays; the same seed gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from omnid.datafiles import BarData, TickData, write_table
from omnid.errors import DataError

NS_PER_SECOND = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_SECOND
_YEAR_NS = 365.25 * NS_PER_DAY
#: 2026-01-05 00:00 UTC, a Monday: the default start of generated data.
DEFAULT_START_NS = 1_767_571_200 * NS_PER_SECOND


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """One synthetic instrument: start price, drift and volatility (annualised), jumps, tick, lot."""

    symbol: str
    price: float = 100.0
    drift: float = 0.05
    volatility: float = 0.6
    jumps_per_year: float = 20.0
    jump_sigma: float = 0.02
    tick_size: float = 0.01
    lot_size: float = 0.001
    mean_qty: float = 0.5


def default_specs(n: int) -> list[MarketSpec]:
    """``n`` instruments with different prices and volatilities (``SYM00``, ``SYM01``, ...)."""
    return [
        MarketSpec(
            symbol=f"SYM{i:02d}",
            price=20.0 * (1 + i) + 5.0 * (i % 3),
            volatility=0.3 + 0.05 * (i % 7),
            drift=0.02 * ((i % 5) - 2),
        )
        for i in range(n)
    ]


def _session_times(
    rng: np.random.Generator, n: int, start_ns: int, days: int, session_ns: int
) -> npt.NDArray[np.int64]:
    """``n`` sorted tick times over ``days`` sessions with a U-shaped intraday intensity.

    A Beta(0.6, 0.6) draw puts more mass near both ends of the session, like the opening and
    closing auctions' surrounding activity.
    """
    day = rng.integers(0, days, size=n, dtype=np.int64)
    within = (rng.beta(0.6, 0.6, size=n) * (session_ns - 1)).astype(np.int64)
    ts = start_ns + day * NS_PER_DAY + within
    ts.sort()
    return ts


def _gbm_path(
    rng: np.random.Generator, spec: MarketSpec, ts: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """Prices at ``ts`` from GBM with log-normal jumps, started at ``spec.price``."""
    dt = np.diff(ts, prepend=ts[:1]).astype(np.float64) / _YEAR_NS
    sigma = spec.volatility
    steps = (spec.drift - 0.5 * sigma * sigma) * dt + sigma * np.sqrt(dt) * rng.standard_normal(ts.size)
    jumps = rng.poisson(spec.jumps_per_year * dt)
    has_jump = jumps > 0
    steps[has_jump] += rng.normal(0.0, spec.jump_sigma, size=int(has_jump.sum())) * np.sqrt(
        jumps[has_jump]
    )
    return np.asarray(spec.price * np.exp(np.cumsum(steps)), dtype=np.float64)


def _round_to(values: npt.NDArray[np.float64], step: float) -> npt.NDArray[np.float64]:
    places = max(0, -int(np.floor(np.log10(step)))) + 2
    return np.round(np.round(values / step) * step, places)


def generate_ticks(
    n: int,
    *,
    specs: Sequence[MarketSpec] | None = None,
    instruments: int = 1,
    seed: int = 7,
    start_ns: int = DEFAULT_START_NS,
    days: int = 5,
    session_hours: float = 24.0,
) -> TickData:
    """``n`` trade ticks over ``instruments`` (or ``specs``), merged in time order.

    Ticks are split across instruments in proportion 1 : 1/2 : 1/3 ... (a few busy names and a
    tail), at least one each. Deterministic for a given seed and arguments.
    """
    if n <= 0:
        raise DataError("generate_ticks: n must be positive", n=n)
    specs = list(specs) if specs is not None else default_specs(instruments)
    if not specs:
        raise DataError("generate_ticks: at least one instrument is needed")
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, len(specs) + 1)
    counts = np.maximum(np.floor(weights / weights.sum() * n).astype(np.int64), 1)
    counts[0] += n - int(counts.sum())
    if counts[0] < 1:
        raise DataError("generate_ticks: n is smaller than the number of instruments", n=n)
    session_ns = int(session_hours * 3600 * NS_PER_SECOND)
    parts_ts, parts_px, parts_qty, parts_side, parts_code = [], [], [], [], []
    for code, (spec, count) in enumerate(zip(specs, counts, strict=True)):
        ts = _session_times(rng, int(count), start_ns, days, session_ns)
        px = _round_to(_gbm_path(rng, spec, ts), spec.tick_size)
        px = np.maximum(px, spec.tick_size)
        qty = _round_to(rng.lognormal(np.log(spec.mean_qty), 1.0, size=ts.size), spec.lot_size)
        qty = np.maximum(qty, spec.lot_size)
        move = np.sign(np.diff(px, prepend=px[:1]))
        coin = rng.integers(0, 2, size=ts.size) * 2 - 1
        side = np.where(move != 0, move, coin).astype(np.int8)
        parts_ts.append(ts)
        parts_px.append(px)
        parts_qty.append(qty)
        parts_side.append(side)
        parts_code.append(np.full(ts.size, code, dtype=np.int32))
    ts_all = np.concatenate(parts_ts)
    order = np.argsort(ts_all, kind="stable")
    return TickData(
        path="<synthetic>",
        ts=np.ascontiguousarray(ts_all[order]),
        price=np.ascontiguousarray(np.concatenate(parts_px)[order]),
        qty=np.ascontiguousarray(np.concatenate(parts_qty)[order]),
        side=np.ascontiguousarray(np.concatenate(parts_side)[order]),
        symbols=[s.symbol for s in specs],
        symbol_codes=np.ascontiguousarray(np.concatenate(parts_code)[order]),
    )


def generate_bars(
    n: int,
    *,
    spec: MarketSpec | None = None,
    seed: int = 7,
    start_ns: int = DEFAULT_START_NS,
    interval_ns: int = NS_PER_DAY,
    weekdays_only: bool = True,
    ticks_per_bar: int = 16,
) -> BarData:
    """``n`` OHLCV bars of one instrument, built from a GBM-with-jumps path sampled within each bar.

    Daily bars skip weekends when ``weekdays_only`` (an equity-like calendar). The open of each bar
    gaps from the previous close by the overnight move, so next-open fills differ from closes.
    """
    if n <= 0:
        raise DataError("generate_bars: n must be positive", n=n)
    spec = spec or MarketSpec(symbol="SYN", price=100.0, volatility=0.3, lot_size=1.0)
    rng = np.random.default_rng(seed)
    if weekdays_only and interval_ns == NS_PER_DAY:
        days = np.arange(n * 2, dtype=np.int64)
        day_ns = start_ns + days * NS_PER_DAY
        weekday = ((day_ns // NS_PER_DAY) + 3) % 7
        ts_open = day_ns[weekday < 5][:n]
    else:
        ts_open = start_ns + np.arange(n, dtype=np.int64) * interval_ns
    k = ticks_per_bar
    fine = ts_open[:, None] + (np.arange(k, dtype=np.int64) * (interval_ns // k))[None, :]
    path = _gbm_path(rng, spec, fine.reshape(-1)).reshape(n, k)
    path = _round_to(path, spec.tick_size)
    volume = np.round(rng.lognormal(np.log(1e5), 0.5, size=n))
    return BarData(
        path="<synthetic>",
        ts=np.ascontiguousarray(ts_open),
        open=np.ascontiguousarray(path[:, 0]),
        high=np.ascontiguousarray(path.max(axis=1)),
        low=np.ascontiguousarray(path.min(axis=1)),
        close=np.ascontiguousarray(path[:, -1]),
        volume=volume,
        symbols=[spec.symbol],
        symbol_codes=np.zeros(n, dtype=np.int32),
    )


def write_ticks(path: str | Path, data: TickData, *, with_symbol: bool = True) -> None:
    """Write ticks as ``ts,symbol,price,qty,side`` (CSV or Parquet by extension)."""
    names = np.array(data.symbols, dtype=object)
    sides = np.array(["sell", "", "buy"], dtype=object)[data.side.astype(np.int64) + 1]
    cols: dict[str, npt.NDArray[np.generic]] = {"ts": data.ts}
    if with_symbol:
        cols["symbol"] = names[data.symbol_codes]
    cols |= {"price": data.price, "qty": data.qty, "side": sides}
    write_table(path, cols)


def write_bars(path: str | Path, data: BarData) -> None:
    """Write bars as ``Date,Open,High,Low,Close,Volume`` (CSV or Parquet by extension)."""
    write_table(
        path,
        {
            "ts": data.ts,
            "Open": data.open,
            "High": data.high,
            "Low": data.low,
            "Close": data.close,
            "Volume": data.volume,
        },
    )
