"""Backtests: the daemon's own core replayed over files, and the numbers that judge a strategy.

- :mod:`omnid.sim.replay`: numpy columns (from :mod:`omnid.datafiles`) into Trade/Bar events, a
  plain loop on a :class:`~omnid.clock.SimClock`; the hot path ``bench/replay.py`` measures.
- :mod:`omnid.sim.core`: :func:`omnid.engine.build_engine` configured for a backtest (all-in
  sizing, commission, next-price paper fills, venue ``SIM``).
- :mod:`omnid.sim.book`: round trips (FIFO), cash, equity samples and exposure, from fills.
- :mod:`omnid.sim.metrics`: the metrics, defined as backtesting.py 0.6 defines them.
- :mod:`omnid.sim.runner`: file + strategy in, :class:`~omnid.sim.runner.BacktestResult` out.
- :mod:`omnid.sim.synthetic`: seeded GBM-with-jumps ticks and bars for tests and benchmarks.

How results compare with backtesting.py (``Backtest(..., exclusive_orders=True)``, defaults
otherwise):

1. **Sizing agrees.** Both size an all-in entry at its fill: backtesting.py from the margin available
   at the next open, omnid's paper broker from the free funds at the fill price
   (``[risk.sizing] at_fill``; the risk gate checks an estimate made at the decision). The unit
   counts, and so every metric and trade, agree exactly (tests/sim/test_parity.py).
2. **Open positions.** A position still open at the end is marked to the last close in both; omnid
   also counts it in ``exposure_pct`` and its entry commission in ``commissions`` (backtesting.py
   counts closed trades only). ``--close-at-end`` closes at the last *close* with commission
   (backtesting.py's ``finalize_trades`` fills at the last bar's *open*).
3. **Conventions kept from backtesting.py** that may surprise: ``max_drawdown_pct`` is negative;
   ``profit_factor`` and ``expectancy`` are computed on per-trade *returns* (``expectancy`` is the
   mean trade return in %), not on cash P&L; volatility is the annualised standard deviation of
   compounded daily returns, which collapses towards 0 (and Sharpe explodes) when equity falls by
   most of its value within the sample, exactly as backtesting.py's does.
4. **Ticks.** backtesting.py has no tick mode. On ticks, equity is sampled at the last tick of each
   minute (``sample_seconds``), exposure is the share of those samples with a position, and the
   daily returns behind volatility/Sharpe/Sortino come from the same samples.
"""
