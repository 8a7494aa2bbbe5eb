"""The small parts: ring buffer, spec parsing and column names, bar intervals, the local book."""

from __future__ import annotations

import math

import pytest
from omnid.errors import ConfigError, DataError
from omnid.features import BarBuilder, LocalBook, Ring, format_interval, parse_interval, parse_spec
from omnid.model import BookDelta, BookLevel, BookSnapshot

S = 1_000_000_000


def test_ring_keeps_the_last_values_in_fixed_memory() -> None:
    r = Ring(3)
    assert [r.push(x) for x in (1.0, 2.0, 3.0, 4.0, 5.0)] == [0.0, 0.0, 0.0, 1.0, 2.0]
    assert r.values() == [3.0, 4.0, 5.0] and r.full
    assert (r.last(), r.last(2)) == (5.0, 3.0) and math.isnan(r.last(3))
    r.clear()
    assert r.values() == [] and r.count == 0
    with pytest.raises(ConfigError, match="capacity >= 1"):
        Ring(0)


def test_spec_columns_and_defaults() -> None:
    specs = parse_spec("sma:10, EMA:20,rsi,atr:14,macd,bbands:20:2,vwap,vwap:50,rv:20:252,mom,obi:3,"
                       "corr:ETH.SIM:30,sma:10")
    names = [c for s in specs for c, _ in s.build().columns()]
    assert names == [
        "sma_10", "ema_20", "rsi_14", "atr_14", "macd_12_26_9", "macd_12_26_9_signal",
        "macd_12_26_9_hist", "bbands_20_2_upper", "bbands_20_2_middle", "bbands_20_2_lower", "vwap",
        "vwap_50", "rv_20", "mom_10", "obi_3", "corr_ETH.SIM_30",
    ]
    assert parse_spec("bbands:10:2.5")[0].build().columns()[0][0] == "bbands_10_2.5_upper"


def test_rv_annualisation_by_source() -> None:
    """rv: sqrt(365 d / interval) for bars, 1 for ticks, sqrt(P) when the spec gives P."""
    (item,) = parse_spec("rv:20")
    assert item.build(interval_ns=86_400 * S).scale == pytest.approx(math.sqrt(365))  # type: ignore[attr-defined]
    assert item.build(interval_ns=0).scale == 1.0  # type: ignore[attr-defined]
    (item,) = parse_spec("rv:20:252")
    assert item.build(interval_ns=60 * S).scale == pytest.approx(math.sqrt(252))  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "spec,why",
    [
        ("sma", "sma: sma needs a period"),
        ("rsi:x", "rsi:x: 'x' is not a whole number"),
        ("ema:0", "ema:0: period 0 must be >= 1"),
        ("bbands:20:0", "bbands:20:0: '0' must be a positive number"),
        ("macd:1:2:3:4", "macd takes at most 3 parameter(s)"),
        ("corr", "expected corr:INSTRUMENT"),
        ("zz:1", "unknown indicator 'zz'"),
        ("", "no indicators given"),
    ],
)
def test_bad_specs_name_the_item(spec: str, why: str) -> None:
    with pytest.raises(ConfigError) as ei:
        parse_spec(spec)
    assert why in str(ei.value)


def test_every_bad_item_is_reported() -> None:
    with pytest.raises(ConfigError) as ei:
        parse_spec("sma:1,foo,rsi:-3")
    assert [k for k, _ in ei.value.problems] == ["foo", "rsi:-3"]


@pytest.mark.parametrize("text,ns", [("1s", S), ("15s", 15 * S), ("1m", 60 * S), ("4h", 4 * 3600 * S),
                                     ("1d", 86_400 * S), ("1440m", 86_400 * S)])
def test_intervals(text: str, ns: int) -> None:
    assert parse_interval(text) == ns
    assert parse_interval(format_interval(ns)) == ns


@pytest.mark.parametrize("text", ["0s", "500ms", "2d", "1w", "m", "tick"])
def test_bad_intervals(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_interval(text)


def test_bar_builder_alignment_and_late_trades() -> None:
    b = BarBuilder("X.SIM", 60 * S)
    t0 = 1_767_225_600 * S + 59 * S  # one second before a minute boundary
    assert b.on_trade(t0, 10.0, 1.0) is None
    bar = b.on_trade(t0 + S, 11.0, 2.0)  # exactly on the boundary: a new bar
    assert bar is not None and bar.ts_open == t0 - 59 * S and (bar.open, bar.close, bar.volume) == (10, 10, 1)
    assert b.on_trade(t0 - 5 * S, 9.0, 1.0) is None and b.late_trades == 1  # older than the open bar
    b.on_trade(t0 + 30 * S, 12.0, 1.0)
    b.on_trade(t0 + 31 * S, 8.0, 1.0)
    done = b.close_until(t0 + 61 * S)
    assert done is not None and (done.open, done.high, done.low, done.close, done.volume) == (11, 12, 8, 8, 4)
    assert b.close_until(t0 + 10 * 60 * S) is None  # nothing being built
    assert b.on_trade(t0 + 50 * S, 1.0, 1.0) is None and b.late_trades == 2  # its bar was closed
    assert b.close_until(t0 + 10 * 60 * S) is None  # so no second bar for that minute


def test_local_book_rejects_bad_levels_and_stays_sorted() -> None:
    book = LocalBook("X.SIM", max_levels=2)
    lv = BookLevel
    book.apply_snapshot(BookSnapshot("X.SIM", [lv(1, 1), lv(3, 1), lv(2, 1)], [lv(5, 1), lv(4, 1)], 0, 0))
    assert book.bids == [(3, 1), (2, 1)] and book.asks == [(4, 1), (5, 1)]
    book.apply_delta(BookDelta("X.SIM", [lv(3, 0), lv(7, 0)], [lv(4, 2)], 0, 0))  # unknown level: no-op
    assert book.bids == [(2, 1)] and book.asks == [(4, 2), (5, 1)]
    with pytest.raises(DataError, match="book ask level 4 x -1 is not a finite price"):
        book.apply_delta(BookDelta("X.SIM", [], [lv(4, -1)], 0, 0))


def test_a_bad_delta_changes_nothing() -> None:
    book = LocalBook("X.SIM")
    lv = BookLevel
    book.apply_snapshot(BookSnapshot("X.SIM", [lv(2, 1)], [lv(3, 1)], 0, 0))
    with pytest.raises(DataError):
        book.apply_delta(BookDelta("X.SIM", [lv(2, 0), lv(1, 5)], [lv(float("nan"), 1)], 0, 0))
    assert book.bids == [(2, 1)] and book.asks == [(3, 1)]
