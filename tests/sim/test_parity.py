"""omnid's backtester against backtesting.py on the same bars, strategy, costs and sizing.

Both size "all in" at the fill (the next open): backtesting.py's default relative size, and omnid's
``[risk.sizing] at_fill`` (the paper broker sizes the order again from the free funds at the fill
price). Every metric, every trade and the equity curve must agree, the unit counts exactly.
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
                        long_only=mode == "long_only")
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


def test_a_gap_up_open_never_buys_more_than_the_cash() -> None:
    """Sized at the decision's close, an entry whose next open gaps up would cost more than the
    cash (leverage); sized at the fill, cash never goes negative, and the unused cash is less than
    one more unit would cost (all in)."""
    bars = generate_bars(500, seed=1)
    spec = BacktestSpec(data="<synthetic>", strategy="sma_cross",
                        params={"fast": 10, "slow": 30, "mode": "long_only"}, cash=10_000, commission=0.002)
    res = run_backtest(spec, data=bars)
    entries = [t for t in res.trades if t.entry_index > 0]
    gapped = [t for t in entries if bars.open[t.entry_index] > bars.close[t.entry_index - 1]]
    assert gapped, "the data should hold an entry whose open gapped up from the decision's close"
    cash = 10_000.0
    for t in sorted(res.trades, key=lambda t: t.entry_index):
        cost = t.qty * t.entry_price * 1.002
        assert cost <= cash + 1e-6, (t, cash)
        assert cash - cost < t.entry_price * 1.002, "all in leaves less than one unit's cost unspent"
        if t.open:
            break
        cash += t.pnl  # round trip closed: back to cash before the next entry (long only, one at a time)


SWEEP = [(seed, mode, c) for seed in range(10, 40 if SLOW else 14) for mode in ("long_short", "long_only")
         for c in (0.0, 0.003)]


@pytest.mark.parametrize(("seed", "mode", "commission"), SWEEP)
def test_parity_sweep(seed: int, mode: str, commission: float) -> None:
    """Many seeds, both modes, with and without commission (120 cases with OMNID_SLOW=1)."""
    res, bars = _ours(seed, mode, commission)
    ref = run_reference(bars, fast=10, slow=30, cash=10_000, commission=commission,  # type: ignore[arg-type]
                        long_only=mode == "long_only")
    for ours, theirs in PAIRS.items():
        assert _same(getattr(res.metrics, ours), float(ref[theirs])), (ours, getattr(res.metrics, ours), ref[theirs])
    assert res.metrics.trades == ref["# Trades"]
