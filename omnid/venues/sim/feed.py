"""A simulated live market feed: the embedded default's data, with no network.

Each instrument follows a jump-diffusion (geometric Brownian motion plus Poisson jumps, Merton
style) on log price, run ``speed`` times faster than the wall so moves are visible in a minute.
The number of events per step is Poisson with a mean shaped like a real trading day: a U (busy
at the open and the close, quiet at midday) inside the instrument's session, a trickle outside it.
Quotes sit on the tick grid with a spread of a few ticks; trades print at the bid or ask with an
aggressor side; a :class:`BookSnapshot` every few quotes feeds order-book imbalance features.

The generator (:meth:`SimMarketFeed.step`) is synchronous and deterministic for a seed and a
sequence of step times, so tests drive it directly; :meth:`SimMarketFeed.run` calls it from the
loop with the clock's time. Events go to ``sink`` (the engine's ``on_event``); a sink that raises
is logged and counted, never fatal to the feed.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import deque
from collections.abc import Callable

import structlog

from omnid.calendar import NS_PER_SECOND
from omnid.clock import Clock
from omnid.model import BookLevel, BookSnapshot, Instrument, MarketEvent, Quote, Side, Trade
from omnid.ops.protocol import FeedStatus
from omnid.venues.sim.config import SimMarketConfig

log = structlog.get_logger("omnid.sim")

SECONDS_PER_YEAR = 365.0 * 86_400.0
_TRADE_SHARE = 0.4  # of events; the rest are quotes
_OFF_SESSION_SHAPE = 0.15
_TYPICAL_NOTIONAL = 5_000.0


def intraday_shape(frac: float) -> float:
    """Relative activity at ``frac`` (0..1) through a session: a U averaging about 1."""
    x = min(max(frac, 0.0), 1.0) - 0.5
    return 0.55 + 5.4 * x * x  # 1.9 at the open/close, 0.55 at midday, mean ≈ 1.0


class _SimInstrument:
    __slots__ = (
        "bounds",
        "bounds_checked_ns",
        "iid",
        "inst",
        "last_quote",
        "log_px",
        "quotes",
        "rng",
        "trade_seq",
        "typical_qty",
    )

    def __init__(self, inst: Instrument, start_px: float, seed: int) -> None:
        self.inst = inst
        self.iid = inst.id
        self.log_px = math.log(start_px)
        self.rng = random.Random(seed)
        self.trade_seq = 0
        self.quotes = 0
        self.last_quote: Quote | None = None
        self.bounds: tuple[int, int] | None = None
        self.bounds_checked_ns = -1
        qty = _TYPICAL_NOTIONAL / start_px
        self.typical_qty = max(inst.round_qty(qty), inst.lot_size, inst.min_qty)

    def shape(self, now_ns: int) -> float:
        # Session bounds change at most daily: recheck once a second, not per event.
        if now_ns - self.bounds_checked_ns >= NS_PER_SECOND or now_ns < self.bounds_checked_ns:
            self.bounds = self.inst.calendar.session_bounds(now_ns)
            self.bounds_checked_ns = now_ns
        b = self.bounds
        if b is None or not b[0] <= now_ns < b[1]:
            return _OFF_SESSION_SHAPE
        return intraday_shape((now_ns - b[0]) / (b[1] - b[0]))


class SimMarketFeed:
    """Trades, quotes and book snapshots for every instrument of the ``SIM`` venue."""

    name = "sim"

    def __init__(
        self,
        cfg: SimMarketConfig,
        instruments: list[Instrument],
        clock: Clock,
        sink: Callable[[MarketEvent], None],
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self.sink = sink
        self.instruments = [
            _SimInstrument(inst, cfg.start_prices.get(inst.symbol, 100.0), cfg.seed * 1_000_003 + i)
            for i, inst in enumerate(instruments)
        ]
        self.state = "stopped"
        self.messages = 0
        self.sink_errors = 0
        self.last_ns: int | None = None
        self._last_step_ns: int | None = None
        self._rate_window: deque[tuple[int, int]] = deque(maxlen=64)
        self._stop = asyncio.Event()
        self._sigma = cfg.volatility
        self._jump_rate_per_s = cfg.jumps_per_day / 86_400.0

    # ---------------------------------------------------------------------------------------------
    # Generation (synchronous, deterministic)

    def step(self, now_ns: int) -> int:
        """Generate the events of the wall time since the previous step; return how many."""
        prev = self._last_step_ns
        self._last_step_ns = now_ns
        if prev is None or now_ns <= prev:
            return 0
        dt_s = (now_ns - prev) / NS_PER_SECOND
        count = 0
        for si in self.instruments:
            mean = self.cfg.rate_hz * dt_s * si.shape(now_ns)
            n = _poisson(si.rng, mean)
            if n == 0 and si.last_quote is None:
                n = 1  # every instrument shows a price at once
            for k in range(n):
                ts = prev + (now_ns - prev) * (k + 1) // n
                self._event(si, ts, now_ns, dt_s / n)
            count += n
        self.messages += count
        if count:
            self.last_ns = now_ns
        self._rate_window.append((now_ns, count))
        return count

    def _event(self, si: _SimInstrument, ts: int, now_ns: int, dt_s: float) -> None:
        rng = si.rng
        sim_dt = dt_s * self.cfg.speed
        move = self._sigma * math.sqrt(sim_dt / SECONDS_PER_YEAR) * rng.gauss(0.0, 1.0)
        if self._jump_rate_per_s and rng.random() < self._jump_rate_per_s * sim_dt:
            move += rng.gauss(0.0, self.cfg.jump_sigma)
        si.log_px += move
        inst = si.inst
        tick = inst.tick_size
        half = self.cfg.spread_ticks * tick * 0.5
        mid = math.exp(si.log_px)
        bid = inst.round_price(max(mid - half, tick), Side.BUY)
        ask = inst.round_price(bid + self.cfg.spread_ticks * tick)
        if si.last_quote is None or rng.random() >= _TRADE_SHARE:
            q = Quote(
                si.iid,
                bid,
                ask,
                self._size(si),
                self._size(si),
                ts,
                now_ns,
            )
            si.last_quote = q
            si.quotes += 1
            self._emit(q)
            every = self.cfg.book_every
            if every and si.quotes % every == 0:
                self._emit(self._book(si, bid, ask, ts, now_ns))
            return
        side = Side.BUY if move > 0 or (move == 0 and rng.random() < 0.5) else Side.SELL
        si.trade_seq += 1
        self._emit(
            Trade(
                si.iid,
                ask if side is Side.BUY else bid,
                self._size(si),
                side,
                ts,
                now_ns,
                f"S{si.trade_seq}",
            )
        )

    def _size(self, si: _SimInstrument) -> float:
        raw = si.typical_qty * si.rng.lognormvariate(0.0, 0.8)
        return max(si.inst.round_qty(raw), si.typical_qty if si.inst.lot_size >= 1 else si.inst.lot_size)

    def _book(self, si: _SimInstrument, bid: float, ask: float, ts: int, now_ns: int) -> BookSnapshot:
        tick = si.inst.tick_size
        levels = self.cfg.book_levels
        bids = [BookLevel(si.inst.round_price(bid - i * tick), self._size(si)) for i in range(levels)]
        asks = [BookLevel(si.inst.round_price(ask + i * tick), self._size(si)) for i in range(levels)]
        bids = [lv for lv in bids if lv.price > 0]
        return BookSnapshot(si.iid, bids, asks, ts, now_ns, update_id=si.quotes)

    def _emit(self, event: MarketEvent) -> None:
        try:
            self.sink(event)
        except Exception:
            self.sink_errors += 1
            log.exception("sim feed: the sink raised", instrument_id=getattr(event, "instrument_id", ""))

    # ---------------------------------------------------------------------------------------------
    # Live driving

    async def run(self) -> None:
        """Generate until :meth:`stop`, one step every ``step_s`` of wall time."""
        self._stop.clear()
        self.state = "connected"
        log.info("feed connected", feed=self.name, instruments=[s.iid for s in self.instruments])
        self.step(self.clock.now_ns())
        try:
            while not self._stop.is_set():
                try:
                    await asyncio.wait_for(self._stop.wait(), self.cfg.step_s)
                except TimeoutError:
                    self.step(self.clock.now_ns())
        finally:
            self.state = "stopped"

    def stop(self) -> None:
        self._stop.set()

    def last_prices(self) -> dict[str, float]:
        return {s.iid: s.last_quote.mid for s in self.instruments if s.last_quote is not None}

    def status(self) -> FeedStatus:
        now = self.clock.now_ns()
        window = [(t, n) for t, n in self._rate_window if now - t <= 5 * NS_PER_SECOND]
        rate = 0.0
        if len(window) >= 2:
            span = (window[-1][0] - window[0][0]) / NS_PER_SECOND
            rate = sum(n for _, n in window[1:]) / span if span > 0 else 0.0
        return FeedStatus(
            name=self.name,
            state=self.state,
            messages=self.messages,
            rate=round(rate, 2),
            last_age_s=None if self.last_ns is None else round((now - self.last_ns) / NS_PER_SECOND, 3),
            instruments=[s.iid for s in self.instruments],
        )


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth for small means, a rounded normal for large ones)."""
    if mean <= 0:
        return 0
    if mean > 30:
        return max(round(rng.gauss(mean, math.sqrt(mean))), 0)
    limit = math.exp(-mean)
    k, p = 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k
