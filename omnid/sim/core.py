"""The daemon's own Engine, configured for a backtest and driven by a simulated clock.

Nothing here re-implements the core: :func:`omnid.engine.build_engine` builds features, portfolio,
risk gate, paper broker, router and order manager exactly as the daemon does; this module only
chooses the backtest's settings:

- entries are "all in" (``[risk.sizing] mode = "all_in"``, ``at_fill = true``): the risk gate
  checks an estimate at the decision, and the paper broker sizes the order again at its fill, the
  most whole units (lot size 1) whose notional plus commission the free funds cover at the fill
  price, exactly as backtesting.py sizes (a gap never levers up, nor leaves cash idle);
- the paper broker charges ``commission`` × notional per fill, without slippage, and fills a whole
  order at the next price (no volume participation limit), so a decision on a bar's close fills at
  the next bar's open;
- instruments trade 24/7 at venue ``SIM`` (a file says nothing of sessions);
- nothing is recorded to storage (a :class:`~omnid.ports.NullRecorder`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from omnid.clock import SimClock
from omnid.config import OmnidConfig
from omnid.engine import Engine, build_engine
from omnid.errors import StrategyError
from omnid.model import Bar, Fill, Instrument, Order, Side, Trade
from omnid.ports import NullRecorder, Recorder
from omnid.risk.config import RiskConfig, SizingConfig
from omnid.venues.paper.config import PaperConfig

#: The one strategy a backtest runs is registered under this name.
STRATEGY_NAME = "backtest"


class BacktestCore:
    """One Engine, one strategy, a SimClock; fills are also handed to ``on_fill``."""

    def __init__(
        self,
        instrument_ids: Sequence[str],
        *,
        strategy: str,
        params: Mapping[str, Any],
        cash: float,
        commission: float,
        start_ns: int,
        bar_interval_ns: int = 0,
        on_fill: Callable[[Fill], None] | None = None,
        recorder: Recorder | None = None,
        lot_size: float = 1.0,
        risk: RiskConfig | None = None,
    ) -> None:
        self.clock = SimClock(start_ns)
        self.instruments = [_instrument(iid, lot_size) for iid in instrument_ids]
        risk_cfg = risk if risk is not None else RiskConfig(
            sizing=SizingConfig(mode="all_in", commission_rate=commission, at_fill=True)
        )
        cfg = OmnidConfig(risk=risk_cfg)
        paper = PaperConfig(venue=self.instruments[0].venue, commission_rate=commission,
                            limit_by_volume=False)
        self.engine: Engine = build_engine(
            cfg,
            clock=self.clock,
            recorder=recorder if recorder is not None else NullRecorder(),
            cash=cash,
            paper=paper,
            strategies=[],
            default_source=bar_interval_ns or "tick",
            instruments=self.instruments,
            record_intents=recorder is not None,
        )
        self.engine.add_strategy(STRATEGY_NAME, strategy, list(instrument_ids), dict(params))
        if on_fill is not None:
            sink = on_fill

            def _listen(fill: Fill, order: Order | None) -> None:
                sink(fill)

            self.engine.manager.fill_listeners.append(_listen)
        #: Bound once: the replay loop calls these per event.
        self.on_trade = self.engine.on_trade
        self.on_bar: Callable[[Bar], None] = self.engine.on_bar

    def start(self) -> None:
        self.engine.start()

    def stop(self) -> None:
        """Stop the strategy (its ``on_stop`` intents still go through risk and the broker)."""
        self.engine.stop()

    def strategy_error(self) -> StrategyError | None:
        """Why the strategy was disabled, if it raised during the run."""
        return self.engine.runners[STRATEGY_NAME].as_error()

    def close_all(self, last_prices: Mapping[str, float]) -> None:
        """Close every open position at its last price, paying commission (``--close-at-end``).

        The engine's flatten sends the closing market orders through risk and the order manager;
        they then meet one final print per instrument at the last price one nanosecond later, so
        the paper broker fills them there like any other market order.
        """
        engine = self.engine
        paper = engine.paper
        if paper is None:
            return
        engine.flatten("backtest ended: close at the last price")
        ts = self.clock.now_ns() + 1
        self.clock.advance_to(ts)
        for iid in sorted(last_prices):
            px = last_prices[iid]
            if math.isfinite(px) and engine.portfolio.position_qty(iid) != 0.0:
                paper.on_trade(Trade(iid, px, 0.0, Side.NONE, ts, ts))
                engine.portfolio.mark(iid, px)


def _instrument(instrument_id: str, lot_size: float) -> Instrument:
    symbol, _, venue = instrument_id.rpartition(".")
    return Instrument(symbol=symbol or instrument_id, venue=venue or "SIM", tick_size=0.0,
                      lot_size=lot_size, min_qty=0.0, min_notional=0.0)
