"""The feature engine: per-instrument indicator sets fed from trades, bars, quotes and books.

See :mod:`omnid.features` for the API strategies use. Internally each instrument has one *feed*
per source (``tick``, or a bar interval); a feed holds the bound ``update`` methods of its
indicators grouped by input kind, so the hot path is a few loops of direct method calls with plain
floats and no lookups or allocation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from omnid.errors import ConfigError, DataError
from omnid.features.bars import BarBuilder, format_interval, parse_interval
from omnid.features.book import LocalBook
from omnid.features.config import FeaturesConfig
from omnid.features.indicators import BookImbalance, Correlation, Indicator
from omnid.features.spec import IndicatorSpec, parse_item, parse_spec
from omnid.model import Bar, BookDelta, BookSnapshot, Instrument, Quote, Trade

TICK = 0  # the source key of tick-fed indicators; bar feeds are keyed by interval (ns)


def parse_source(source: str | int) -> int:
    """``"tick"`` -> 0, ``"1m"`` -> 60e9, an int is taken as an interval in ns."""
    if isinstance(source, int):
        if source < 0:
            raise ConfigError("features", [("source", f"bad source {source!r}")])
        return source
    if source.strip().lower() == "tick":
        return TICK
    return parse_interval(source)


def source_name(source: int) -> str:
    return "tick" if source == TICK else format_interval(source)


class _Feed:
    """One source's indicators, grouped by the inputs their ``update`` takes."""

    __slots__ = ("close", "cv", "hlc", "last_open", "others", "pair", "pv", "source", "tpv", "version")

    def __init__(self, source: int) -> None:
        self.source = source
        self.close: list[Callable[[float], None]] = []
        self.hlc: list[Callable[[float, float, float], None]] = []
        self.pv: list[Callable[[float, float], None]] = []
        self.cv: list[Callable[[float, float], None]] = []
        self.tpv: list[Callable[[int, float, float], None]] = []
        self.pair: list[Callable[[int, float], None]] = []
        self.last_open = -(2**62)  # the last bar applied (bars must advance)
        self.others = False  # any indicator of a kind other than close (skips empty loops per tick)
        #: Bumped by every :meth:`add`: a trade path written out for these lists checks it.
        self.version = 0

    def add(self, ind: Indicator) -> None:
        kind = ind.KIND
        if kind == "close":
            self.close.append(ind.update)  # type: ignore[attr-defined]
        elif kind == "hlc":
            self.hlc.append(ind.update)  # type: ignore[attr-defined]
        elif kind == "pv":
            self.pv.append(ind.update)  # type: ignore[attr-defined]
        elif kind == "cv":
            self.cv.append(ind.update)  # type: ignore[attr-defined]
        elif kind == "tpv":
            self.tpv.append(ind.update)  # type: ignore[attr-defined]
        else:  # pragma: no cover - kinds are fixed by the indicator classes
            raise ConfigError("features", [(ind.name, f"indicator kind {kind!r} cannot be fed here")])
        self.others = bool(self.hlc or self.pv or self.cv or self.tpv)
        self.version += 1

    def bar(self, bar: Bar) -> None:
        c = bar.close
        v = bar.volume
        for f in self.close:
            f(c)
        if self.pv or self.tpv:
            tp = (bar.high + bar.low + c) / 3.0
            for g in self.pv:
                g(tp, v)
            for t in self.tpv:
                t(bar.ts_open, tp, v)
        for g in self.cv:
            g(c, v)
        for h in self.hlc:
            h(bar.high, bar.low, c)
        for p in self.pair:
            p(bar.ts_open, c)


class InstrumentFeatures:
    """Everything the engine keeps for one instrument (bounded: rings, one bar per builder, a
    capped book)."""

    __slots__ = ("book", "builders", "columns", "feeds", "indicators", "instrument", "obi", "tick_feed")

    def __init__(self, instrument: Instrument, book_levels: int) -> None:
        self.instrument = instrument
        self.tick_feed: _Feed | None = None
        self.feeds: dict[int, _Feed] = {}
        self.builders: list[tuple[BarBuilder, _Feed]] = []
        self.indicators: dict[str, Indicator] = {}  # "rsi_14@1m" -> indicator
        self.columns: dict[str, tuple[Indicator, str]] = {}  # "macd_12_26_9_signal@1m" -> (ind, attr)
        self.obi: list[BookImbalance] = []
        self.book = LocalBook(instrument.id, book_levels)


class FeatureEngine:
    """Per-instrument indicator sets; see the :mod:`omnid.features` docstring for the API."""

    def __init__(self, instruments: Iterable[Instrument] = (), *, book_levels: int = 1000) -> None:
        self.book_levels = book_levels
        self._inst: dict[str, InstrumentFeatures] = {}
        #: Every bar completed by the last ``on_trade``/``on_time`` call (the list is reused).
        self.completed: list[Bar] = []
        for ins in instruments:
            self.add_instrument(ins)

    @classmethod
    def from_config(cls, cfg: FeaturesConfig, instruments: Iterable[Instrument]) -> FeatureEngine:
        """An engine with ``cfg.indicators`` set up on every instrument."""
        engine = cls(instruments, book_levels=cfg.book_levels)
        for iid in engine.instruments:
            for source, spec in cfg.indicators.items():
                engine.ensure_all(iid, spec, source)
        return engine

    # ---------------------------------------------------------------------------------------------
    # Set-up

    def add_instrument(self, instrument: Instrument) -> None:
        """Register an instrument (its calendar drives session VWAP). Idempotent."""
        if instrument.id not in self._inst:
            self._inst[instrument.id] = InstrumentFeatures(instrument, self.book_levels)

    @property
    def instruments(self) -> list[str]:
        return list(self._inst)

    def features(self, instrument_id: str) -> InstrumentFeatures:
        st = self._inst.get(instrument_id)
        if st is None:
            raise ConfigError(
                "features",
                [(instrument_id, "unknown instrument: add it with FeatureEngine.add_instrument first")],
            )
        return st

    def find(self, instrument_id: str) -> InstrumentFeatures | None:
        """The instrument's feature state, or None when it is not registered (no error)."""
        return self._inst.get(instrument_id)

    def ensure(self, instrument_id: str, spec: str | IndicatorSpec, source: str | int = "tick") -> Any:
        """The indicator for ``spec`` on ``source`` (``"tick"`` or ``"1s"``..``"1d"``), made if new.

        Strategies call this at set-up and keep the object: reading ``ind.value`` at run time is a
        plain attribute read. Asking twice returns the same object. Returns the concrete indicator
        class (``MACD``, ``BBands``, ...), typed ``Any`` so callers reach its extra outputs freely.
        """
        st = self.features(instrument_id)
        item = spec if isinstance(spec, IndicatorSpec) else parse_item(spec)
        src = parse_source(source)
        key = f"{item.name}@{source_name(src)}"
        have = st.indicators.get(key)
        if have is not None:
            return have
        ind = item.build(calendar=st.instrument.calendar, interval_ns=src)
        if isinstance(ind, BookImbalance):
            if src != TICK:
                raise ConfigError("features", [(item.item, "obi reads the order book: use source 'tick'")])
            st.obi.append(ind)
        elif isinstance(ind, Correlation):
            if src == TICK:
                raise ConfigError("features", [(item.item, "corr pairs bars: use a bar source such as 1m")])
            other = self.features(ind.other)
            self._feed(st, src).pair.append(ind.update_a)
            self._feed(other, src).pair.append(ind.update_b)
        else:
            self._feed(st, src).add(ind)
        st.indicators[key] = ind
        for col, attr in ind.columns():
            st.columns[f"{col}@{source_name(src)}"] = (ind, attr)
            if src == TICK:
                st.columns[col] = (ind, attr)
        return ind

    def indicator(self, instrument_id: str, spec: str) -> Any:
        """``ensure`` with the source written into the item: ``"rsi:14@1m"``, ``"vwap"`` (tick).

        This is the :class:`omnid.strategies.base.FeatureSource` protocol strategies resolve with.
        """
        item, _, source = spec.partition("@")
        return self.ensure(instrument_id, item, source or "tick")

    def ensure_all(self, instrument_id: str, spec: str, source: str | int = "tick") -> list[Any]:
        """:meth:`ensure` for each item of a comma list (every bad item is reported at once)."""
        return [self.ensure(instrument_id, s, source) for s in parse_spec(spec)]

    def _feed(self, st: InstrumentFeatures, src: int) -> _Feed:
        feed = st.feeds.get(src)
        if feed is None:
            feed = st.feeds[src] = _Feed(src)
            if src == TICK:
                st.tick_feed = feed
            else:
                st.builders.append((BarBuilder(st.instrument.id, src), feed))
                st.builders.sort(key=lambda bf: bf[0].interval_ns)
        return feed

    def value(self, instrument_id: str, name: str) -> float:
        """A value by column name, ``"rsi_14@1m"`` (``"rsi_14"`` means the tick source). Slower
        than holding the indicator; for reports and scanners."""
        st = self.features(instrument_id)
        got = st.columns.get(name)
        if got is None:
            raise ConfigError("features", [(name, f"no such feature on {instrument_id} "
                                                  f"(have: {', '.join(sorted(st.columns))})")])
        val: float = getattr(got[0], got[1])
        return val

    def columns(self, instrument_id: str) -> list[tuple[str, Indicator, str]]:
        """(column@source, indicator, attribute) for every output, in the order they were added."""
        st = self.features(instrument_id)
        return [(k, ind, attr) for k, (ind, attr) in st.columns.items() if "@" in k]

    # ---------------------------------------------------------------------------------------------
    # Hot path

    def on_trade(self, trade: Trade) -> Bar | None:
        """Update tick indicators and bar builders; return the (shortest-interval) bar this trade
        completed, if any. All completed bars are in :attr:`completed`."""
        st = self._inst.get(trade.instrument_id)
        if st is None:
            return None
        p = trade.price
        q = trade.size
        if not (0.0 < p < 1e308 and 0.0 <= q < 1e308):  # also false for NaN and inf
            raise DataError(
                f"{trade.instrument_id}: trade price {p} / size {q} rejected (need a finite price > 0 "
                "and a finite size >= 0)",
                instrument_id=trade.instrument_id, field="size" if 0.0 < p < 1e308 else "price",
                price=p, size=q, ts_event=trade.ts_event,
            )
        feed = st.tick_feed
        if feed is not None:
            for f in feed.close:
                f(p)
            if feed.others:
                # Inline, each kind guarded by an `if`: a method call and empty-loop set-ups would cost
                # ~150 ns per tick, as much as one indicator update.
                if feed.pv:
                    for g in feed.pv:
                        g(p, q)
                if feed.cv:
                    for g in feed.cv:
                        g(p, q)
                if feed.hlc:
                    for h in feed.hlc:
                        h(p, p, p)
                if feed.tpv:
                    ts = trade.ts_event
                    for t in feed.tpv:
                        t(ts, p, q)
        if not st.builders:
            return None
        done = self.completed
        done.clear()
        ts = trade.ts_event
        for builder, bfeed in st.builders:
            bar = builder.on_trade(ts, p, q, trade.ts_init)
            if bar is not None:
                bfeed.last_open = bar.ts_open
                bfeed.bar(bar)
                done.append(bar)
        return done[0] if done else None

    def on_bar(self, bar: Bar) -> None:
        """Update the indicators of the bar's interval. Bars must advance: a bar at or before the last
        applied one is ignored (already built from trades); trades inside supplied bars are ignored."""
        st = self._inst.get(bar.instrument_id)
        if st is None:
            return
        feed = st.feeds.get(bar.interval_ns) if bar.interval_ns > 0 else None
        if feed is None or bar.ts_open <= feed.last_open:
            return
        o, h, lo, c, v = bar.open, bar.high, bar.low, bar.close, bar.volume
        if o - o or h - h or lo - lo or c - c or v - v:
            field = next(n for n, x in (("open", o), ("high", h), ("low", lo), ("close", c), ("volume", v))
                         if x - x)
            raise DataError(f"{bar.instrument_id}: bar at {bar.ts_open} has a non-finite {field}",
                            instrument_id=bar.instrument_id, field=field, ts_open=bar.ts_open)
        if c <= 0.0 or lo > h or v < 0.0:
            raise DataError(
                f"{bar.instrument_id}: bar at {bar.ts_open} is inconsistent (close {c}, low {lo}, "
                f"high {h}, volume {v}; need close > 0, low <= high, volume >= 0)",
                instrument_id=bar.instrument_id, ts_open=bar.ts_open,
            )
        feed.last_open = bar.ts_open
        feed.bar(bar)
        for builder, bfeed in st.builders:
            if bfeed is feed:
                builder.skip_until(bar.ts_open + bar.interval_ns)

    def on_time(self, now: int) -> list[Bar]:
        """Complete bars whose interval has ended by ``now`` (call from a clock timer so a quiet
        market still closes its bars). Returns :attr:`completed`."""
        done = self.completed
        done.clear()
        for st in self._inst.values():
            for builder, bfeed in st.builders:
                bar = builder.close_until(now)
                if bar is not None:
                    bfeed.last_open = bar.ts_open
                    bfeed.bar(bar)
                    done.append(bar)
        return done

    def on_quote(self, quote: Quote) -> None:
        """Top of book: level-1 book imbalance."""
        st = self._inst.get(quote.instrument_id)
        if st is None or not st.obi:
            return
        b = quote.bid_size
        a = quote.ask_size
        if b - b or a - a or b < 0.0 or a < 0.0:
            raise DataError(
                f"{quote.instrument_id}: quote sizes bid {b} / ask {a} must be finite and >= 0",
                instrument_id=quote.instrument_id, field="bid_size" if b - b or b < 0.0 else "ask_size",
            )
        for ind in st.obi:
            ind.update_quote(b, a)

    def on_book(self, event: BookSnapshot | BookDelta) -> None:
        """Apply a snapshot or delta to the local book, then update book imbalance."""
        st = self._inst.get(event.instrument_id)
        if st is None or not st.obi:
            return
        book = st.book
        if isinstance(event, BookSnapshot):
            book.apply_snapshot(event)
        else:
            book.apply_delta(event)
        for ind in st.obi:
            ind.update_sizes(book.bid_sizes, book.ask_sizes)
