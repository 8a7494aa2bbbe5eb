"""The FeatureEngine: bars from trades, engine-fed TA-Lib parity, sessions, books, bad input, memory."""

from __future__ import annotations

import gc
import math
import tracemalloc

import numpy as np
import pytest
import talib
from omnid.calendar import NSE_EQUITY, to_ns
from omnid.errors import ConfigError, DataError
from omnid.features import FeatureEngine, parse_interval
from omnid.features.config import FeaturesConfig
from omnid.model import Bar, BookDelta, BookLevel, BookSnapshot, Instrument, Quote, Side, Trade

from tests.features.series import assert_parity, gbm

S = 1_000_000_000
MIN = 60 * S
DAY = 86_400 * S
T0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z
BTC = Instrument("BTCUSDT", "SIM")
ETH = Instrument("ETHUSDT", "SIM")


def trade(price: float, size: float, ts: int, iid: str = BTC.id) -> Trade:
    return Trade(iid, price, size, Side.BUY, ts, ts)


def bar(i: int, h: float, lo: float, c: float, v: float, iid: str = BTC.id, iv: int = DAY) -> Bar:
    return Bar(iid, iv, T0 + i * iv, c, h, lo, c, v, T0 + (i + 1) * iv, T0 + (i + 1) * iv)


def test_engine_bar_source_matches_talib() -> None:
    """Bars fed to the engine give TA-Lib's numbers, read through the objects `ensure` returned."""
    s = gbm(400)
    eng = FeatureEngine([BTC])
    inds = {spec: eng.ensure(BTC.id, spec, "1d") for spec in
            ("sma:10", "ema:20", "rsi:14", "atr:14", "macd:12:26:9", "bbands:20:2")}
    out: dict[str, np.ndarray] = {k: np.full(400, np.nan) for k in
                                  ("sma", "ema", "rsi", "atr", "macd", "sig", "hist", "up", "lo")}
    for i in range(400):
        eng.on_bar(bar(i, s.high[i], s.low[i], s.close[i], s.volume[i]))
        for key, ind, attr in (("sma", "sma:10", "value"), ("ema", "ema:20", "value"),
                               ("rsi", "rsi:14", "value"), ("atr", "atr:14", "value"),
                               ("macd", "macd:12:26:9", "value"), ("sig", "macd:12:26:9", "signal"),
                               ("hist", "macd:12:26:9", "hist"), ("up", "bbands:20:2", "upper"),
                               ("lo", "bbands:20:2", "lower")):
            if inds[ind].ready:
                out[key][i] = getattr(inds[ind], attr)
    c = s.close
    assert_parity(out["sma"], talib.SMA(c, 10))
    assert_parity(out["ema"], talib.EMA(c, 20))
    assert_parity(out["rsi"], talib.RSI(c, 14))
    assert_parity(out["atr"], talib.ATR(s.high, s.low, c, 14))
    m, sig, hist = talib.MACD(c, 12, 26, 9)
    assert_parity(out["macd"], m)
    assert_parity(out["sig"], sig)
    assert_parity(out["hist"], hist)
    up, _, lo = talib.BBANDS(c, 20, 2, 2, 0)
    assert_parity(out["up"], up)
    assert_parity(out["lo"], lo)
    assert eng.value(BTC.id, "macd_12_26_9_signal@1d") == pytest.approx(sig[-1], rel=1e-9)


def _trades(n: int, seed: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Trades over ~2 hours with whole empty minutes in between."""
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(2 * S, n).astype(np.int64)
    gaps[n // 3] = 7 * MIN  # a quiet spell: several empty 1m intervals
    ts = T0 + 17 * S + np.cumsum(gaps)
    price = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    size = rng.exponential(1.0, n)
    return ts, price, size


def test_bars_built_from_trades_are_aligned_and_skip_empty_intervals() -> None:
    ts, price, size = _trades(3000)
    eng = FeatureEngine([BTC])
    eng.ensure(BTC.id, "sma:3", "1m")
    bars = [b for t, p, q in zip(ts.tolist(), price.tolist(), size.tolist(), strict=True)
            if (b := eng.on_trade(trade(p, q, t))) is not None]
    starts = ts - ts % MIN
    uniq = np.unique(starts)[:-1]  # the last minute is still open
    assert [b.ts_open for b in bars] == uniq.tolist()
    assert all(b.ts_event == b.ts_open + MIN and b.interval_ns == MIN for b in bars)
    assert np.diff(uniq).max() > MIN  # there were empty minutes, and they made no bars
    for b in bars[:50] + bars[-50:]:
        m = starts == b.ts_open
        assert (b.open, b.high, b.low, b.close) == (price[m][0], price[m].max(), price[m].min(), price[m][-1])
        assert b.volume == pytest.approx(size[m].sum(), rel=1e-12)


def test_trades_to_bars_to_indicators_match_talib() -> None:
    """RSI/EMA on 1m bars built from trades equal TA-Lib over those bars' closes."""
    ts, price, size = _trades(6000, seed=8)
    eng = FeatureEngine([BTC])
    rsi = eng.ensure(BTC.id, "rsi:14", "1m")
    atr = eng.ensure(BTC.id, "atr:5", "1m")
    tick_ema = eng.ensure(BTC.id, "ema:50")  # tick source
    closes, highs, lows, rsis, atrs = [], [], [], [], []
    for t, p, q in zip(ts.tolist(), price.tolist(), size.tolist(), strict=True):
        b = eng.on_trade(trade(p, q, t))
        if b is not None:
            closes.append(b.close)
            highs.append(b.high)
            lows.append(b.low)
            rsis.append(rsi.value if rsi.ready else math.nan)
            atrs.append(atr.value if atr.ready else math.nan)
    c = np.array(closes)
    assert_parity(np.array(rsis), talib.RSI(c, 14))
    assert_parity(np.array(atrs), talib.ATR(np.array(highs), np.array(lows), c, 5))
    assert tick_ema.value == pytest.approx(talib.EMA(price, 50)[-1], rel=1e-9)


def test_several_intervals_complete_together() -> None:
    eng = FeatureEngine([BTC])
    eng.ensure(BTC.id, "sma:2", "1m")
    eng.ensure(BTC.id, "sma:2", "5m")
    eng.on_trade(trade(1.0, 1.0, T0 + 10 * S))
    first = eng.on_trade(trade(2.0, 1.0, T0 + 5 * MIN))
    assert first is not None and first.interval_ns == MIN
    assert [b.interval_ns for b in eng.completed] == [MIN, 5 * MIN]
    assert eng.on_time(T0 + 6 * MIN)[0].close == 2.0  # a quiet market still closes its bar
    assert eng.on_time(T0 + 6 * MIN) == []


def test_supplied_bars_then_trades_do_not_double_count() -> None:
    """History bars warm up an interval; trades inside them are ignored; later trades build on."""
    eng = FeatureEngine([BTC])
    sma = eng.ensure(BTC.id, "sma:2", "1m")
    eng.on_bar(bar(0, 10, 10, 10, 1, iv=MIN))
    eng.on_bar(bar(0, 99, 99, 99, 1, iv=MIN))  # duplicate: ignored
    assert eng.on_trade(trade(50.0, 1.0, T0 + 30 * S)) is None  # inside the supplied bar
    eng.on_trade(trade(20.0, 1.0, T0 + MIN + S))
    b = eng.on_trade(trade(30.0, 1.0, T0 + 2 * MIN))
    assert b is not None and b.close == 20.0 and b.open == 20.0
    assert sma.value == 15.0


def test_session_vwap_resets_at_the_session_open() -> None:
    """NSE session VWAP: pre-open trades belong to the previous session; 09:15 IST starts afresh."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    ins = Instrument("RELIANCE", "NSE", calendar=NSE_EQUITY)
    eng = FeatureEngine([ins])
    vwap = eng.ensure(ins.id, "vwap")
    ist = ZoneInfo("Asia/Kolkata")

    def at(day: int, hh: int, mm: int) -> int:
        return to_ns(dt.datetime(2026, 1, day, hh, mm, tzinfo=ist))

    eng.on_trade(trade(100.0, 1.0, at(5, 9, 20), ins.id))  # Monday
    eng.on_trade(trade(110.0, 3.0, at(5, 15, 0), ins.id))
    assert vwap.value == pytest.approx((100 + 330) / 4)
    eng.on_trade(trade(90.0, 4.0, at(6, 9, 0), ins.id))  # Tuesday pre-open: still Monday's session
    assert vwap.value == pytest.approx((100 + 330 + 360) / 8)
    eng.on_trade(trade(120.0, 2.0, at(6, 9, 15), ins.id))  # the open: reset
    assert vwap.value == 120.0 and vwap.session_start == at(6, 9, 15)
    eng.on_trade(trade(100.0, 2.0, at(6, 10, 0), ins.id))
    assert vwap.value == 110.0


def test_crypto_session_vwap_resets_at_utc_midnight() -> None:
    eng = FeatureEngine([BTC])
    vwap = eng.ensure(BTC.id, "vwap")
    eng.on_trade(trade(10.0, 1.0, T0 + DAY - S))
    eng.on_trade(trade(20.0, 1.0, T0 + DAY))
    assert vwap.value == 20.0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_input_rejected_and_not_propagated(bad: float) -> None:
    eng = FeatureEngine([BTC])
    sma = eng.ensure(BTC.id, "sma:2")
    rsi = eng.ensure(BTC.id, "rsi:2", "1m")
    for i, p in enumerate((1.0, 2.0, 3.0)):
        eng.on_trade(trade(p, 1.0, T0 + i * S))
    before = sma.value
    with pytest.raises(DataError, match=r"BTCUSDT\.SIM: trade price") as ei:
        eng.on_trade(trade(bad, 1.0, T0 + 5 * S))
    assert ei.value.context["field"] == "price" and ei.value.context["instrument_id"] == BTC.id
    with pytest.raises(DataError) as ei:
        eng.on_trade(trade(1.0, bad, T0 + 5 * S))
    assert ei.value.context["field"] == "size"
    with pytest.raises(DataError, match="non-finite close"):
        eng.on_bar(Bar(BTC.id, MIN, T0 + 9 * MIN, 1.0, 1.0, 1.0, bad, 1.0, 0, 0))
    with pytest.raises(DataError, match="quote sizes"):
        eng.ensure(BTC.id, "obi:1")
        eng.on_quote(Quote(BTC.id, 1.0, 2.0, bad, 1.0, 0, 0))
    with pytest.raises(DataError, match="book bid level"):
        eng.on_book(BookSnapshot(BTC.id, [BookLevel(bad, 1.0)], [], 0, 0))
    assert sma.value == before
    assert not rsi.ready or math.isfinite(rsi.value)
    eng.on_trade(trade(5.0, 1.0, T0 + 6 * S))
    assert sma.value == 4.0


def test_book_imbalance_from_snapshots_deltas_and_quotes() -> None:
    eng = FeatureEngine([BTC], book_levels=3)
    obi = eng.ensure(BTC.id, "obi:2")
    lv = BookLevel
    eng.on_book(BookSnapshot(BTC.id, [lv(99, 1), lv(98, 2), lv(97, 50)], [lv(101, 1), lv(102, 1)], 0, 0))
    assert obi.value == pytest.approx((3 - 2) / 5)
    eng.on_book(BookDelta(BTC.id, [lv(99, 0), lv(99.5, 4)], [lv(100.5, 3)], 1, 1))
    book = eng.features(BTC.id).book
    assert book.bids == [(99.5, 4), (98, 2), (97, 50)]
    assert book.asks == [(100.5, 3), (101, 1), (102, 1)]
    assert obi.value == pytest.approx((6 - 4) / 10)
    eng.on_book(BookDelta(BTC.id, [lv(99.9, 1)], [], 2, 2))  # a 4th bid level: the worst drops
    assert book.bids == [(99.9, 1), (99.5, 4), (98, 2)]
    eng.on_quote(Quote(BTC.id, 99.9, 100.5, 1.0, 3.0, 3, 3))
    assert obi.value == pytest.approx(-0.5)


def test_correlation_between_two_instruments_on_bars() -> None:
    a = gbm(200, seed=1).close
    b = a * 0.5 + gbm(200, seed=2).close * 0.5
    eng = FeatureEngine([BTC, ETH])
    corr = eng.ensure(BTC.id, f"corr:{ETH.id}:20", "1d")
    for i in range(200):
        eng.on_bar(bar(i, a[i], a[i], a[i], 1.0))
        eng.on_bar(bar(i, b[i], b[i], b[i], 1.0, iid=ETH.id))
    ref = talib.CORREL(a[1:] / a[:-1] - 1, b[1:] / b[:-1] - 1, 20)[-1]
    assert corr.value == pytest.approx(ref, rel=1e-9)
    with pytest.raises(ConfigError, match="corr pairs bars"):
        eng.ensure(BTC.id, f"corr:{ETH.id}:20")


def test_api_ensure_value_and_errors() -> None:
    eng = FeatureEngine([BTC])
    a = eng.ensure(BTC.id, "rsi:14", "1m")
    assert eng.ensure(BTC.id, "rsi", source="1m") is a  # defaults give the same item
    assert eng.indicator(BTC.id, "rsi:14@1m") is a
    assert eng.indicator(BTC.id, "ema:5") is eng.ensure(BTC.id, "ema:5", "tick")
    assert math.isnan(eng.value(BTC.id, "rsi_14@1m"))
    assert [c for c, _, _ in eng.columns(BTC.id)] == ["rsi_14@1m", "ema_5@tick"]
    with pytest.raises(ConfigError, match="no such feature"):
        eng.value(BTC.id, "rsi_15@1m")
    with pytest.raises(ConfigError, match="unknown instrument"):
        eng.ensure("NOPE.SIM", "rsi:14")
    with pytest.raises(ConfigError, match="bad interval"):
        eng.ensure(BTC.id, "rsi:14", "2w")
    with pytest.raises(ConfigError, match=r"outside 1s\.\.1d"):
        parse_interval("2d")
    with pytest.raises(ConfigError, match="obi reads the order book"):
        eng.ensure(BTC.id, "obi:5", "1m")
    assert eng.on_trade(trade(1.0, 1.0, T0, iid="OTHER.SIM")) is None  # not watched: ignored


def test_from_config() -> None:
    cfg = FeaturesConfig(indicators={"tick": "vwap,obi:5", "1m": "rsi:14,ema:20"})
    eng = FeatureEngine.from_config(cfg, [BTC, ETH])
    assert {c for c, _, _ in eng.columns(ETH.id)} == {"vwap@tick", "obi_5@tick", "rsi_14@1m", "ema_20@1m"}


def test_memory_per_instrument_is_bounded() -> None:
    """Memory after 20k trades and after 60k more is the same (rings are fixed; bars not kept)."""
    eng = FeatureEngine([BTC])
    eng.ensure_all(BTC.id, "sma:50,ema:20,rsi:14,atr:14,macd,bbands,vwap,vwap:100,rv:30,mom:10,obi:5")
    eng.ensure_all(BTC.id, "sma:50,rsi:14,macd,bbands,vwap:20", "1s")
    rng = np.random.default_rng(0)
    prices = (100 * np.exp(np.cumsum(rng.normal(0, 1e-4, 80_000)))).tolist()
    lv = BookLevel

    def feed(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            eng.on_trade(Trade(BTC.id, prices[i], 1.0, Side.BUY, T0 + i * 300_000_000, 0))
            if i % 50 == 0:
                eng.on_book(BookDelta(BTC.id, [lv(prices[i] - 0.01 * (i % 2000), 1.0)],
                                      [lv(prices[i] + 0.01 * (i % 2000), 1.0)], 0, 0))

    feed(0, 20_000)
    gc.collect()
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    feed(20_000, 80_000)
    gc.collect()
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # 60k trades and 1.2k book updates later: growth only from the capped book filling up.
    assert after - base < 150_000, after - base
