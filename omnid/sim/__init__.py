"""Backtests: the daemon's own core replayed over files, and the numbers that judge a strategy.

- :mod:`omnid.sim.replay`: numpy columns (from :mod:`omnid.datafiles`) into Trade/Bar events, a
  plain loop on a :class:`~omnid.clock.SimClock`; the hot path ``bench/replay.py`` measures.
- :mod:`omnid.sim.core`: :func:`omnid.engine.build_engine` configured for a backtest (all-in
  sizing, commission, next-price paper fills, venue ``SIM``).
- :mod:`omnid.sim.book`: round trips (FIFO), cash, equity samples and exposure, from fills.
- :mod:`omnid.sim.metrics`: the metrics, defined as backtesting.py 0.6 defines them.
- :mod:`omnid.sim.runner`: file + strategy in, :class:`~omnid.sim.runner.BacktestResult` out.
- :mod:`omnid.sim.synthetic`: seeded GBM-with-jumps ticks and bars for tests and benchmarks.

Where results differ from backtesting.py (``Backtest(..., exclusive_orders=True)``, defaults
otherwise), on purpose:

1. **Sizing time.** omnid's risk gate sizes an all-in entry when the decision is taken, from the
   equity and the last price at the bar's close (an order's quantity must be known when it is
   sent). backtesting.py sizes at the fill, from the next open. Fills happen on the same bars at the
   same prices; the unit counts differ by the close-to-open move (a few units). If the next open
   gaps up, omnid's order may cost slightly more than the cash (backtesting.py would cancel it).
   With the reference sizing at the decision too, every metric and trade agrees (tests/sim).
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
