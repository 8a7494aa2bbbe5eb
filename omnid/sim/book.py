"""The backtest's own account of fills: round trips, cash, the equity curve and exposure.

It listens to fills (whoever produced them: the paper broker through the engine) and keeps the
numbers a backtest report needs, independently of the portfolio, so a report can be checked
against the ledger. Round trips are matched first-in first-out per instrument, as backtesting.py
does without hedging; a fill that crosses zero (a reversal) closes the old side and opens the new
one. Commission on a fill is split across the round trips it touches in proportion to quantity.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import numpy.typing as npt

from omnid.model import Fill, Side
from omnid.sim.metrics import RoundTrip

_EPS = 1e-12


class _Lot:
    """An open piece of a position: signed quantity, entry price, entry commission per unit."""

    __slots__ = ("commission_per_unit", "index", "price", "qty", "ts")

    def __init__(self, qty: float, price: float, commission_per_unit: float, ts: int, index: int) -> None:
        self.qty = qty
        self.price = price
        self.commission_per_unit = commission_per_unit
        self.ts = ts
        self.index = index


class TradeBook:
    """Cash, positions, round trips and equity samples, built from fills and prices.

    ``index`` is the number of the sample (bar) now in progress, so fills are stamped with the bar
    they happened on; :meth:`sample` closes a sample and moves it on.
    """

    __slots__ = (
        "_lots",
        "_sample_eq",
        "_sample_flag",
        "_sample_ts",
        "cash",
        "commissions",
        "index",
        "last_price",
        "positions",
        "touched",
        "trips",
    )

    def __init__(self, cash: float) -> None:
        self.cash = cash
        self.commissions = 0.0
        self.index = 0
        self.positions: dict[str, float] = {}
        self.last_price: dict[str, float] = {}
        self.trips: list[RoundTrip] = []
        self._lots: dict[str, deque[_Lot]] = {}
        self._sample_ts: list[int] = []
        self._sample_eq: list[float] = []
        self._sample_flag: list[bool] = []
        #: A fill happened since the last sample (that sample counts as exposed).
        self.touched = False

    # ---- fills --------------------------------------------------------------------------------

    def on_fill(self, fill: Fill) -> None:
        """Book one fill: cash, position, and the round trips it opens or closes."""
        iid = fill.instrument_id
        sign = 1.0 if fill.side is Side.BUY else -1.0
        qty = fill.qty
        price = fill.price
        self.cash -= sign * qty * price + fill.commission
        self.commissions += fill.commission
        self.positions[iid] = self.positions.get(iid, 0.0) + sign * qty
        self.last_price.setdefault(iid, price)
        self.touched = True
        per_unit = fill.commission / qty if qty else 0.0
        lots = self._lots.setdefault(iid, deque())
        remaining = qty
        while remaining > _EPS and lots and (lots[0].qty > 0) != (sign > 0):
            lot = lots[0]
            take = min(remaining, abs(lot.qty))
            self._close(iid, lot, take, price, per_unit, fill.ts_event)
            lot.qty -= take if lot.qty > 0 else -take
            remaining -= take
            if abs(lot.qty) <= _EPS:
                lots.popleft()
        if remaining > _EPS:
            lots.append(_Lot(sign * remaining, price, per_unit, fill.ts_event, self.index))

    def _close(self, iid: str, lot: _Lot, qty: float, price: float, exit_per_unit: float, ts: int) -> None:
        signed = qty if lot.qty > 0 else -qty
        commission = qty * (lot.commission_per_unit + exit_per_unit)
        pnl = signed * (price - lot.price) - commission
        ret = (1.0 if signed > 0 else -1.0) * (price / lot.price - 1.0) - commission / (qty * lot.price)
        self.trips.append(
            RoundTrip(
                instrument_id=iid,
                qty=signed,
                entry_ts=lot.ts,
                entry_price=lot.price,
                exit_ts=ts,
                exit_price=price,
                pnl=pnl,
                return_pct=ret * 100.0,
                commission=commission,
                entry_index=lot.index,
                exit_index=self.index,
            )
        )

    # ---- prices and samples ------------------------------------------------------------------

    def equity(self) -> float:
        """Cash plus every position marked to its last price."""
        eq = self.cash
        last = self.last_price
        for iid, q in self.positions.items():
            if q:
                eq += q * last[iid]
        return eq

    def sample(self, ts: int) -> None:
        """Record the equity at ``ts`` and whether the period just ended held a position."""
        # any() over the floats themselves: truthiness is `q != 0.0` (NaN true, -0.0 false)
        exposed = self.touched or any(self.positions.values())
        self._sample_ts.append(ts)
        self._sample_eq.append(self.equity())
        self._sample_flag.append(exposed)
        self.touched = False
        self.index = len(self._sample_ts)

    def replace_last_sample(self, ts: int) -> None:
        """Redo the last sample (after fills booked at the very end, e.g. closing at the end)."""
        if self._sample_ts:
            touched = self.touched or self._sample_flag[-1]
            del self._sample_ts[-1], self._sample_eq[-1], self._sample_flag[-1]
            self.touched = touched
        self.sample(ts)

    def open_trips(self) -> list[RoundTrip]:
        """Still-open lots as round trips marked to the last price (``open=True``), no exit fee."""
        out: list[RoundTrip] = []
        for iid, lots in self._lots.items():
            px = self.last_price.get(iid, 0.0)
            for lot in lots:
                q = lot.qty
                commission = abs(q) * lot.commission_per_unit
                pnl = q * (px - lot.price) - commission
                ret = (1.0 if q > 0 else -1.0) * (px / lot.price - 1.0) - commission / (abs(q) * lot.price)
                out.append(RoundTrip(instrument_id=iid, qty=q, entry_ts=lot.ts, entry_price=lot.price,
                                     exit_price=px, pnl=pnl, return_pct=ret * 100.0,
                                     commission=commission, entry_index=lot.index,
                                     exit_index=self.index, open=True))
        return out

    def curve(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """Sample timestamps, equity values and exposure flags as arrays."""
        return (
            np.asarray(self._sample_ts, dtype=np.int64),
            np.asarray(self._sample_eq, dtype=np.float64),
            np.asarray(self._sample_flag, dtype=np.bool_),
        )
