"""Bars from trades: OHLCV over intervals aligned to the clock (multiples of the interval since the
epoch, UTC), so every process that builds 1m bars from the same trades builds the same bars.

A bar is complete when the first trade of a later interval arrives (or when :meth:`close_until` is
called with a time past its end, for timer-driven closing); an interval with no trades produces no
bar.
"""

from __future__ import annotations

import re

from omnid.errors import ConfigError
from omnid.model import Bar

NS = 1_000_000_000
UNITS = {"s": NS, "m": 60 * NS, "h": 3600 * NS, "d": 86_400 * NS}
MIN_INTERVAL = NS
MAX_INTERVAL = 86_400 * NS

_INTERVAL_RE = re.compile(r"^(\d+)([smhd])$")


def parse_interval(text: str) -> int:
    """``"1s"``..``"1d"`` (s, m, h, d) to nanoseconds; ConfigError naming the text otherwise."""
    m = _INTERVAL_RE.match(text.strip().lower())
    if not m:
        raise ConfigError(
            "features", [("source", f"bad interval {text!r} (use e.g. 1s, 5m, 1h, 1d or tick)")]
        )
    ns = int(m.group(1)) * UNITS[m.group(2)]
    if not MIN_INTERVAL <= ns <= MAX_INTERVAL:
        raise ConfigError("features", [("source", f"interval {text!r} is outside 1s..1d")])
    return ns


def format_interval(ns: int) -> str:
    """The shortest name for ``ns`` (60e9 -> "1m"); odd intervals as seconds or nanoseconds."""
    for unit in ("d", "h", "m", "s"):
        if ns % UNITS[unit] == 0:
            return f"{ns // UNITS[unit]}{unit}"
    return f"{ns}ns"


class BarBuilder:
    """Builds one instrument's bars of one interval from its trades."""

    __slots__ = ("_c", "_floor", "_h", "_has", "_l", "_o", "_start", "_v", "instrument_id", "interval_ns",
                 "late_trades")

    def __init__(self, instrument_id: str, interval_ns: int) -> None:
        if interval_ns <= 0:
            raise ConfigError("features", [("interval", f"bar interval must be > 0 ns, got {interval_ns}")])
        self.instrument_id = instrument_id
        self.interval_ns = interval_ns
        self._start = -1
        self._floor = -(2**62)
        self._has = False
        self._o = self._h = self._l = self._c = self._v = 0.0
        #: Trades older than the bar being built (out of order) or than supplied bars; in no bar.
        self.late_trades = 0

    @property
    def open_since(self) -> int:
        """The start of the bar being built, or -1."""
        return self._start if self._has else -1

    def on_trade(self, ts: int, price: float, size: float, ts_init: int = 0) -> Bar | None:
        """Add a trade; return the bar it completed (the previous interval's), if any."""
        if ts < self._floor:
            self.late_trades += 1
            return None
        start = ts - ts % self.interval_ns
        if start == self._start and self._has:
            if price > self._h:
                self._h = price
            elif price < self._l:
                self._l = price
            self._c = price
            self._v += size
            return None
        if start < self._start:
            self.late_trades += 1
            return None
        done = self._finish(ts_init) if self._has else None
        self._start = start
        self._has = True
        self._o = self._h = self._l = self._c = price
        self._v = size
        return done

    def close_until(self, now: int) -> Bar | None:
        """Complete the bar being built if its interval has ended by ``now`` (timer-driven)."""
        end = self._start + self.interval_ns
        if self._has and now >= end:
            self._floor = max(self._floor, end)  # a straggler for the closed interval is late
            return self._finish(now)
        return None

    def skip_until(self, end: int) -> None:
        """Ignore trades before ``end``: bars up to it were supplied from elsewhere (history, a venue).

        A bar being built that starts before ``end`` is dropped, as the supplied bar replaces it.
        """
        if self._has and self._start < end:
            self._has = False
        self._floor = max(self._floor, end)

    def _finish(self, ts_init: int) -> Bar:
        self._has = False
        iv = self.interval_ns
        return Bar(self.instrument_id, iv, self._start, self._o, self._h, self._l, self._c, self._v,
                   self._start + iv, ts_init)
