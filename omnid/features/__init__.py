"""omnid.features: incremental indicators and the feature engine strategies read.

Set-up (once, at strategy start)::

    engine = FeatureEngine(instruments)                     # or FeatureEngine.add_instrument(...)
    rsi = engine.ensure("BTCUSDT.BINANCE", "rsi:14", source="1m")    # built from trades, 1m bars
    vwap = engine.ensure("BTCUSDT.BINANCE", "vwap")                  # session VWAP, every trade
    macd = engine.ensure("BTCUSDT.BINANCE", "macd:12:26:9", source="5m")

Run time (the hot path, no lookups, no allocation)::

    if rsi.ready and rsi.value < 30 and price > vwap.value: ...
    macd.value, macd.signal, macd.hist          # extra outputs are attributes
    engine.value("BTCUSDT.BINANCE", "rsi_14@1m")  # by column name, for slower paths
    engine.indicator("BTCUSDT.BINANCE", "rsi:14@1m")  # ensure() with the source in the string

The engine is driven by whoever owns the event loop (backtester or daemon)::

    bar = engine.on_trade(trade)   # tick indicators + bar builders; a bar this trade completed
    engine.on_bar(bar)             # bars supplied directly (history, a venue's kline stream)
    engine.on_quote(quote)         # level-1 book imbalance
    engine.on_book(snapshot_or_delta)
    engine.on_time(now_ns)         # from a timer: close bars of quiet markets

``source`` is ``"tick"`` (every trade) or a bar interval ``"1s"``..``"1d"``; bars are aligned to
multiples of the interval since the epoch (UTC) and an empty interval produces no bar. Every
indicator's ``value`` is NaN until ``ready``. Non-finite input raises
:class:`~omnid.errors.DataError` naming the instrument and field, before any state changes, so a bad
tick never leaks NaN into a strategy. Spec strings and column names: :mod:`omnid.features.spec`;
conventions (TA-Lib's seeding): :mod:`omnid.features.indicators`.
"""

from omnid.features.bars import BarBuilder, format_interval, parse_interval
from omnid.features.book import LocalBook
from omnid.features.engine import TICK, FeatureEngine, parse_source
from omnid.features.indicators import (
    ATR,
    EMA,
    MACD,
    RSI,
    SMA,
    BBands,
    BookImbalance,
    Correlation,
    Indicator,
    Momentum,
    RealisedVol,
    RollingVWAP,
    SessionVWAP,
)
from omnid.features.ring import Ring
from omnid.features.spec import IndicatorSpec, parse_item, parse_spec

__all__ = [
    "ATR",
    "EMA",
    "MACD",
    "RSI",
    "SMA",
    "TICK",
    "BBands",
    "BarBuilder",
    "BookImbalance",
    "Correlation",
    "FeatureEngine",
    "Indicator",
    "IndicatorSpec",
    "LocalBook",
    "Momentum",
    "RealisedVol",
    "Ring",
    "RollingVWAP",
    "SessionVWAP",
    "format_interval",
    "parse_interval",
    "parse_item",
    "parse_source",
    "parse_spec",
]
