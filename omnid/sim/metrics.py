"""Backtest metrics from an equity curve and a list of closed round trips.

The definitions follow backtesting.py 0.6 (``backtesting/_stats.py``) so that results can be
compared number for number with an established library:

- returns for volatility/Sharpe/Sortino are period returns of the equity sampled at the last value
  of each UTC day (each week, month or year when the data itself is that coarse);
- the annualised return is the geometric mean period return compounded over 252 periods a year
  (365 when the data has weekends; 52/12/1 for weekly/monthly/yearly data);
- volatility is the annualised standard deviation of compounded returns (not ``std * sqrt(N)``);
- Sharpe = annualised return / annualised volatility (risk-free rate 0);
- Sortino = annualised return / (root mean square of negative period returns * sqrt(N));
- CAGR uses calendar time between the first and last sample (365.25-day years);
- max drawdown is reported as a negative percentage, as backtesting.py does;
- profit factor and expectancy are computed on per-trade *returns* (net of commission, relative to
  the entry notional), again as backtesting.py does; ``expectancy`` is the mean trade return in %.

Where omnid deliberately differs (documented in the CLI help and the report): commissions and
exposure count a position still open at the end (backtesting.py counts only closed trades).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec
import numpy as np
import numpy.typing as npt

from omnid.errors import DataError

NS_PER_DAY = 86_400_000_000_000
_YEAR_DAYS = 365.25


class RoundTrip(msgspec.Struct, kw_only=True):
    """One closed (or, when ``open`` is true, still open) trade: an entry and its exit.

    ``qty`` is signed (positive long, negative short). ``pnl`` is net of both commissions;
    ``return_pct`` is the net return relative to the entry notional, in percent.
    ``entry_index``/``exit_index`` index the equity samples (bars) the fills fell on.
    """

    instrument_id: str
    qty: float
    entry_ts: int
    entry_price: float
    exit_ts: int = 0
    exit_price: float = 0.0
    pnl: float = 0.0
    return_pct: float = 0.0
    commission: float = 0.0
    entry_index: int = 0
    exit_index: int = 0
    open: bool = False


class Metrics(msgspec.Struct, kw_only=True):
    """The headline numbers of a backtest (JSON names are the field names)."""

    start_ts: int
    end_ts: int
    return_pct: float
    cagr_pct: float
    volatility_pct: float
    sharpe: float
    sortino: float
    max_drawdown_pct: float
    trades: int
    win_rate_pct: float
    profit_factor: float
    expectancy: float
    exposure_pct: float
    equity_final: float
    equity_peak: float
    commissions: float


#: The human labels of the metrics table, in display order, with their formats.
METRIC_LABELS: tuple[tuple[str, str, str], ...] = (
    ("return_pct", "Total return %", "{:.4f}"),
    ("cagr_pct", "CAGR %", "{:.4f}"),
    ("volatility_pct", "Volatility (ann.) %", "{:.4f}"),
    ("sharpe", "Sharpe", "{:.4f}"),
    ("sortino", "Sortino", "{:.4f}"),
    ("max_drawdown_pct", "Max drawdown %", "{:.4f}"),
    ("trades", "Trades", "{}"),
    ("win_rate_pct", "Win rate %", "{:.2f}"),
    ("profit_factor", "Profit factor", "{:.4f}"),
    ("expectancy", "Expectancy (mean trade return %)", "{:.4f}"),
    ("exposure_pct", "Exposure %", "{:.2f}"),
    ("equity_final", "Final equity", "{:.2f}"),
    ("commissions", "Commissions paid", "{:.2f}"),
)


def _nan_if_zero(x: float) -> float:
    return x if x else math.nan


def _geometric_mean(returns: npt.NDArray[np.float64]) -> float:
    """Geometric mean of simple returns; 0 when any period lost everything (as backtesting.py)."""
    if returns.size == 0:
        return math.nan
    growth = returns + 1.0
    if np.any(growth <= 0):
        return 0.0
    return float(math.exp(float(np.log(growth).sum()) / returns.size) - 1.0)


def period_returns(ts: npt.NDArray[np.int64], equity: npt.NDArray[np.float64]) -> tuple[
    npt.NDArray[np.float64], int
]:
    """Returns of equity sampled at the last value of each period, and periods per year.

    The period is the data's own when it is weekly, monthly or yearly (median spacing of the last
    100 samples), otherwise the UTC day; a year has 365 days when at least ~17 % of samples fall
    on weekends (crypto), else 252.
    """
    if ts.size < 2:
        return np.empty(0, dtype=np.float64), 252
    spacing_days = int(np.median(np.diff(ts[-100:])) // NS_PER_DAY)
    days = ts // NS_PER_DAY
    if spacing_days == 7:
        key, per_year = (days + 3) // 7, 52  # weeks Monday..Sunday, labelled by their Sunday
    elif spacing_days == 31:
        key, per_year = ts.astype("datetime64[ns]").astype("datetime64[M]").astype(np.int64), 12
    elif spacing_days == 365:
        key, per_year = ts.astype("datetime64[ns]").astype("datetime64[Y]").astype(np.int64), 1
    else:
        weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
        weekend_share = float(np.mean(weekday >= 5))
        key, per_year = days, (365 if weekend_share > 2 / 7 * 0.6 else 252)
    last_of_period = np.flatnonzero(np.diff(key) != 0)
    sampled = np.append(equity[last_of_period], equity[-1])
    with np.errstate(divide="ignore", invalid="ignore"):
        rets = sampled[1:] / sampled[:-1] - 1.0
    return rets[np.isfinite(rets)], per_year


#: Fewer return periods than this make annualised figures an extrapolation worth a warning.
FEW_PERIODS = 20
#: |Sharpe| beyond this only happens when the annualised volatility has collapsed towards zero.
ABSURD_RATIO = 1e3
_PERIOD_NAMES = {252: "daily", 365: "daily", 52: "weekly", 12: "monthly", 1: "yearly"}


def metric_warnings(ts: npt.NDArray[np.int64], equity: npt.NDArray[np.float64], m: Metrics) -> list[str]:
    """Plain-language warnings for figures that are computed as backtesting.py does (so they stay
    comparable) but mean little for this run: annualised ratios from a handful of periods, and a
    Sharpe or Sortino blown up by a compounded volatility that has collapsed (a run that lost nearly
    everything compounds to -100 % a year with a volatility near 0)."""
    out: list[str] = []
    rets, per_year = period_returns(ts, equity)
    kind = _PERIOD_NAMES.get(per_year, "period")
    if rets.size < FEW_PERIODS:
        out.append(
            f"CAGR, volatility, Sharpe and Sortino extrapolate {rets.size} {kind} return"
            f"{'' if rets.size == 1 else 's'} to a year: indicative only"
        )
    absurd = [name for name, v in (("Sharpe", m.sharpe), ("Sortino", m.sortino))
              if math.isfinite(v) and abs(v) > ABSURD_RATIO]
    if absurd:
        out.append(
            f"{' and '.join(absurd)} {'is' if len(absurd) == 1 else 'are'} not meaningful here: the "
            f"annualised volatility is {m.volatility_pct:.3g} % (the {kind} returns compound to a "
            "near-total loss or gain over a year)"
        )
    return out


def compute_metrics(
    ts: npt.NDArray[np.int64],
    equity: npt.NDArray[np.float64],
    trades: Sequence[RoundTrip],
    *,
    exposure_pct: float,
    commissions: float,
) -> Metrics:
    """Compute :class:`Metrics` from equity samples (ns timestamps) and the closed round trips.

    ``trades`` may include still-open round trips; only closed ones count in the trade statistics.
    """
    if ts.size == 0 or ts.size != equity.size:
        raise DataError(
            "metrics need at least one equity sample with a timestamp each",
            samples=int(equity.size),
            timestamps=int(ts.size),
        )
    start_equity = float(equity[0])
    final = float(equity[-1])
    peak = np.maximum.accumulate(equity)
    with np.errstate(divide="ignore", invalid="ignore"):
        drawdown = 1.0 - equity / peak
    max_dd = float(np.nan_to_num(np.nanmax(drawdown))) if drawdown.size else 0.0

    rets, per_year = period_returns(ts, equity)
    g = _geometric_mean(rets) if rets.size else 0.0
    ann_return = (1.0 + g) ** per_year - 1.0
    if rets.size:
        var = float(np.var(rets, ddof=1)) if rets.size > 1 else math.nan
        vol = math.sqrt(max((var + (1 + g) ** 2) ** per_year - (1 + g) ** (2 * per_year), 0.0)) * 100
        downside = math.sqrt(float(np.mean(np.minimum(rets, 0.0) ** 2))) * math.sqrt(per_year)
    else:
        vol, downside = math.nan, math.nan
    sharpe = ann_return * 100 / vol if vol and not math.isnan(vol) else math.nan
    if downside == 0.0:
        sortino = math.inf if ann_return > 0 else -math.inf if ann_return < 0 else math.nan
    else:
        sortino = ann_return / downside if not math.isnan(downside) else math.nan

    duration_ns = int(ts[-1] - ts[0])
    years = (duration_ns // NS_PER_DAY + (duration_ns % NS_PER_DAY // 1_000_000_000) / 86400) / _YEAR_DAYS
    if years and start_equity > 0 and final >= 0:
        cagr = ((final / start_equity) ** (1 / years) - 1) * 100
    else:
        cagr = math.nan

    closed = [t for t in trades if not t.open]
    n = len(closed)
    pnl = np.array([t.pnl for t in closed], dtype=np.float64)
    tr = np.array([t.return_pct for t in closed], dtype=np.float64) / 100.0
    win_rate = float(np.mean(pnl > 0)) * 100 if n else math.nan
    gains, losses = float(tr[tr > 0].sum()), abs(float(tr[tr < 0].sum()))
    profit_factor = gains / losses if losses else math.nan  # backtesting.py: nan without losses
    expectancy = float(np.mean(tr)) * 100 if n else math.nan

    return Metrics(
        start_ts=int(ts[0]),
        end_ts=int(ts[-1]),
        return_pct=(final - start_equity) / start_equity * 100 if start_equity else math.nan,
        cagr_pct=cagr,
        volatility_pct=vol,
        sharpe=sharpe,
        sortino=sortino,
        max_drawdown_pct=-max_dd * 100,
        trades=n,
        win_rate_pct=win_rate,
        profit_factor=profit_factor,
        expectancy=expectancy,
        exposure_pct=exposure_pct,
        equity_final=final,
        equity_peak=float(np.max(equity)),
        commissions=commissions,
    )
