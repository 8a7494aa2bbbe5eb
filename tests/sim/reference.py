"""backtesting.py (kernc/backtesting.py 0.6) as the reference implementation for parity tests.

Facts relied on, from its source (backtesting/backtesting.py, backtesting/_stats.py):
- ``trade_on_close=False``: a market order placed in ``next()`` on bar i fills at bar i+1's Open;
- ``buy()``/``sell()`` default size is all-in: ``int(margin_available // (price + commission per
  unit))``; ``exclusive_orders=True`` closes the open trade before the new order (a reversal);
- commission (a float) is ``abs(size) * price * commission``, charged at entry and at exit;
- open trades at the end stay open unless ``finalize_trades=True``; stats count closed trades only;
- ``crossover(a, b)`` is ``a[-2] < b[-2] and a[-1] > b[-1]``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from backtesting import Backtest, Strategy
from backtesting.lib import crossover
from omnid.datafiles import BarData


def _sma(values: Any, n: int) -> Any:
    return pd.Series(values).rolling(n).mean()


class SmaCross(Strategy):  # type: ignore[misc]
    n1 = 10
    n2 = 30
    def init(self) -> None:
        self.sma1 = self.I(_sma, self.data.Close, self.n1)
        self.sma2 = self.I(_sma, self.data.Close, self.n2)

    def next(self) -> None:
        if crossover(self.sma1, self.sma2):
            self.buy()
        elif crossover(self.sma2, self.sma1):
            self.sell()


class SmaCrossLongOnly(SmaCross):
    def next(self) -> None:
        if crossover(self.sma1, self.sma2):
            if not self.position:
                self.buy()
        elif crossover(self.sma2, self.sma1):
            self.position.close()


def frame(bars: BarData) -> pd.DataFrame:
    return pd.DataFrame(
        {"Open": bars.open, "High": bars.high, "Low": bars.low, "Close": bars.close,
         "Volume": bars.volume},
        index=pd.to_datetime(bars.ts, unit="ns"),
    )


def run_reference(bars: BarData, *, fast: int, slow: int, cash: float, commission: float,
                  long_only: bool = False, finalize: bool = False) -> Any:
    """Run the reference with its defaults (all-in relative size, margin 1) and exclusive orders."""
    strat = SmaCrossLongOnly if long_only else SmaCross
    bt = Backtest(frame(bars), strat, cash=cash, commission=commission, exclusive_orders=True,
                  trade_on_close=False, finalize_trades=finalize)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bt.run(n1=fast, n2=slow)


def ts_ns(index: pd.DatetimeIndex) -> np.ndarray:
    return np.asarray(index.as_unit("ns").asi8, dtype=np.int64)
