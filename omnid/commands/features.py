"""``omnid features``: run the feature engine over a bar or tick file and write every row's values.

The numbers are the ones a strategy sees live (the same engine, fed the same way), for research and
for training models offline. A bar file feeds its bars to indicators on the file's bar interval
(the smallest gap between rows); a tick file feeds every trade (``--source tick``, one output row per
trade) or builds bars of ``--source 1m`` etc. from the trades (one row per completed bar).
Instruments are named ``SYMBOL.FILE`` (so correlation reads ``corr:ETHUSDT.FILE:20``).

numpy, pyarrow and the feature engine are imported by the functions that use them, so that the
CLI's other commands and ``--help`` start without them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from omnid.errors import ConfigError, DataError

if TYPE_CHECKING:
    import numpy as np

    from omnid.calendar import TradingCalendar
    from omnid.datafiles import BarData, TickData
    from omnid.features.engine import FeatureEngine
    from omnid.features.indicators import Indicator
    from omnid.features.spec import IndicatorSpec
    from omnid.model import Bar

VENUE = "FILE"
#: Files with at least this many rows get a progress bar.
PROGRESS_FROM = 50_000


def calendars() -> dict[str, TradingCalendar]:
    """The session calendars ``--calendar`` names."""
    from omnid.calendar import CRYPTO_24_7, NSE_EQUITY, US_EQUITY

    return {"crypto": CRYPTO_24_7, "nse": NSE_EQUITY, "us": US_EQUITY}


def register(app: typer.Typer) -> None:
    @app.command("features")
    def features(
        data: Path = typer.Option(..., "--data", help="A bar or trade-tick file (.csv or .parquet)."),
        indicators: str = typer.Option(
            ..., "--indicators", "-i",
            help="Comma list, e.g. sma:10,ema:20,rsi:14,atr:14,macd:12:26:9,bbands:20:2,vwap.",
        ),
        out: Path = typer.Option(..., "--out", "-o", help="Output file: .csv or .parquet."),
        source: str = typer.Option(
            "tick", "--source", help="Tick files only: 'tick' (every trade) or a bar interval (1s..1d)."
        ),
        calendar: str = typer.Option(
            "crypto", "--calendar", help="Session calendar for session VWAP: crypto, nse or us."
        ),
    ) -> None:
        """Compute indicators over a bar or tick file; values not yet warmed up are left empty."""
        from omnid.datafiles import detect_kind, load_bars, load_ticks, write_table
        from omnid.features.engine import parse_source
        from omnid.features.spec import parse_spec

        known = calendars()
        try:
            specs = parse_spec(indicators)
            for s in specs:
                if s.kind == "obi":
                    raise ConfigError("indicators", [(s.item, "obi needs order-book data, which bar and "
                                                      "tick files do not have")])
            if calendar not in known:
                raise ConfigError("--calendar", [("", f"unknown calendar {calendar!r} "
                                                      f"(known: {', '.join(known)})")])
            src = parse_source(source)
            kind = detect_kind(data)
            if kind == "bars":
                if source != "tick":
                    raise ConfigError("--source", [("", "a bar file is read at its own interval; "
                                                        "--source is for tick files")])
                columns = run_bars(load_bars(data), specs, known[calendar])
            else:
                columns = run_ticks(load_ticks(data), specs, src, known[calendar])
            write_table(out, columns)
        except ConfigError as exc:
            typer.echo(f"omnid features: bad {exc.source}:", err=True)
            for key, msg in exc.problems:
                typer.echo(f"  {key}: {msg}" if key else f"  {msg}", err=True)
            raise typer.Exit(2) from None
        except DataError as exc:
            typer.echo(f"omnid features: {exc}", err=True)
            raise typer.Exit(2) from None
        rows = len(next(iter(columns.values())))
        typer.echo(f"{out}: {rows} rows, {len(columns) - 3} feature columns", err=True)


class _Reader:
    """Collects one instrument's output values, row by row, into preallocated arrays."""

    def __init__(self, engine: FeatureEngine, iid: str, specs: list[IndicatorSpec], source: int) -> None:
        inds = [engine.ensure(iid, s, source) for s in specs]
        self.outputs: list[tuple[str, Indicator, str]] = [
            (col, ind, attr) for ind in inds for col, attr in ind.columns()
        ]

    def read(self, out: dict[str, Any], row: int) -> None:
        for col, ind, attr in self.outputs:
            if ind.ready:
                out[col][row] = getattr(ind, attr)


def _engine(symbols: list[str], calendar: TradingCalendar) -> tuple[FeatureEngine, list[str]]:
    from omnid.features.engine import FeatureEngine
    from omnid.model import Instrument

    ids = [f"{s}.{VENUE}" for s in symbols]
    return FeatureEngine([Instrument(s, VENUE, calendar=calendar) for s in symbols]), ids


def _columns(specs: list[IndicatorSpec], n: int, first: str) -> dict[str, Any]:
    import numpy as np

    cols: dict[str, Any] = {"ts": np.zeros(n, dtype=np.int64), "symbol": [""] * n,
                            first: np.zeros(n, dtype=np.float64)}
    for s in specs:
        probe = s.build()
        for col, _ in probe.columns():
            cols[col] = np.full(n, np.nan)
    return cols


def _progress(total: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, file=sys.stderr, unit="row", unit_scale=True, disable=total < PROGRESS_FROM,
                mininterval=0.5)


def bar_interval(ts: np.ndarray) -> int:
    """The smallest positive gap between rows (1 day for a single row)."""
    import numpy as np

    d = np.diff(ts)
    d = d[d > 0]
    return int(d.min()) if len(d) else 86_400_000_000_000


def run_bars(data: BarData, specs: list[IndicatorSpec], calendar: TradingCalendar) -> dict[str, Any]:
    """Feed every bar to the engine; one output row per input row, in time order."""
    from omnid.model import Bar

    data = data.by_time() if len(data.symbols) > 1 else data
    engine, ids = _engine(data.symbols, calendar)
    codes = data.symbol_codes
    intervals = [bar_interval(data.ts[codes == k]) for k in range(len(ids))]
    readers = [_Reader(engine, iid, specs, iv) for iid, iv in zip(ids, intervals, strict=True)]
    n = len(data)
    cols = _columns(specs, n, "close")
    cols["ts"][:] = data.ts
    cols["close"][:] = data.close
    sym = cols["symbol"]
    ts, o, h, lo, c, v = (a.tolist() for a in (data.ts, data.open, data.high, data.low, data.close,
                                                data.volume))
    code_list = codes.tolist()
    group = 0  # rows with one timestamp are read after all of them are in (correlation pairs them)
    with _progress(n) as bar:
        for i in range(n):
            k = code_list[i]
            iv = intervals[k]
            engine.on_bar(Bar(ids[k], iv, ts[i], o[i], h[i], lo[i], c[i], v[i], ts[i] + iv, ts[i] + iv))
            if i + 1 == n or ts[i + 1] != ts[i]:
                for j in range(group, i + 1):
                    readers[code_list[j]].read(cols, j)
                    sym[j] = data.symbols[code_list[j]]
                group = i + 1
            if i % 10_000 == 9_999:
                bar.update(10_000)
        bar.update(n % 10_000)
    return cols


def run_ticks(data: TickData, specs: list[IndicatorSpec], source: int,
              calendar: TradingCalendar) -> dict[str, Any]:
    """Feed every trade; one row per trade (tick source) or per completed bar (bar source)."""
    import numpy as np

    from omnid.features.engine import TICK
    from omnid.model import Side, Trade

    data = data.by_time() if len(data.symbols) > 1 else data
    engine, ids = _engine(data.symbols, calendar)
    readers = [_Reader(engine, iid, specs, source) for iid in ids]
    index = {iid: k for k, iid in enumerate(ids)}
    n = len(data)
    sides = (Side.NONE, Side.BUY, Side.SELL)  # indexed by the file's 0 / 1 / -1
    ts, price, qty, side, code_list = (a.tolist() for a in (data.ts, data.price, data.qty, data.side,
                                                              data.symbol_codes))
    if source == TICK:
        cols = _columns(specs, n, "price")
        cols["ts"][:] = data.ts
        cols["price"][:] = data.price
        sym = cols["symbol"]
        with _progress(n) as bar:
            for i in range(n):
                k = code_list[i]
                engine.on_trade(Trade(ids[k], price[i], qty[i], sides[side[i]], ts[i], ts[i]))
                readers[k].read(cols, i)
                sym[i] = data.symbols[k]
                if i % 10_000 == 9_999:
                    bar.update(10_000)
            bar.update(n % 10_000)
        return cols
    rows: list[tuple[int, str, float]] = []
    values: dict[str, list[float]] = {col: [] for col, _, _ in readers[0].outputs}
    row: dict[str, Any] = {col: [0.0] for col in values}

    def emit(done: list[Bar]) -> None:
        for b in done:
            k = index[b.instrument_id]
            rows.append((b.ts_open, data.symbols[k], b.close))
            for col in values:
                row[col][0] = np.nan
            readers[k].read(row, 0)
            for col, vals in values.items():
                vals.append(row[col][0])

    with _progress(n) as bar:
        for i in range(n):
            k = code_list[i]
            if engine.on_trade(Trade(ids[k], price[i], qty[i], sides[side[i]], ts[i], ts[i])) is not None:
                emit(engine.completed)
            if i % 10_000 == 9_999:
                bar.update(10_000)
        bar.update(n % 10_000)
    if n:
        emit(engine.on_time(int(data.ts.max()) + source))
    cols = {
        "ts": np.array([r[0] for r in rows], dtype=np.int64),
        "symbol": [r[1] for r in rows],
        "close": np.array([r[2] for r in rows], dtype=np.float64),
    }
    for col, vals in values.items():
        cols[col] = np.array(vals, dtype=np.float64)
    return cols
