"""The simulated market: deterministic, on the tick grid, sane spreads, U-shaped activity, visible moves."""

from __future__ import annotations

import math

from omnid.calendar import NS_PER_SECOND, US_EQUITY
from omnid.clock import SimClock
from omnid.model import BookSnapshot, Instrument, MarketEvent, Quote, Trade
from omnid.venues.sim.config import SimMarketConfig
from omnid.venues.sim.feed import SimMarketFeed, intraday_shape

T0 = 1_795_028_400 * NS_PER_SECOND  # 2026-11-18 (a Wednesday), 19:00 UTC = 14:00 New York

BTC = Instrument(symbol="BTCUSDT", venue="SIM", tick_size=0.01, lot_size=0.00001)
REL = Instrument(symbol="RELIANCE", venue="SIM", tick_size=0.05, lot_size=1.0)


def _run(cfg: SimMarketConfig, insts: list[Instrument], seconds: float, step: float = 0.1) -> list[MarketEvent]:
    out: list[MarketEvent] = []
    clock = SimClock(T0)
    feed = SimMarketFeed(cfg, insts, clock, out.append)
    t = T0
    for _ in range(int(seconds / step) + 1):
        feed.step(t)
        t += int(step * NS_PER_SECOND)
    return out


def _key(e: MarketEvent) -> tuple[object, ...]:
    if isinstance(e, Trade):
        return ("t", e.instrument_id, e.price, e.size, e.side, e.ts_event)
    if isinstance(e, Quote):
        return ("q", e.instrument_id, e.bid, e.ask, e.ts_event)
    assert isinstance(e, BookSnapshot)
    return ("b", e.instrument_id, len(e.bids), e.ts_event)


def test_same_seed_same_events_other_seed_differs() -> None:
    cfg = SimMarketConfig(seed=3, start_prices={"BTCUSDT": 60000.0, "RELIANCE": 2900.0})
    a = [_key(e) for e in _run(cfg, [BTC, REL], 30)]
    b = [_key(e) for e in _run(cfg, [BTC, REL], 30)]
    c = [_key(e) for e in _run(SimMarketConfig(seed=4, start_prices=cfg.start_prices), [BTC, REL], 30)]
    assert a == b and a != c and len(a) > 200


def test_prices_on_tick_grid_spread_and_lots() -> None:
    cfg = SimMarketConfig(spread_ticks=2, start_prices={"BTCUSDT": 60000.0, "RELIANCE": 2900.0})
    events = _run(cfg, [BTC, REL], 60)
    ticks = {"BTCUSDT.SIM": 0.01, "RELIANCE.SIM": 0.05}
    lots = {"BTCUSDT.SIM": 0.00001, "RELIANCE.SIM": 1.0}
    quotes = [e for e in events if isinstance(e, Quote)]
    trades = [e for e in events if isinstance(e, Trade)]
    books = [e for e in events if isinstance(e, BookSnapshot)]
    assert quotes and trades and books
    for q in quotes:
        tick = ticks[q.instrument_id]
        assert abs(q.bid / tick - round(q.bid / tick)) < 1e-6
        assert math.isclose(q.ask - q.bid, 2 * tick, rel_tol=1e-6)
        assert q.bid_size > 0 and q.ask_size > 0
        lot = lots[q.instrument_id]
        assert abs(q.bid_size / lot - round(q.bid_size / lot)) < 1e-6
    for b in books:
        assert len(b.asks) == cfg.book_levels
        assert all(x.price > y.price for x, y in zip(b.bids, b.bids[1:], strict=False))
    ts = [e.ts_event for e in events if e.instrument_id == "BTCUSDT.SIM"]
    assert ts == sorted(ts)


def test_rate_and_visible_moves_within_a_minute() -> None:
    cfg = SimMarketConfig(rate_hz=10.0, start_prices={"BTCUSDT": 60000.0})
    events = _run(cfg, [BTC], 60)
    n = sum(1 for e in events if not isinstance(e, BookSnapshot))
    assert 0.5 * 600 < n < 1.6 * 600  # ~10/s times the U-shape around it
    mids = [e.mid for e in events if isinstance(e, Quote)]
    assert max(mids) - min(mids) > 10 * 0.01  # moves well beyond a tick in a minute
    assert abs(math.log(mids[-1] / 60000.0)) < 0.2


def test_intraday_shape_is_u_and_off_session_is_quiet() -> None:
    assert intraday_shape(0.0) > 1.5 and intraday_shape(1.0) > 1.5 and intraday_shape(0.5) < 0.7
    spy = Instrument(symbol="SPY", venue="SIM", calendar=US_EQUITY)
    # T0 is 14:00 New York, in session; 3 hours later (17:00) it is closed.
    on = _run(SimMarketConfig(), [spy], 60)
    out: list[MarketEvent] = []
    feed = SimMarketFeed(SimMarketConfig(), [spy], SimClock(T0), out.append)
    t = T0 + 3 * 3600 * NS_PER_SECOND
    for _ in range(601):
        feed.step(t)
        t += NS_PER_SECOND // 10
    assert len(out) < len(on) / 4


def test_sink_errors_are_counted_not_raised() -> None:
    def bad(_e: MarketEvent) -> None:
        raise ValueError("boom")

    feed = SimMarketFeed(SimMarketConfig(), [BTC], SimClock(T0), bad)
    feed.step(T0)
    feed.step(T0 + NS_PER_SECOND)
    assert feed.sink_errors > 0 and feed.messages > 0
    st = feed.status()
    assert st.name == "sim" and st.instruments == ["BTCUSDT.SIM"]
