"""Position sizing for intents that leave ``qty`` at 0: fixed, fraction of equity, risk per trade
from the stop distance, and "all in" (the backtester's default).

Sizes come out unrounded; the gate rounds them down to the lot and applies the caps.
"""

from __future__ import annotations

from omnid.model import Instrument
from omnid.risk.config import SizingConfig
from omnid.risk.rules import Verdict


class Sizer:
    """Turns equity, price and stop into a quantity according to ``[risk.sizing]``.

    - ``fixed``: ``fixed_qty`` units.
    - ``fraction``: ``fraction_pct`` % of equity in notional.
    - ``risk_per_trade``: lose ``risk_per_trade_pct`` % of equity if the stop is hit
      (``equity * risk / |price - stop|``), and never more notional than ``fraction_pct`` % of
      equity (0 lifts that cap). The stop is the intent's ``stop_loss``, else
      ``[risk.exits] stop_loss_pct`` from the price.
    - ``all_in``: the most units whose notional plus commission (``commission_rate``) equity
      covers; no leverage, and the same for a short. The gate passes the equity not already at
      work in other positions (see ``RiskGate._committed``).
    """

    name = "sizing"

    def __init__(self, config: SizingConfig, *, default_stop_pct: float = 0.0) -> None:
        self.mode = config.mode
        self.fixed_qty = config.fixed_qty
        self.fraction = config.fraction_pct / 100.0
        self.risk = config.risk_per_trade_pct / 100.0
        self.commission_rate = config.commission_rate
        self.default_stop_frac = default_stop_pct / 100.0

    def size(
        self, inst: Instrument, sign: int, price: float, stop_loss: float | None, equity: float
    ) -> float | Verdict:
        """The unrounded quantity for an entry at ``price``, or a verdict saying why there is none."""
        mode = self.mode
        if mode == "fixed":
            return self.fixed_qty
        if not equity > 0.0:
            return self.name, f"cannot size a {mode} entry with equity {equity}", {"equity": equity}
        unit = price * inst.multiplier
        if mode == "all_in":
            return equity / (unit * (1.0 + self.commission_rate))
        if mode == "fraction":
            return equity * self.fraction / unit
        stop = stop_loss
        if stop is None and self.default_stop_frac:
            stop = price * (1.0 - sign * self.default_stop_frac)
        if stop is None:
            return (
                self.name,
                f"{inst.id}: risk_per_trade sizing needs a stop_loss (on the intent or as "
                "[risk.exits] stop_loss_pct)",
                {"price": price},
            )
        distance = (price - stop) * sign
        if not distance > 0.0:
            return (
                self.name,
                f"{inst.id}: stop {stop} is on the wrong side of the entry price {price}",
                {"price": price, "stop_loss": stop},
            )
        qty = equity * self.risk / (distance * inst.multiplier)
        if self.fraction > 0.0:
            qty = min(qty, equity * self.fraction / unit)
        return qty
