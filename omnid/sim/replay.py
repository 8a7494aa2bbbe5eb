"""Historical replay: numpy columns into domain events, in a plain loop with a simulated clock.

This loop is the backtester's hot path (and what ``bench/replay.py`` measures), so it does the
least it can per event: columns become Python lists once (plain floats and ints, never numpy
scalars), each row becomes one :class:`~omnid.model.Trade` or :class:`~omnid.model.Bar`, the
:class:`~omnid.clock.SimClock` is advanced to the event's timestamp (firing due timers first), and
the event is handed to the core. Equity is sampled into a :class:`~omnid.sim.book.TradeBook` at the
end of every bar, and for ticks at the end of every ``sample_ns`` bucket that has ticks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from omnid.clock import NEVER_NS, SimClock
from omnid.datafiles import BarData, TickData
from omnid.engine import Engine
from omnid.errors import DataError
from omnid.model import Bar, Side, Trade
from omnid.sim.book import TradeBook

#: Rows converted to Python objects at a time; progress is reported after each chunk.
CHUNK = 1 << 16
#: Bars: progress is reported every this many bars (a power of two: a mask test per bar).
PROGRESS_EVERY = 1 << 16
_SIDES = (Side.SELL, Side.NONE, Side.BUY)
_SIDE_OBJECTS = np.array(_SIDES, dtype=object)  # the same members, indexed by side + 1

Handler = Callable[[Trade], object]
BarHandler = Callable[[Bar], object]
Progress = Callable[[int], object]


def bar_interval_ns(data: BarData) -> int:
    """The bar length: the most common spacing between consecutive bars of one symbol."""
    if len(data) < 2:
        return 86_400_000_000_000
    ts = data.ts if len(data.symbols) == 1 else data.select(data.symbols[0]).ts
    if ts.size < 2:
        return 86_400_000_000_000
    diffs = np.diff(ts)
    values, counts = np.unique(diffs, return_counts=True)
    return int(values[int(np.argmax(counts))])


def replay_ticks(
    data: TickData,
    instrument_ids: Sequence[str],
    clock: SimClock,
    handle: Handler,
    book: TradeBook | None = None,
    *,
    sample_ns: int = 60_000_000_000,
    progress: Progress | None = None,
) -> int:
    """Hand every tick, in file order, to ``handle`` as a Trade; return how many were replayed.

    ``instrument_ids[code]`` is the id used for ``data.symbols[code]``. Ticks must not go back in
    time (the loader checks per symbol; a merged file must be in time order overall).
    """
    n = len(data)
    if len(instrument_ids) != len(data.symbols):
        raise DataError(
            f"{data.path}: {len(data.symbols)} symbols but {len(instrument_ids)} instrument ids",
            path=data.path,
        )
    if n and np.any(np.diff(data.ts) < 0):
        raise DataError(f"{data.path}: ticks are not in time order across symbols", path=data.path)
    ids = list(instrument_ids)
    last = [math.nan] * len(ids)
    advance = clock.advance_to
    # Engine.on_trade is replaced by the engine's per-instrument paths (the same steps with the
    # instrument's parts bound once): the loop then picks the handler by symbol code.
    owner = getattr(handle, "__self__", None)
    if isinstance(owner, Engine) and handle == owner.on_trade:
        # Every print checked here at once (NaN fails both compares): the paths then leave out
        # their per-tick test for a malformed print, which only a file with one would need.
        price, qty = data.price, data.qty
        checked = bool(n) and bool(np.all((price > 0.0) & (price < 1e308) & (qty >= 0.0) & (qty < 1e308)))
        handlers: list[Handler] = [owner.trade_path(iid, checked=checked) for iid in ids]
    else:
        handlers = [handle] * len(ids)
    # Without a book there is nothing to sample: the boundary is never reached. With one, the
    # first tick's bucket is the first open one.
    boundary = NEVER_NS
    if book is not None and n:
        boundary = (int(data.ts[0]) // sample_ns + 1) * sample_ns
    # Columns become Python lists a chunk at a time: plain floats and ints for the hot loop without
    # holding a million boxed objects per column (peak memory stays a few MB over the arrays).
    for lo in range(0, n, CHUNK):
        hi = min(lo + CHUNK, n)
        sides = _SIDE_OBJECTS[data.side[lo:hi] + 1].tolist()  # a numpy gather, not a listcomp
        if book is not None:
            # The timestamp a sample is stamped with (the tick before each bucket change) comes
            # from numpy here, so the loop keeps no previous timestamp per tick.
            before = data.ts[max(lo - 1, 0):hi]
            buckets = before // sample_ns
            stamps = iter(before[np.flatnonzero(buckets[1:] != buckets[:-1])].tolist())
        for ts, code, px, qty, side in zip(
            data.ts[lo:hi].tolist(), data.symbol_codes[lo:hi].tolist(), data.price[lo:hi].tolist(),
            data.qty[lo:hi].tolist(), sides, strict=True,
        ):
            if ts >= boundary:
                _sample(book, ids, last, next(stamps))  # type: ignore[arg-type]
                boundary = (ts // sample_ns + 1) * sample_ns
            # SimClock.advance_to, inlined for an event before any timer is due.
            if ts >= clock.due_ns:
                advance(ts)
            elif ts > clock._now:
                clock._now = ts
            handlers[code](Trade(ids[code], px, qty, side, ts, ts))
            last[code] = px
        if progress is not None:
            progress(hi)
    if book is not None and n:
        _sample(book, ids, last, int(data.ts[-1]))
    if progress is not None and not n:
        progress(0)
    return n


def replay_bars(
    data: BarData,
    instrument_ids: Sequence[str],
    clock: SimClock,
    handle: BarHandler,
    book: TradeBook | None = None,
    *,
    interval_ns: int | None = None,
    progress: Progress | None = None,
) -> int:
    """Hand every bar to ``handle``, with the clock at the bar's close (``ts_open + interval``).

    Equity is sampled once per distinct bar time, stamped with the file's Date (the bar's open),
    after every bar of that time has been handled.
    """
    if len(instrument_ids) != len(data.symbols):
        raise DataError(
            f"{data.path}: {len(data.symbols)} symbols but {len(instrument_ids)} instrument ids",
            path=data.path,
        )
    step = interval_ns if interval_ns is not None else bar_interval_ns(data)
    ids = list(instrument_ids)
    last = [math.nan] * len(ids)
    ts_list = data.ts.tolist()
    n = len(ts_list)
    advance = clock.advance_to
    mask = PROGRESS_EVERY - 1
    i = 0
    for ts, code, o, h, lo, c, v in zip(
        ts_list, data.symbol_codes.tolist(), data.open.tolist(), data.high.tolist(), data.low.tolist(),
        data.close.tolist(), data.volume.tolist(), strict=True,
    ):
        close_ts = ts + step
        advance(close_ts)
        handle(Bar(ids[code], step, ts, o, h, lo, c, v, close_ts, close_ts))
        last[code] = c
        i += 1
        if book is not None and (i == n or ts_list[i] != ts):
            _sample(book, ids, last, ts)
        if progress is not None and not i & mask:
            progress(i)
    if progress is not None:
        progress(i)
    return i


def _sample(book: TradeBook, ids: list[str], last: list[float], ts: int) -> None:
    lp = book.last_price
    if any(map(math.isnan, last)):
        for iid, px in zip(ids, last, strict=True):
            if not math.isnan(px):  # this symbol has traded
                lp[iid] = px
    else:  # every symbol has traded (the steady state): one C-level update
        lp.update(zip(ids, last, strict=True))
    book.sample(ts)
