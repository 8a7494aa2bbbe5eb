"""omnid's backtester against backtesting.py on the same bars, strategy, costs and sizing.

omnid's risk gate sizes "all in" when the decision is taken (at the bar's close, the only moment a
live system can size an order), while backtesting.py sizes at the fill (the next open). The
reference therefore sizes at the decision as omnid does (``decision_sized``); then every metric and
every trade must agree. Against backtesting.py's own default sizing, the fills happen on the same
bars at the same prices; only the unit counts differ.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from omnid.sim.runner import BacktestResult, BacktestSpec, run_backtest
from omnid.sim.synthetic import generate_bars

from tests.conftest import SLOW
from tests.sim.reference import run_reference

PAIRS = {
    "return_pct": "Return [%]",
    "cagr_pct": "CAGR [%]",
    "volatility_pct": "Volatility (Ann.) [%]",
    "sharpe": "Sharpe Ratio",
    "sortino": "Sortino Ratio",
    "max_drawdown_pct": "Max. Drawdown [%]",
    "win_rate_pct": "Win Rate [%]",
    "profit_factor": "Profit Factor",
    "expectancy": "Expectancy [%]",
    "equity_final": "Equity Final [$]",
}


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-7)


def _ours(bars_seed: int, mode: str, commission: float, weekdays: bool = True) -> tuple[BacktestResult, object]:
    bars = generate_bars(500, seed=bars_seed, weekdays_only=weekdays)
    spec = BacktestSpec(data="<synthetic>", strategy="sma_cross",
                        params={"fast": 10, "slow": 30, "mode": mode}, cash=10_000, commission=commission)
    return run_backtest(spec, data=bars), bars


@pytest.mark.parametrize(
    ("seed", "mode", "commission", "weekdays"),
    [(1, "long_short", 0.002, True), (4, "long_short", 0.0, False), (9, "long_only", 0.001, True)],
)
def test_metrics_and_trades_match_backtesting_py(seed: int, mode: str, commission: float,
                                                 weekdays: bool) -> None:
    res, bars = _ours(seed, mode, commission, weekdays)
    ref = run_reference(bars, fast=10, slow=30, cash=10_000, commission=commission,  # type: ignore[arg-type]
                        long_only=mode == "long_only", decision_sized=True)
    m = res.metrics
    for ours, theirs in PAIRS.items():
        assert _same(getattr(m, ours), float(ref[theirs])), (ours, getattr(m, ours), ref[theirs])
    closed = [t for t in res.trades if not t.open]
    td = ref["_trades"]
    assert m.trades == len(closed) == len(td) > 3
    for t, r in zip(closed, td.itertuples(), strict=True):
        assert (t.qty, t.entry_index, t.exit_index) == (r.Size, r.EntryBar, r.ExitBar)
        assert _same(t.entry_price, r.EntryPrice) and _same(t.exit_price, r.ExitPrice)
        assert _same(t.pnl, r.PnL) and _same(t.return_pct, r.ReturnPct * 100)
        assert _same(t.commission, r.Commission)
    # Equity curves agree bar by bar.
    assert np.allclose([p.equity for p in res.equity], ref["_equity_curve"]["Equity"].to_numpy(), rtol=1e-12)
    # Where omnid counts more than backtesting.py: the position still open at the end.
    still = [t for t in res.trades if t.open]
    held = np.zeros(len(bars), dtype=bool)
    for r in td.itertuples():
        held[r.EntryBar : r.ExitBar + 1] = True
    for t in still:
        held[t.entry_index :] = True
    assert _same(m.exposure_pct, float(held.mean() * 100))
    assert _same(m.commissions, float(td["Commission"].sum()) + sum(t.commission for t in still))


def test_fill_bars_and_prices_match_backtesting_py_default_sizing() -> None:
    """With backtesting.py's fill-time sizing, the same bars and prices trade; sizes differ a little."""
    res, bars = _ours(1, "long_short", 0.002)
    ref = run_reference(bars, fast=10, slow=30, cash=10_000, commission=0.002)  # type: ignore[arg-type]
    closed = [t for t in res.trades if not t.open]
    td = ref["_trades"]
    assert len(closed) == len(td)
    for t, r in zip(closed, td.itertuples(), strict=True):
        assert (t.entry_index, t.exit_index, t.entry_price, t.exit_price) == (
            r.EntryBar, r.ExitBar, r.EntryPrice, r.ExitPrice)
        assert math.copysign(1, t.qty) == math.copysign(1, r.Size)
        assert abs(abs(t.qty) - abs(r.Size)) <= 0.05 * abs(r.Size)


SWEEP = [(seed, mode, c) for seed in range(10, 40 if SLOW else 14) for mode in ("long_short", "long_only")
         for c in (0.0, 0.003)]


@pytest.mark.parametrize(("seed", "mode", "commission"), SWEEP)
def test_parity_sweep(seed: int, mode: str, commission: float) -> None:
    """Many seeds, both modes, with and without commission (120 cases with OMNID_SLOW=1)."""
    res, bars = _ours(seed, mode, commission)
    ref = run_reference(bars, fast=10, slow=30, cash=10_000, commission=commission,  # type: ignore[arg-type]
                        long_only=mode == "long_only", decision_sized=True)
    for ours, theirs in PAIRS.items():
        assert _same(getattr(res.metrics, ours), float(ref[theirs])), (ours, getattr(res.metrics, ours), ref[theirs])
    assert res.metrics.trades == ref["# Trades"]
