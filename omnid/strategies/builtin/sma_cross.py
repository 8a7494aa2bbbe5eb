"""``sma_cross``: a fast/slow moving-average crossover, on ticks or bars.

A cross of the fast average above the slow one is a buy signal, below a sell signal. Only actual
crosses act: the first moment both averages are ready fixes the starting side without trading.
``mode = "long_only"`` buys on an up-cross and closes on a down-cross; ``"long_short"`` reverses on
every cross: it closes the open position, then opens the other side (two intents, in that order).
``qty = 0`` leaves sizing to the risk gate; a positive ``qty`` is a fixed order size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

from omnid.model import Bar, IntentAction, OrderIntent, Side, Trade
from omnid.strategies.base import Indicator, Intents, Strategy, StrategyParams
from omnid.strategies.registry import register


class SmaCrossParams(StrategyParams, frozen=True):
    #: Fast average period (events: ticks or bars).
    fast: int = 10
    #: Slow average period; must be longer than ``fast``.
    slow: int = 50
    #: "sma" (simple) or "ema" (exponential).
    kind: Literal["sma", "ema"] = "sma"
    #: "long_only" or "long_short".
    mode: Literal["long_only", "long_short"] = "long_only"
    #: Fixed order size; 0 = the risk gate's sizing rule.
    qty: float = 0.0

    def __post_init__(self) -> None:
        if self.fast < 1:
            raise ValueError(f"fast must be >= 1, got {self.fast}")
        if self.slow <= self.fast:
            raise ValueError(f"slow ({self.slow}) must be greater than fast ({self.fast})")
        if self.qty < 0 or not math.isfinite(self.qty):
            raise ValueError(f"qty must be >= 0, got {self.qty}")


class _Leg:
    """Per-instrument state: the two averages and which side the fast one was on (0 = unknown)."""

    __slots__ = ("fast", "side", "slow")

    def __init__(self, fast: Indicator, slow: Indicator) -> None:
        self.fast = fast
        self.slow = slow
        self.side = 0


@register
class SmaCross(Strategy):
    kind = "sma_cross"
    params_type = SmaCrossParams

    params: SmaCrossParams

    def on_start(self) -> Intents:
        p = self.params
        self._legs: dict[str, _Leg] = {
            iid: _Leg(self.feature(iid, f"{p.kind}:{p.fast}"), self.feature(iid, f"{p.kind}:{p.slow}"))
            for iid in self.instruments
        }
        self._long_short = p.mode == "long_short"
        self._fast_key = f"{p.kind}_{p.fast}"
        self._slow_key = f"{p.kind}_{p.slow}"
        return None

    def on_trade(self, trade: Trade) -> Intents:
        # The hot path (scenario b): two attribute reads and two comparisons when nothing crosses.
        leg = self._legs[trade.instrument_id]
        f = leg.fast.value
        s = leg.slow.value
        if f > s:
            if leg.side == 1:
                return None
            was, leg.side = leg.side, 1
        elif f < s:
            if leg.side == -1:
                return None
            was, leg.side = leg.side, -1
        else:  # equal, or NaN while warming up
            return None
        if was == 0:
            return None
        return self._cross(trade.instrument_id, leg.side, f, s, trade.price)

    def trade_hook(self, instrument_id: str) -> Callable[[Trade], Intents]:
        """:meth:`on_trade` for one instrument with its leg and averages bound (the engine asks for
        it after :meth:`on_start`): no dict lookup per tick. A subclass that overrides
        :meth:`on_trade`, or an instrument without a leg, gets :meth:`on_trade` itself."""
        legs: dict[str, _Leg] | None = getattr(self, "_legs", None)
        if type(self).on_trade is not SmaCross.on_trade or legs is None or instrument_id not in legs:
            return self.on_trade
        leg = legs[instrument_id]
        fast = leg.fast
        slow = leg.slow
        cross = self._cross

        def on_trade(trade: Trade) -> Intents:
            f = fast.value
            s = slow.value
            if f > s:
                if leg.side == 1:
                    return None
                was, leg.side = leg.side, 1
            elif f < s:
                if leg.side == -1:
                    return None
                was, leg.side = leg.side, -1
            else:  # equal, or NaN while warming up
                return None
            if was == 0:
                return None
            return cross(instrument_id, leg.side, f, s, trade.price)

        return on_trade

    def on_bar(self, bar: Bar) -> Intents:
        return self.on_price(bar.instrument_id, bar.close, bar.ts_event)

    def on_price(self, instrument_id: str, price: float, ts: int) -> Intents:
        leg = self._legs[instrument_id]
        f = leg.fast.value
        s = leg.slow.value
        side = 1 if f > s else -1 if f < s else 0
        if side in (0, leg.side):
            return None
        was, leg.side = leg.side, side
        if was == 0:
            return None
        return self._cross(instrument_id, side, f, s, price)

    def _cross(self, iid: str, direction: int, f: float, s: float, price: float) -> Intents:
        numbers = {self._fast_key: f, self._slow_key: s, "price": price}
        pos = self.net_qty(iid)
        if -1e-12 <= pos <= 1e-12:  # float residue of partial fills is flat
            pos = 0.0
        qty = self.params.qty
        out: list[OrderIntent] = []
        if direction > 0:
            # Up-cross: be long (both modes).
            what = f"fast {self._fast_key} {f:.6g} crossed above slow {self._slow_key} {s:.6g}"
            if pos < 0:
                out.append(self.intent(iid, Side.BUY, f"{what}: close short", dict(numbers, position=pos),
                                       qty=-pos, action=IntentAction.CLOSE))
            if pos <= 0:
                verb = "reverse to long" if pos < 0 else "go long"
                out.append(self.intent(iid, Side.BUY, f"{what}: {verb}", numbers, qty=qty))
        else:
            # Down-cross: be flat (long_only) or short (long_short).
            what = f"fast {self._fast_key} {f:.6g} crossed below slow {self._slow_key} {s:.6g}"
            if pos > 0:
                out.append(self.intent(iid, Side.SELL, f"{what}: close long", dict(numbers, position=pos),
                                       qty=pos, action=IntentAction.CLOSE))
            if pos >= 0 and self._long_short:
                verb = "reverse to short" if pos > 0 else "go short"
                out.append(self.intent(iid, Side.SELL, f"{what}: {verb}", numbers, qty=qty))
        if out and out[-1].action is IntentAction.OPEN and not self.may_enter(iid):
            out.pop()
        return out or None

    def state(self) -> dict[str, Any]:
        return {
            iid: {"fast": leg.fast.value, "slow": leg.slow.value, "side": leg.side}
            for iid, leg in getattr(self, "_legs", {}).items()
        }
