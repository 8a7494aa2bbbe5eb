"""Metric formulas against backtesting.py's own numbers on the same equity curve and trades."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest
from omnid.errors import DataError
from omnid.sim.metrics import FEW_PERIODS, RoundTrip, compute_metrics, metric_warnings, period_returns
from omnid.sim.synthetic import NS_PER_DAY, generate_bars

from tests.sim.reference import run_reference, ts_ns


def _close(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


@pytest.mark.parametrize(("weekdays_only", "seed"), [(True, 1), (False, 2), (True, 3)])
def test_formulas_match_backtesting_py(weekdays_only: bool, seed: int) -> None:
    """Given backtesting.py's equity and trades, every shared metric comes out the same."""
    bars = generate_bars(400, seed=seed, weekdays_only=weekdays_only)
    ref = run_reference(bars, fast=10, slow=30, cash=10_000, commission=0.002)
    eq = ref["_equity_curve"]
    td = ref["_trades"]
    trips = [
        RoundTrip(instrument_id="X", qty=float(r.Size), entry_ts=0, entry_price=float(r.EntryPrice),
                  exit_price=float(r.ExitPrice), pnl=float(r.PnL),
                  return_pct=float(r.ReturnPct) * 100, commission=float(r.Commission))
        for r in td.itertuples()
    ]
    m = compute_metrics(ts_ns(eq.index), eq["Equity"].to_numpy(dtype=np.float64), trips,
                        exposure_pct=0.0, commissions=0.0)
    assert len(trips) > 3
    pairs = {
        "return_pct": "Return [%]", "cagr_pct": "CAGR [%]", "volatility_pct": "Volatility (Ann.) [%]",
        "sharpe": "Sharpe Ratio", "sortino": "Sortino Ratio", "max_drawdown_pct": "Max. Drawdown [%]",
        "win_rate_pct": "Win Rate [%]", "profit_factor": "Profit Factor", "expectancy": "Expectancy [%]",
        "equity_final": "Equity Final [$]",
    }
    for ours, theirs in pairs.items():
        assert _close(getattr(m, ours), float(ref[theirs])), (ours, getattr(m, ours), ref[theirs])
    assert m.trades == ref["# Trades"]


def test_weekend_data_annualises_over_365_days() -> None:
    ts = np.arange(30, dtype=np.int64) * NS_PER_DAY
    _, per_year = period_returns(ts, np.linspace(100, 110, 30))
    assert per_year == 365
    weekdays = ts[((ts // NS_PER_DAY + 3) % 7) < 5]
    _, per_year = period_returns(weekdays, np.linspace(100, 110, weekdays.size))
    assert per_year == 252


def test_intraday_samples_are_resampled_to_days() -> None:
    """Many samples a day give one return per day: the last equity of each day."""
    ts = np.arange(0, 3 * NS_PER_DAY, NS_PER_DAY // 4, dtype=np.int64)
    equity = np.array([100, 101, 102, 110, 111, 112, 113, 121, 120, 119, 118, 99.0])
    rets, _ = period_returns(ts, equity)
    assert np.allclose(rets, [121 / 110 - 1, 99 / 121 - 1])


def test_no_trades_gives_nan_trade_stats_and_flat_return() -> None:
    ts = np.arange(10, dtype=np.int64) * NS_PER_DAY
    m = compute_metrics(ts, np.full(10, 1000.0), [], exposure_pct=0.0, commissions=0.0)
    assert m.trades == 0 and m.return_pct == 0.0 and m.max_drawdown_pct == 0.0
    assert math.isnan(m.win_rate_pct) and math.isnan(m.profit_factor)


def test_open_round_trip_is_not_counted() -> None:
    ts = np.arange(3, dtype=np.int64) * NS_PER_DAY
    trips = [RoundTrip(instrument_id="X", qty=1, entry_ts=0, entry_price=1.0, pnl=5, return_pct=5,
                       open=True)]
    m = compute_metrics(ts, np.array([1.0, 2.0, 3.0]), trips, exposure_pct=0.0, commissions=0.0)
    assert m.trades == 0


def test_empty_equity_is_a_data_error() -> None:
    with pytest.raises(DataError):
        compute_metrics(np.empty(0, np.int64), np.empty(0), [], exposure_pct=0, commissions=0)


def _daily(equity: list[float]) -> tuple[np.ndarray, np.ndarray]:
    ts = np.array([1_704_153_600 * 10**9 + i * NS_PER_DAY for i in range(len(equity))], dtype=np.int64)
    return ts, np.array(equity, dtype=np.float64)


def test_warnings_flag_few_periods_and_a_collapsed_volatility_without_changing_the_numbers() -> None:
    """A 5-day run that loses 88 %: the figures stay backtesting.py's, the report says why they
    mean little (4 daily returns; Sharpe blown up by a compounded volatility near 0)."""
    ts, eq = _daily([100_000.0, 60_000.0, 35_000.0, 20_000.0, 12_000.0])
    m = compute_metrics(ts, eq, [], exposure_pct=100.0, commissions=0.0)
    assert abs(m.sharpe) > 1e3
    notes = metric_warnings(ts, eq, m)
    assert len(notes) == 2
    assert "extrapolate 4 daily returns" in notes[0]
    assert notes[1].startswith("Sharpe is not meaningful") and "annualised volatility" in notes[1]
    again = compute_metrics(ts, eq, [], exposure_pct=100.0, commissions=0.0)
    assert msgspec.structs.asdict(again) == msgspec.structs.asdict(m)  # warnings change no number


def test_no_warnings_for_a_long_ordinary_run() -> None:
    rng = np.random.default_rng(4)
    ts, eq = _daily(list(100_000.0 * np.cumprod(1.0 + rng.normal(0.0005, 0.01, 400))))
    m = compute_metrics(ts, eq, [], exposure_pct=100.0, commissions=0.0)
    assert metric_warnings(ts, eq, m) == []


def test_few_periods_warning_at_its_boundary() -> None:
    ts, eq = _daily([100.0 + i for i in range(FEW_PERIODS + 1)])  # FEW_PERIODS returns: no warning
    assert metric_warnings(ts, eq, compute_metrics(ts, eq, [], exposure_pct=0.0, commissions=0.0)) == []
    ts, eq = _daily([100.0 + i for i in range(FEW_PERIODS)])  # one fewer
    notes = metric_warnings(ts, eq, compute_metrics(ts, eq, [], exposure_pct=0.0, commissions=0.0))
    assert len(notes) == 1 and f"{FEW_PERIODS - 1} daily returns" in notes[0]
