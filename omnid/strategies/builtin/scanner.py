"""``scanner``: every N minutes, rank a universe by momentum and hand the top K to a strategy.

Two scores: ``score = "mom"`` (the default) reads the feature engine's momentum score
``mom:N`` (``|Δprice %|`` over the last ``mom_period`` updates × the volume traded in them: the
most active movers); ``score = "return"`` is the signed log return over ``lookback_minutes``,
``ln(price now / price one lookback ago)``, with prices sampled at each scan (rising movers
only). A clock timer drives the scans, so backtests and live runs scan at the same instants.
Each scan is recorded as a :class:`ScanRanking` (every ranked instrument with its score and rank,
and the picks), then the picks go to the ``target`` strategy's ``on_universe`` hook: that strategy
takes new entries only in the picked instruments (and still manages positions it holds elsewhere).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import msgspec

from omnid.calendar import NS_PER_SECOND
from omnid.clock import TimeEvent
from omnid.model import Bar, Trade
from omnid.strategies.base import Intents, Strategy, StrategyParams
from omnid.strategies.registry import register


class ScannerParams(StrategyParams, frozen=True):
    #: Minutes between scans (aligned to multiples of it since the epoch).
    every_minutes: float = 15.0
    #: How many instruments to pick.
    top_k: int = 3
    #: "mom" (the feature engine's momentum score) or "return" (log return over the look-back).
    score: Literal["mom", "return"] = "mom"
    #: Updates (ticks or bars) in the "mom" score's window.
    mom_period: int = 10
    #: The "return" score's look-back in minutes (rounded up to whole scans).
    lookback_minutes: float = 60.0
    #: Pick only instruments whose score is above this (e.g. 0.0 for rising ones only).
    min_score: float = -math.inf
    #: The strategy that receives the picks ("" = rank and record only).
    target: str = ""

    def __post_init__(self) -> None:
        if not self.every_minutes > 0:
            raise ValueError(f"every_minutes must be > 0, got {self.every_minutes}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if self.mom_period < 1:
            raise ValueError(f"mom_period must be >= 1, got {self.mom_period}")
        if not self.lookback_minutes > 0:
            raise ValueError(f"lookback_minutes must be > 0, got {self.lookback_minutes}")


class ScanEntry(msgspec.Struct, frozen=True):
    instrument_id: str
    score: float
    rank: int


class ScanRanking(msgspec.Struct, kw_only=True):
    """One scan's outcome: every instrument with a score, best first, and the ones handed on."""

    scanner: str
    target: str
    ts_event: int
    score: str
    ranking: list[ScanEntry]
    selected: list[str]
    unscored: list[str]


@register
class Scanner(Strategy):
    kind = "scanner"
    params_type = ScannerParams

    params: ScannerParams

    def on_start(self) -> Intents:
        p = self.params
        self._last: dict[str, float] = {}
        steps = max(1, math.ceil(p.lookback_minutes / p.every_minutes - 1e-9))
        self._steps = steps
        #: Per instrument, the prices sampled at the last ``steps + 1`` scans (oldest first).
        self._history: dict[str, list[float]] = {iid: [] for iid in self.instruments}
        self._mom = (
            {iid: self.feature(iid, f"mom:{p.mom_period}") for iid in self.instruments}
            if p.score == "mom" else {}
        )
        self._score_name = f"mom_{p.mom_period}" if p.score == "mom" else f"return_{p.lookback_minutes:g}m"
        self.last_ranking: ScanRanking | None = None
        self.every("scan", int(p.every_minutes * 60 * NS_PER_SECOND))
        return None

    def on_trade(self, trade: Trade) -> Intents:
        self._last[trade.instrument_id] = trade.price
        return None

    def on_bar(self, bar: Bar) -> Intents:
        self._last[bar.instrument_id] = bar.close
        return None

    def on_price(self, instrument_id: str, price: float, ts: int) -> Intents:
        self._last[instrument_id] = price
        return None

    def on_timer(self, event: TimeEvent) -> Intents:
        self.scan(event.ts_scheduled)
        return None

    def scan(self, ts: int) -> ScanRanking:
        """Sample prices, score, rank, record, and hand the picks to the target."""
        p = self.params
        scored: list[tuple[float, str]] = []
        unscored: list[str] = []
        mom = self._mom
        for iid in self.instruments:
            if mom:
                v = mom[iid].value
                if math.isfinite(v):
                    scored.append((v, iid))
                else:
                    unscored.append(iid)
                continue
            hist = self._history[iid]
            price = self._last.get(iid)
            if price is not None and price > 0:
                hist.append(price)
                if len(hist) > self._steps + 1:
                    del hist[0]
            if len(hist) == self._steps + 1 and hist[0] > 0:
                scored.append((math.log(hist[-1] / hist[0]), iid))
            else:
                unscored.append(iid)
        scored.sort(key=lambda si: (-si[0], si[1]))  # best first; ties by name, for determinism
        ranking = [ScanEntry(iid, score, rank) for rank, (score, iid) in enumerate(scored, start=1)]
        selected = [e.instrument_id for e in ranking if e.score > p.min_score][: p.top_k]
        rec = ScanRanking(
            scanner=self.name,
            target=p.target,
            ts_event=ts,
            score=self._score_name,
            ranking=ranking,
            selected=selected,
            unscored=unscored,
        )
        self.last_ranking = rec
        self.ctx.recorder.record(rec)
        if p.target and ranking:
            self.ctx.hand_universe(self.name, p.target, selected)
        return rec

    def state(self) -> dict[str, Any]:
        rec = getattr(self, "last_ranking", None)
        if rec is None:
            return {"last_scan": None}
        return {"last_scan": rec.ts_event, "selected": rec.selected,
                "ranking": [[e.instrument_id, e.score] for e in rec.ranking]}
