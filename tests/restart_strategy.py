"""A strategy for the crash tests that keeps limit orders working: the daemon loads it by
``kind = "tests.restart_strategy:RestingLimits"`` (a ``module:Class`` kind).

Every ``every``-th price it sends a limit order on alternating sides, cycling the distance from the
price through ``offsets_bps``: at the price (fills at once), near it (fills soon) and far from it
(rests for a long time). So at a random kill there are usually orders working, partly filled or
not, and positions that change.
"""

from __future__ import annotations

from omnid.model import OrderType, Side
from omnid.strategies.base import Intents, Strategy, StrategyParams


class RestingParams(StrategyParams, frozen=True):
    #: Act on every n-th price.
    every: int = 3
    #: Order size.
    qty: float = 0.001
    #: Distances of the limit from the price, in basis points, used in turn.
    offsets_bps: tuple[float, ...] = (0.0, 2.0, 40.0)


class RestingLimits(Strategy):
    kind = "resting_limits"
    params_type = RestingParams

    params: RestingParams

    def on_start(self) -> Intents:
        self._n = 0
        return None

    def on_price(self, instrument_id: str, price: float, ts: int) -> Intents:
        self._n += 1
        p = self.params
        if self._n % p.every:
            return None
        k = self._n // p.every
        side = Side.BUY if k % 2 == 0 else Side.SELL
        off = p.offsets_bps[(k // 2) % len(p.offsets_bps)] / 10_000.0
        limit = price * (1.0 - side.sign * off)
        return [self.intent(
            instrument_id, side, f"resting limit {off * 1e4:g} bps from {price:g}", {"price": price},
            qty=p.qty, order_type=OrderType.LIMIT, limit_price=limit,
        )]
