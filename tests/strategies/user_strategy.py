"""A user's own strategy, loaded by config as ``kind = "tests.strategies.user_strategy:BuyOnce"``."""

from __future__ import annotations

from omnid.model import Side
from omnid.strategies import Intents, Strategy, StrategyParams


class BuyOnceParams(StrategyParams, frozen=True):
    qty: float = 1.0


class BuyOnce(Strategy):
    """Buys ``qty`` on the first price it sees, then holds."""

    kind = "buy_once"
    params_type = BuyOnceParams
    params: BuyOnceParams

    def on_price(self, instrument_id: str, price: float, ts: int) -> Intents:
        if self.net_qty(instrument_id) != 0.0:
            return None
        return [self.intent(instrument_id, Side.BUY, "first price seen: buy once", {"price": price},
                            qty=self.params.qty)]


NotAStrategy = int
