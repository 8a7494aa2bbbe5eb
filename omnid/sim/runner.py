"""The backtest runner: a data file and a strategy in, metrics, trades and an equity curve out.

It builds the same core the daemon runs (:mod:`omnid.sim.core`: features, the strategy, the risk
gate with "all in" sizing, the order manager, the paper broker and the portfolio), replays the file
through it in a plain loop on a :class:`~omnid.clock.SimClock` (no event loop), and reports from a
:class:`~omnid.sim.book.TradeBook` fed by the same fills the portfolio books.

Semantics (issue 3): a decision on a bar's close fills at the next bar's open; commission is a
fraction of notional charged on entry and exit; the default size is "all in", sized at the fill
(the most whole units the free funds cover at the fill price with commission); a position still open
at the end is marked to the last price (``close_at_end`` closes it at that price and pays
commission); ``trades`` counts closed round trips. Same input, same output: nothing here reads the
wall clock or a random source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Protocol

import msgspec
import numpy as np

from omnid.datafiles import BarData, TickData, detect_kind, load_bars, load_ticks
from omnid.errors import ConfigError, DataError
from omnid.sim.book import TradeBook
from omnid.sim.core import BacktestCore
from omnid.sim.metrics import Metrics, RoundTrip, compute_metrics, metric_warnings
from omnid.sim.replay import bar_interval_ns, replay_bars, replay_ticks

#: The venue backtest instruments are listed at.
BACKTEST_VENUE = "SIM"


class Progress(Protocol):
    """A progress display: told the total first, then how many events are done."""

    def start(self, total: int) -> None: ...

    def __call__(self, done: int) -> object: ...


class BacktestSpec(msgspec.Struct, kw_only=True, frozen=True):
    """What to run: a file, a strategy kind with parameters, the account and the cost model."""

    data: str
    strategy: str
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    cash: float = 10_000.0
    commission: float = 0.0
    close_at_end: bool = False
    #: Ticks: equity is sampled at the last tick of every bucket of this length.
    sample_seconds: float = 60.0


class EquityPoint(msgspec.Struct, array_like=False):
    ts: int
    equity: float


class BacktestResult(msgspec.Struct, kw_only=True):
    """Everything a backtest reports; :meth:`to_json` is the ``--json`` document."""

    data: str
    kind: Literal["bars", "ticks"]
    strategy: str
    events: int
    metrics: Metrics
    trades: list[RoundTrip]
    equity: list[EquityPoint]
    #: Set when the strategy raised and was disabled mid-run: the results stop at that point.
    strategy_error: str | None = None
    #: Figures computed as backtesting.py does but meaning little for this run (see metric_warnings).
    warnings: list[str] = msgspec.field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """``{"metrics": {...}, "trades": [...], "equity": [...]}`` plus what was run."""
        doc: dict[str, Any] = msgspec.to_builtins(self)
        return {
            "data": doc["data"],
            "kind": doc["kind"],
            "strategy": doc["strategy"],
            "events": doc["events"],
            "metrics": doc["metrics"],
            "trades": doc["trades"],
            "equity": doc["equity"],
            "strategy_error": doc["strategy_error"],
            "warnings": doc["warnings"],
        }


def _check_spec(spec: BacktestSpec) -> None:
    """Account and cost settings that make no sense are usage errors, named by their option."""
    problems = []
    if not (spec.cash > 0 and spec.cash < float("inf")):
        problems.append(("--cash", f"must be a positive number, got {spec.cash}"))
    if not 0 <= spec.commission < 0.1:
        problems.append(
            ("--commission", f"must be a fraction of notional in [0, 0.1), got {spec.commission}")
        )
    if not spec.sample_seconds > 0:
        problems.append(("sample_seconds", f"must be > 0, got {spec.sample_seconds}"))
    if problems:
        raise ConfigError("backtest", problems)


def load_data(path: str | Path) -> BarData | TickData:
    """Load a bar or tick file (told apart by its columns); errors name file, column and row."""
    kind = detect_kind(path)
    data: BarData | TickData = load_bars(path) if kind == "bars" else load_ticks(path)
    if len(data) == 0:
        raise DataError(f"{path}: no data rows", path=str(path))
    return data


def run_backtest(
    spec: BacktestSpec, *, data: BarData | TickData | None = None, progress: Progress | None = None
) -> BacktestResult:
    """Run ``spec`` (on ``data`` if given, else the file it names) and report.

    Raises :class:`DataError` for a bad file and :class:`ConfigError` for a bad strategy, parameter
    or setting, before anything runs. A strategy that raises during the run is disabled by the
    engine; the result then carries ``strategy_error``.
    """
    _check_spec(spec)
    data = data if data is not None else load_data(spec.data)
    ids = [f"{s}.{BACKTEST_VENUE}" for s in data.symbols]
    is_bars = isinstance(data, BarData)
    if len(data.symbols) > 1:
        data = data.by_time()
    book = TradeBook(spec.cash)
    interval = bar_interval_ns(data) if isinstance(data, BarData) else 0
    core = BacktestCore(
        ids,
        strategy=spec.strategy,
        params=spec.params,
        cash=spec.cash,
        commission=spec.commission,
        start_ns=int(data.ts[0]) - 1,
        bar_interval_ns=interval,
        on_fill=book.on_fill,
    )
    if progress is not None:
        progress.start(len(data))
    core.start()
    if isinstance(data, BarData):
        n = replay_bars(data, ids, core.clock, core.on_bar, book, interval_ns=interval, progress=progress)
    else:
        n = replay_ticks(data, ids, core.clock, core.on_trade, book,
                         sample_ns=round(spec.sample_seconds * 1e9), progress=progress)
    core.stop()
    if spec.close_at_end:
        core.close_all(book.last_price)
        _resample_last(book)
    result = _report(spec, "bars" if is_bars else "ticks", n, book)
    result.warnings.extend(_order_warnings(core))
    err = core.strategy_error()
    if err is not None:
        result.strategy_error = str(err)
    return result


def _order_warnings(core: BacktestCore) -> list[str]:
    """Decisions that never became trades, and why: a run with fewer trades than signals says so."""
    out: list[str] = []
    paper = core.engine.paper
    if paper is not None and paper.unfunded:
        out.append(f"{paper.unfunded} all-in entries cancelled at the fill: the free funds did not buy "
                   "one unit at the fill price with commission (backtesting.py cancels these too)")
    for rule, (count, message) in sorted(core.engine.gate.denials_by_rule.items()):
        out.append(f"the risk gate denied {count} order{'s' if count != 1 else ''} by rule {rule}, "
                   f"the first: {message}")
    return out


def _resample_last(book: TradeBook) -> None:
    """After closing at the end, the last sample shows the equity net of the exit commission."""
    ts, _, _ = book.curve()
    book.replace_last_sample(int(ts[-1]))


def _report(spec: BacktestSpec, kind: Literal["bars", "ticks"], n: int, book: TradeBook) -> BacktestResult:
    ts, eq, flags = book.curve()
    trips = [*book.trips, *book.open_trips()]
    exposure = float(np.mean(flags)) * 100 if flags.size else 0.0
    metrics = compute_metrics(ts, eq, trips, exposure_pct=exposure, commissions=book.commissions)
    return BacktestResult(
        data=spec.data,
        kind=kind,
        strategy=spec.strategy,
        events=n,
        metrics=metrics,
        warnings=metric_warnings(ts, eq, metrics),
        trades=trips,
        equity=[EquityPoint(t, e) for t, e in zip(ts.tolist(), eq.tolist(), strict=True)],
    )

