"""Shared set-up for strategy tests: a real clock, a real portfolio, and constructed feature values.

Strategy decisions depend only on the values of the features they read, so these tests set the
values directly (``Values``) to build each situation exactly; the engine tests run the real feature
engine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from omnid.clock import SimClock, TimeEvent
from omnid.model import Fill, Instrument, Side
from omnid.portfolio import Portfolio
from omnid.ports import ListRecorder
from omnid.strategies import STRATEGY_KINDS, Strategy, StrategyContext
from omnid.strategies.base import decode_params


class Value:
    """An indicator whose value a test sets."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = math.nan


class Values:
    """A feature source of settable values, keyed like the real one: (instrument, spec item)."""

    def __init__(self) -> None:
        self.made: dict[tuple[str, str], Value] = {}

    def indicator(self, instrument_id: str, spec: str) -> Value:
        return self.made.setdefault((instrument_id, spec), Value())

    def set(self, instrument_id: str, spec: str, value: float) -> None:
        self.indicator(instrument_id, spec).value = value


class Rig:
    """One strategy wired to a SimClock, a Portfolio, settable features and a ListRecorder."""

    def __init__(
        self,
        kind: str,
        instruments: Sequence[Instrument],
        params: dict[str, Any] | None = None,
        *,
        start_ns: int = 1_700_000_000 * 10**9,
        name: str = "s1",
        cash: float = 100_000.0,
    ) -> None:
        self.clock = SimClock(start_ns)
        self.portfolio = Portfolio(self.clock, initial_cash=cash, instruments=instruments)
        self.features = Values()
        self.recorder = ListRecorder()
        self.timer_events: list[tuple[str, TimeEvent]] = []
        self.handoffs: list[tuple[str, str, list[str]]] = []
        self.ctx = StrategyContext(
            clock=self.clock,
            portfolio=self.portfolio,
            features=self.features,
            recorder=self.recorder,
            instruments={i.id: i for i in instruments},
            timer_sink=lambda n, ev: self.timer_events.append((n, ev)),
            universe_sink=lambda s, t, ids: self.handoffs.append((s, t, list(ids))),
        )
        cls = STRATEGY_KINDS[kind]
        self.strategy: Strategy = cls(
            name, [i.id for i in instruments], decode_params(name, kind, cls.params_type, params or {}),
            self.ctx,
        )
        self._fills = 0

    def hold(self, instrument_id: str, qty: float, price: float) -> None:
        """Put a position on the book through a real fill."""
        self._fills += 1
        self.portfolio.apply_fill(
            Fill(fill_id=f"f{self._fills}", client_order_id=f"o{self._fills}", instrument_id=instrument_id,
                 strategy_id="test", side=Side.BUY if qty > 0 else Side.SELL, qty=abs(qty), price=price,
                 ts_event=self.clock.now_ns())
        )
