"""``pairs``: mean reversion on the z-score of the log-price spread of two instruments.

The hedge ratio comes from a rolling ordinary least squares regression of ``log(A)`` on ``log(B)``
over the last ``window`` observations. On ticks an observation is taken whenever either leg
prints and both have a price (several prints with one timestamp count once). On bars it is taken
once per bar time, when both legs' bars for that time have arrived, so a decision never mixes one
leg's new bar with the other's previous one (a bar time in which one leg did not trade is skipped).
The spread is the regression residual ``log(A) - alpha - beta * log(B)`` and its z-score is the
residual over the residuals' standard deviation in the window. All of it is O(1) per observation
from running sums, re-summed exactly once per window to stop floating-point drift.

- z > ``entry_z``: the spread is rich: sell A, buy beta-weighted B (short the spread);
- z < -``entry_z``: buy A, sell B (long the spread);
- back inside ±``exit_z``: close both legs;
- beyond ±``stop_z`` against the position: close both legs, and take no new entry until |z| has
  come back inside ``entry_z``.

Leg A trades ``qty`` units (or ``notional / price_A``); leg B trades ``|beta| * notional_A /
price_B`` so the legs' values keep the hedge ratio. With a negative beta both legs take the same
side.
"""

from __future__ import annotations

import math
from typing import Any

from omnid.model import Bar, OrderIntent, Side
from omnid.strategies.base import Intents, Strategy, StrategyParams
from omnid.strategies.registry import register

_TINY = 1e-18


class PairsParams(StrategyParams, frozen=True):
    #: Observations in the rolling regression and z-score.
    window: int = 100
    #: |z| at which to open a position.
    entry_z: float = 2.0
    #: |z| at which to close it (back near the mean).
    exit_z: float = 0.5
    #: |z| at which to give up (close at a loss) and stand aside until |z| < entry_z.
    stop_z: float = 4.0
    #: Leg A size in units (0 = use ``notional``).
    qty: float = 0.0
    #: Leg A size as a value in the quote currency, when ``qty`` is 0.
    notional: float = 10_000.0

    def __post_init__(self) -> None:
        if self.window < 3:
            raise ValueError(f"window must be >= 3, got {self.window}")
        if not 0.0 <= self.exit_z < self.entry_z < self.stop_z:
            raise ValueError(
                f"need 0 <= exit_z ({self.exit_z}) < entry_z ({self.entry_z}) < stop_z ({self.stop_z})"
            )
        if self.qty < 0 or self.notional < 0 or (self.qty == 0 and self.notional == 0):
            raise ValueError("set qty or notional to a positive size for leg A")


class RollingOLS:
    """y = alpha + beta * x over the last ``window`` points, O(1) per update."""

    __slots__ = ("n", "pos", "since_exact", "sx", "sxx", "sxy", "sy", "syy", "window", "xs", "ys")

    def __init__(self, window: int) -> None:
        self.window = window
        self.xs = [0.0] * window
        self.ys = [0.0] * window
        self.pos = 0  # next slot to write
        self.n = 0
        self.sx = self.sy = self.sxx = self.syy = self.sxy = 0.0
        self.since_exact = 0

    def push(self, x: float, y: float) -> None:
        """Add a point, evicting the oldest when full."""
        i = self.pos
        if self.n == self.window:
            self._remove(self.xs[i], self.ys[i])
        else:
            self.n += 1
        self.xs[i] = x
        self.ys[i] = y
        self._add(x, y)
        self.pos = (i + 1) % self.window
        self.since_exact += 1
        if self.since_exact >= self.window:
            self._resum()

    def replace_last(self, x: float, y: float) -> None:
        """Overwrite the newest point (a second print with the same timestamp)."""
        i = (self.pos - 1) % self.window
        self._remove(self.xs[i], self.ys[i])
        self.xs[i] = x
        self.ys[i] = y
        self._add(x, y)

    def _add(self, x: float, y: float) -> None:
        self.sx += x
        self.sy += y
        self.sxx += x * x
        self.syy += y * y
        self.sxy += x * y

    def _remove(self, x: float, y: float) -> None:
        self.sx -= x
        self.sy -= y
        self.sxx -= x * x
        self.syy -= y * y
        self.sxy -= x * y

    def _resum(self) -> None:
        self.sx = self.sy = self.sxx = self.syy = self.sxy = 0.0
        for k in range(self.n):
            self._add(self.xs[k], self.ys[k])
        self.since_exact = 0

    def fit(self) -> tuple[float, float, float] | None:
        """(alpha, beta, residual standard deviation), or None until full or when degenerate."""
        n = self.n
        if n < self.window:
            return None
        mx = self.sx / n
        my = self.sy / n
        vx = self.sxx / n - mx * mx
        if vx <= _TINY:
            return None
        cxy = self.sxy / n - mx * my
        beta = cxy / vx
        var_res = self.syy / n - my * my - beta * cxy
        if var_res <= _TINY:
            return None
        return my - beta * mx, beta, math.sqrt(var_res)


@register
class Pairs(Strategy):
    kind = "pairs"
    params_type = PairsParams
    n_instruments = 2

    params: PairsParams

    def on_start(self) -> Intents:
        self._a, self._b = self.instruments
        self._pa = math.nan
        self._pb = math.nan
        self._x0 = math.nan  # log prices are centred on the first observation (precision)
        self._y0 = math.nan
        self._ols = RollingOLS(self.params.window)
        self._last_ts = -1
        self._bar_a = -1  # ts_open of each leg's latest bar
        self._bar_b = -2
        self._blocked = False
        self.z = math.nan
        self.beta = math.nan
        return None

    def on_bar(self, bar: Bar) -> Intents:
        if not bar.close > 0.0:
            return None
        if bar.instrument_id == self._a:
            self._pa = bar.close
            self._bar_a = bar.ts_open
        else:
            self._pb = bar.close
            self._bar_b = bar.ts_open
        if self._bar_a != self._bar_b:
            return None  # wait for the other leg's bar of this time
        return self._observe(bar.ts_event)

    def on_price(self, instrument_id: str, price: float, ts: int) -> Intents:
        if not price > 0.0:
            return None
        if instrument_id == self._a:
            self._pa = price
        else:
            self._pb = price
        return self._observe(ts)

    def _observe(self, ts: int) -> Intents:
        pa, pb = self._pa, self._pb
        if math.isnan(pa) or math.isnan(pb):
            return None
        la, lb = math.log(pa), math.log(pb)
        if math.isnan(self._x0):
            self._x0, self._y0 = lb, la
        x, y = lb - self._x0, la - self._y0
        if ts == self._last_ts:
            self._ols.replace_last(x, y)
        else:
            self._ols.push(x, y)
            self._last_ts = ts
        fit = self._ols.fit()
        if fit is None:
            return None
        alpha, beta, sd = fit
        resid = y - alpha - beta * x
        z = resid / sd
        self.z, self.beta = z, beta
        return self._decide(z, alpha, beta, resid, pa, pb)

    def _decide(self, z: float, alpha: float, beta: float, resid: float, pa: float, pb: float) -> Intents:
        p = self.params
        numbers = {"z": z, "beta": beta, "alpha": alpha, "spread": resid, "price_a": pa, "price_b": pb}
        held = self.net_qty(self._a)
        if -1e-12 <= held <= 1e-12:  # flat (float residue of partial fills included)
            if self._blocked:
                if abs(z) < p.entry_z:
                    self._blocked = False
                return None
            if p.entry_z < abs(z) < p.stop_z and self.may_enter(self._a) and self.may_enter(self._b):
                return self._open(z, beta, pa, pb, numbers)
            return None
        long_spread = held > 0
        if (long_spread and z < -p.stop_z) or (not long_spread and z > p.stop_z):
            self._blocked = True
            return self._close_both(f"z {z:.3g} beyond stop ±{p.stop_z:g}: stop out of the spread", numbers)
        if (long_spread and z > -p.exit_z) or (not long_spread and z < p.exit_z):
            where = f"above -{p.exit_z:g}" if long_spread else f"below {p.exit_z:g}"
            side = "long" if long_spread else "short"
            why = f"z {z:.3g} is back {where}: the spread reverted, close the {side} spread"
            return self._close_both(why, numbers)
        return None

    def _open(self, z: float, beta: float, pa: float, pb: float, numbers: dict[str, float]) -> Intents:
        p = self.params
        qty_a = p.qty if p.qty > 0 else p.notional / pa
        qty_b = abs(beta) * qty_a * pa / pb
        if z > 0:  # spread rich: sell A, buy B (sell B too when beta < 0)
            side_a = Side.SELL
            what = f"z {z:.3g} > {p.entry_z:g}: short the spread"
        else:
            side_a = Side.BUY
            what = f"z {z:.3g} < -{p.entry_z:g}: long the spread"
        side_b = side_a.opposite if beta > 0 else side_a
        out = [self.intent(self._a, side_a, f"{what} (leg A {side_a.value})", numbers, qty=qty_a)]
        if qty_b > 0:
            out.append(self.intent(self._b, side_b, f"{what} (leg B {side_b.value}, beta {beta:.3g})",
                                   numbers, qty=qty_b))
        return out

    def _close_both(self, why: str, numbers: dict[str, float]) -> Intents:
        out: list[OrderIntent] = []
        for iid in (self._a, self._b):
            intent = self.close(iid, why, numbers)
            if intent is not None:
                out.append(intent)
        return out or None

    def state(self) -> dict[str, Any]:
        z = getattr(self, "z", math.nan)
        beta = getattr(self, "beta", math.nan)
        return {
            "z": z if math.isfinite(z) else None,
            "beta": beta if math.isfinite(beta) else None,
            "stood_aside": getattr(self, "_blocked", False),
        }


__all__ = ["Pairs", "PairsParams", "RollingOLS"]
