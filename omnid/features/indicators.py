"""Incremental indicators: O(1) per update, fixed memory, plain floats.

Each indicator is a small ``__slots__`` class: call ``update(...)`` with its inputs, then read
``.value`` (NaN until ``.ready``). Multi-output indicators add attributes (MACD ``.signal``/``.hist``,
Bollinger ``.upper``/``.middle``/``.lower``). ``KIND`` says which inputs ``update`` takes, so the
:class:`~omnid.features.engine.FeatureEngine` can call it straight from a trade or a bar:

========  ==========================  =================================================
KIND      ``update`` signature        fed with
========  ==========================  =================================================
close     ``update(close)``           a trade's price or a bar's close
hlc       ``update(high, low, close)``  a bar (a trade is high = low = close = price)
pv        ``update(price, volume)``   a trade, or a bar's typical price (h+l+c)/3 and volume
cv        ``update(close, volume)``   a trade, or a bar's close and volume
tpv       ``update(ts, price, volume)`` as ``pv`` plus the time (ns), for session resets
pair      ``update_a/b(ts, close)``   two instruments' bars; returns paired on equal ``ts``
book      ``update_book`` / ``update_quote``  order-book levels or top of book
========  ==========================  =================================================

The conventions follow TA-Lib (the tests hold them to it to 1e-9 relative after warm-up): EMA is
seeded with the SMA of its first ``period`` inputs; RSI and ATR use Wilder smoothing seeded with the
simple mean of the first ``period`` changes / true ranges (first value after ``period + 1`` inputs);
RSI is 0 when there has been no movement at all, as TA-Lib has it; MACD seeds its fast EMA with the
SMA of the ``fast`` inputs ending where the slow EMA's seed ends, and is ready (all three outputs)
after ``slow + signal - 1`` inputs; Bollinger bands use the population standard deviation.
One deliberate difference: TA-Lib treats an average move (RSI) or a variance (Bollinger,
correlation) below an absolute 1e-8 as zero, which is wrong for instruments priced around 1e-4 or
less; here only an exact zero is zero.

Windowed sums drift with floating-point error over a long stream, so each windowed indicator
recomputes its sums exactly from its ring every few thousand updates (amortised O(1)).
"""

from __future__ import annotations

import math
from typing import ClassVar

from omnid.calendar import TradingCalendar
from omnid.errors import ConfigError, DataError
from omnid.features.ring import Ring

NAN = math.nan

#: Windowed indicators recompute their running sums from the ring at least this often.
RESUM_EVERY = 4096
#: Sliding variances (whose error grows faster than a plain sum's) resum at least this often.
RESUM_VAR_EVERY = 1024
#: A windowed sum of squares that falls below this fraction of its previous value in one update
#: (a spike leaving the window) lost digits to cancellation, so it is recomputed from the ring.
CANCEL_RATIO = 1e-3


def _period(name: str, value: int, minimum: int = 1) -> int:
    if not isinstance(value, int) or value < minimum:
        raise ConfigError("indicators", [(name, f"period must be an integer >= {minimum}, got {value!r}")])
    return value


class Indicator:
    """Base of every indicator: ``value`` (NaN until ``ready``) and ``name`` (its column name)."""

    __slots__ = ("name", "ready", "value")

    KIND: ClassVar[str] = "close"
    #: (column suffix, attribute) for each output column; the first is ``value``.
    OUTPUTS: ClassVar[tuple[tuple[str, str], ...]] = (("", "value"),)

    def __init__(self, name: str) -> None:
        self.name = name
        self.value = NAN
        self.ready = False

    def columns(self) -> list[tuple[str, str]]:
        """(column name, attribute) pairs, e.g. ``("macd_12_26_9_signal", "signal")``."""
        return [(self.name + suffix, attr) for suffix, attr in self.OUTPUTS]

    def __repr__(self) -> str:
        return f"<{self.name} value={self.value!r} ready={self.ready}>"


# --------------------------------------------------------------------------------------------------
# Averages


class SMA(Indicator):
    """Simple moving average of the last ``period`` inputs."""

    __slots__ = ("_buf", "_every", "_i", "_n", "_sum", "_wraps", "period")

    def __init__(self, period: int, name: str = "") -> None:
        super().__init__(name or f"sma_{period}")
        self.period = _period("sma", period)
        self._buf = [0.0] * period  # a ring, inlined: the hot path avoids a method call
        self._i = 0
        self._n = 0
        self._sum = 0.0
        self._every = self._wraps = _wraps_between_resums(period)

    def update(self, x: float) -> None:
        buf = self._buf
        i = self._i
        s = self._sum + x - buf[i]
        buf[i] = x
        i += 1
        if i == self.period:
            i = 0
            self._wraps -= 1
            if not self._wraps:
                self._wraps = self._every
                s = math.fsum(buf)
        self._i = i
        self._sum = s
        if self.ready:
            self.value = s / self.period
        else:
            self._n += 1
            if self._n == self.period:
                self.value = s / self.period
                self.ready = True


class EMA(Indicator):
    """Exponential moving average, k = 2/(period+1), seeded with the SMA of the first ``period``."""

    __slots__ = ("_n", "_sum", "k", "period")

    def __init__(self, period: int, name: str = "") -> None:
        super().__init__(name or f"ema_{period}")
        self.period = _period("ema", period)
        self.k = 2.0 / (period + 1)
        self._n = 0
        self._sum = 0.0

    def update(self, x: float) -> None:
        if self.ready:
            v = self.value
            self.value = (x - v) * self.k + v
            return
        self._n += 1
        self._sum += x
        if self._n == self.period:
            self.value = self._sum / self.period
            self.ready = True

    def seed(self, value: float) -> None:
        """Start from ``value`` as if warmed up (MACD seeds its fast EMA this way)."""
        self.value = value
        self.ready = True
        self._n = self.period


class RSI(Indicator):
    """Wilder's relative strength index (0..100)."""

    __slots__ = ("_gain", "_loss", "_n", "_p", "_prev", "_w", "period")

    def __init__(self, period: int, name: str = "") -> None:
        super().__init__(name or f"rsi_{period}")
        self.period = _period("rsi", period)
        # The steady state's weights as floats: float * float is the same product as
        # float * int (the int converts exactly) without the mixed-type slow path.
        self._w = float(period - 1)
        self._p = float(period)
        self._n = 0  # inputs seen, capped at period + 1
        self._prev = NAN
        self._gain = 0.0
        self._loss = 0.0

    def update(self, x: float) -> None:
        if self.ready:  # the steady state, kept short: Wilder smoothing of gains and losses
            d = x - self._prev
            self._prev = x
            w = self._w
            p = self._p
            # (avg * (period - 1) + change) / period, the same operations in the same order
            if d < 0:
                gain = self._gain * w / p
                loss = (self._loss * w - d) / p
            else:
                gain = (self._gain * w + d) / p
                loss = self._loss * w / p
            self._gain = gain
            self._loss = loss
            total = gain + loss
            self.value = 100.0 * (gain / total) if total > 0.0 else 0.0
            return
        n = self._n
        if n == 0:
            self._prev = x
            self._n = 1
            return
        d = x - self._prev
        self._prev = x
        p = self.period
        gain = self._gain
        loss = self._loss
        if d < 0:
            loss -= d
        else:
            gain += d
        n += 1
        self._n = n
        if n <= p:  # still summing the first `period` changes
            self._gain = gain
            self._loss = loss
            return
        gain /= p  # the seed: simple means of the first `period` gains and losses
        loss /= p
        self.ready = True
        self._gain = gain
        self._loss = loss
        total = gain + loss
        self.value = 100.0 * (gain / total) if total > 0.0 else 0.0


class MACD(Indicator):
    """MACD line (fast EMA - slow EMA), its signal EMA, and the histogram (line - signal)."""

    __slots__ = ("_fast", "_fv", "_kf", "_kg", "_ks", "_recent", "_signal", "_slow", "_sv", "fast",
                 "hist", "line", "signal", "signal_period", "slow")

    OUTPUTS = (("", "value"), ("_signal", "signal"), ("_hist", "hist"))

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9, name: str = "") -> None:
        super().__init__(name or f"macd_{fast}_{slow}_{signal}")
        self.fast = _period("macd fast", fast)
        self.slow = _period("macd slow", slow)
        self.signal_period = _period("macd signal", signal)
        if fast > slow:
            raise ConfigError("indicators", [("macd", f"fast period {fast} must not exceed slow {slow}")])
        self._fast = EMA(fast)
        self._slow = EMA(slow)
        self._signal = EMA(signal)
        self._recent = Ring(fast)  # the fast EMA's seed: the `fast` inputs ending at the slow seed
        self._kf = self._fast.k
        self._ks = self._slow.k
        self._kg = self._signal.k
        self._fv = self._sv = NAN
        self.line = NAN
        self.signal = NAN
        self.hist = NAN

    def update(self, x: float) -> None:
        if not self.ready:
            self._warm_up(x)
            return
        f = self._fv
        f = (x - f) * self._kf + f
        s = self._sv
        s = (x - s) * self._ks + s
        self._fv = f
        self._sv = s
        line = f - s
        g = self.signal
        g = (line - g) * self._kg + g
        self.line = self.value = line
        self.signal = g
        self.hist = line - g

    def _warm_up(self, x: float) -> None:
        slow = self._slow
        fast = self._fast
        if slow.ready:
            fast.update(x)
            slow.update(x)
        else:
            self._recent.push(x)
            slow.update(x)
            if slow._n < self.slow:  # still warming up
                return
            fast.seed(math.fsum(self._recent._buf) / self.fast)
        line = fast.value - slow.value
        self.line = line
        sig = self._signal
        sig.update(line)
        if sig.ready:
            s = sig.value
            self.value = line
            self.signal = s
            self.hist = line - s
            self._fv = fast.value
            self._sv = slow.value
            self.ready = True


# --------------------------------------------------------------------------------------------------
# Dispersion


class WindowStats:
    """Mean and sum of squared deviations over the last ``period`` inputs (sliding Welford).

    Numerically sound where the textbook ``E[x²] - E[x]²`` cancels catastrophically. Inputs are
    kept relative to ``shift`` (a recent input), so the running mean and deviations are small
    numbers with small rounding errors; the window is resummed exactly (and re-shifted) every
    :data:`RESUM_VAR_EVERY` updates so error cannot build up, and at once when a spike leaving the
    window would otherwise leave its rounding error behind. The window mean is ``mean + shift``.
    """

    __slots__ = ("_buf", "_every", "_i", "_wraps", "count", "m2", "mean", "period", "shift")

    def __init__(self, period: int) -> None:
        self.period = period
        self._buf = [0.0] * period  # inputs minus shift
        self._i = 0
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.shift = NAN  # set by the first input
        self._every = self._wraps = max(1, RESUM_VAR_EVERY // period)

    def update(self, x: float) -> None:
        n = self.period
        if self.count != n:
            self._fill(x)
            return
        x -= self.shift
        buf = self._buf
        i = self._i
        old = buf[i]
        buf[i] = x
        mean = self.mean
        new_mean = mean + (x - old) / n
        m2 = self.m2
        m2n = m2 + (x - old) * (x - new_mean + old - mean)
        self.mean = new_mean
        self.m2 = m2n
        i += 1
        if i == n:
            i = 0
            self._wraps -= 1
            if not self._wraps:  # time for an exact recomputation
                self._i = 0
                self._resum()
                return
        self._i = i
        if m2n < m2 * CANCEL_RATIO:  # a spike left the window (or rounding went below zero)
            self._resum()

    def _fill(self, x: float) -> None:
        if not self.count:
            self.shift = x
        x -= self.shift
        i = self._i
        self._buf[i] = x
        self._i = 0 if i + 1 == self.period else i + 1
        self.count += 1
        d = x - self.mean
        self.mean += d / self.count
        self.m2 += d * (x - self.mean)
        self.m2 = max(self.m2, 0.0)

    def values(self) -> list[float]:
        """The window (relative to ``shift``), oldest first."""
        if self.count < self.period:
            return self._buf[: self.count]
        return self._buf[self._i :] + self._buf[: self._i]

    def _resum(self) -> None:
        self._wraps = self._every
        buf = self._buf
        newest = buf[self._i - 1] + self.shift
        for k in range(len(buf)):  # re-centre on the newest input
            buf[k] = (buf[k] + self.shift) - newest
        self.shift = newest
        vals = self.values()
        mean = math.fsum(vals) / len(vals)
        self.mean = mean
        self.m2 = math.fsum((v - mean) * (v - mean) for v in vals)


class BBands(Indicator):
    """Bollinger bands: SMA(period) ± k × population standard deviation. ``value`` is the middle."""

    __slots__ = ("_stats", "k", "lower", "middle", "period", "upper")

    OUTPUTS = (("_upper", "upper"), ("_middle", "middle"), ("_lower", "lower"))

    def __init__(self, period: int = 20, k: float = 2.0, name: str = "") -> None:
        super().__init__(name or f"bbands_{period}_{_num(k)}")
        self.period = _period("bbands", period)
        if not (math.isfinite(k) and k > 0):
            raise ConfigError("indicators", [("bbands", f"width must be a positive number, got {k!r}")])
        self.k = float(k)
        self._stats = WindowStats(period)
        self.upper = NAN
        self.middle = NAN
        self.lower = NAN

    def update(self, x: float) -> None:
        st = self._stats
        st.update(x)
        if st.count == self.period:
            mid = st.mean + st.shift
            band = self.k * math.sqrt(st.m2 / self.period)
            self.middle = mid
            self.value = mid
            self.upper = mid + band
            self.lower = mid - band
            self.ready = True


class ATR(Indicator):
    """Wilder's average true range; the first input only sets the previous close."""

    __slots__ = ("_n", "_prev_close", "_sum", "period")

    KIND = "hlc"

    def __init__(self, period: int, name: str = "") -> None:
        super().__init__(name or f"atr_{period}")
        self.period = _period("atr", period)
        self._prev_close = NAN
        self._n = 0  # true ranges seen, capped at period
        self._sum = 0.0

    def update(self, high: float, low: float, close: float) -> None:
        pc = self._prev_close
        self._prev_close = close
        if pc != pc:  # noqa: PLR0124 - NaN: the first input, no previous close yet
            return
        tr = high - low
        a = high - pc
        if a < 0.0:
            a = -a
        if a > tr:  # noqa: PLR1730 - a branch is cheaper than max() here
            tr = a
        b = low - pc
        if b < 0.0:
            b = -b
        if b > tr:  # noqa: PLR1730
            tr = b
        p = self.period
        if self.ready:
            self.value = (self.value * (p - 1) + tr) / p
            return
        self._n += 1
        self._sum += tr
        if self._n == p:
            self.value = self._sum / p
            self.ready = True


class RealisedVol(Indicator):
    """Sample standard deviation (ddof=1) of the last ``period`` log returns, times ``scale``.

    ``scale`` is the annualisation factor sqrt(periods per year); the engine passes
    sqrt(365 × 86400 s / bar interval) for bars (calendar time, as for 24/7 markets) and 1 for
    ticks (a per-trade figure), unless the spec gives periods per year (``rv:20:252``).
    """

    __slots__ = ("_prev", "_stats", "period", "scale")

    def __init__(self, period: int, scale: float = 1.0, name: str = "") -> None:
        super().__init__(name or f"rv_{period}")
        self.period = _period("rv", period, 2)
        self.scale = scale
        self._stats = WindowStats(period)
        self._prev = NAN

    def update(self, x: float) -> None:
        prev = self._prev
        if x <= 0.0:
            raise DataError(f"{self.name}: price {x} is not positive, so it has no log return",
                            indicator=self.name, price=x)
        self._prev = x
        if prev != prev:  # noqa: PLR0124 - NaN: the first input
            return
        st = self._stats
        st.update(math.log(x / prev))
        if st.count == self.period:
            self.value = math.sqrt(st.m2 / (self.period - 1)) * self.scale
            self.ready = True


class Correlation(Indicator):
    """Rolling Pearson correlation of two instruments' simple returns over ``period`` pairs.

    Returns pair up when both instruments have an input with the same ``ts`` (bars of the same
    interval); each return is from that instrument's previous input. 0 when either side is flat
    (TA-Lib's convention).
    """

    __slots__ = ("_cxy", "_mx", "_my", "_pa", "_pb", "_ra", "_rb", "_rx", "_ry", "_since", "_sx",
                 "_sy", "_ta", "_tb", "other", "period")

    KIND = "pair"

    def __init__(self, other: str, period: int, name: str = "") -> None:
        super().__init__(name or f"corr_{other}_{period}")
        self.other = other
        self.period = _period("corr", period, 2)
        self._rx = Ring(period)
        self._ry = Ring(period)
        self._mx = self._my = self._sx = self._sy = self._cxy = 0.0
        self._pa = self._pb = NAN
        self._ra = self._rb = NAN
        self._ta = -1
        self._tb = -2
        self._since = 0

    def update_a(self, ts: int, x: float) -> None:
        prev = self._pa
        self._pa = x
        if prev == prev and prev != 0.0:  # noqa: PLR0124 - not NaN
            self._ra = x / prev - 1.0
            self._ta = ts
            if ts == self._tb:
                self._pair()

    def update_b(self, ts: int, y: float) -> None:
        prev = self._pb
        self._pb = y
        if prev == prev and prev != 0.0:  # noqa: PLR0124 - not NaN
            self._rb = y / prev - 1.0
            self._tb = ts
            if ts == self._ta:
                self._pair()

    def _pair(self) -> None:
        x = self._ra
        y = self._rb
        self._ta = -1
        self._tb = -2
        rx = self._rx
        n = self.period
        if rx.count == n:  # remove the oldest pair, then add the new one
            xo = rx.push(x)
            yo = self._ry.push(y)
            mx = self._mx
            my = self._my
            mx1 = (mx * n - xo) / (n - 1)
            my1 = (my * n - yo) / (n - 1)
            dxo = xo - mx
            dyo = yo - my
            sx = self._sx - dxo * (xo - mx1)
            sy = self._sy - dyo * (yo - my1)
            cxy = self._cxy - dxo * (yo - my1)
            dx = x - mx1
            dy = y - my1
            mx = mx1 + dx / n
            my = my1 + dy / n
            sx0 = self._sx
            sy0 = self._sy
            self._sx = sx + dx * (x - mx)
            self._sy = sy + dy * (y - my)
            self._cxy = cxy + dx * (y - my)
            self._mx = mx
            self._my = my
            if self._sx < sx0 * CANCEL_RATIO or self._sy < sy0 * CANCEL_RATIO:
                self._since = RESUM_EVERY  # resum now: a spike left the window
        else:
            rx.push(x)
            self._ry.push(y)
            k = rx.count
            dx = x - self._mx
            dy = y - self._my
            self._mx += dx / k
            self._my += dy / k
            self._sx += dx * (x - self._mx)
            self._sy += dy * (y - self._my)
            self._cxy += dx * (y - self._my)
        self._since += 1
        if self._since >= RESUM_EVERY:
            self._resum()
        if rx.count == n:
            den = self._sx * self._sy
            self.value = self._cxy / math.sqrt(den) if den > 0.0 else 0.0
            self.ready = True

    def _resum(self) -> None:
        self._since = 0
        xs = self._rx.values()
        ys = self._ry.values()
        k = len(xs)
        mx = math.fsum(xs) / k
        my = math.fsum(ys) / k
        self._mx = mx
        self._my = my
        self._sx = math.fsum((a - mx) * (a - mx) for a in xs)
        self._sy = math.fsum((b - my) * (b - my) for b in ys)
        self._cxy = math.fsum((a - mx) * (b - my) for a, b in zip(xs, ys, strict=True))


# --------------------------------------------------------------------------------------------------
# Volume-weighted


class RollingVWAP(Indicator):
    """Volume-weighted average price of the last ``period`` inputs (the last price if no volume)."""

    __slots__ = ("_every", "_i", "_n", "_pv", "_spv", "_sv", "_v", "_wraps", "period")

    KIND = "pv"

    def __init__(self, period: int, name: str = "") -> None:
        super().__init__(name or f"vwap_{period}")
        self.period = _period("vwap", period)
        self._pv = [0.0] * period
        self._v = [0.0] * period
        self._i = 0
        self._n = 0
        self._spv = 0.0
        self._sv = 0.0
        self._every = self._wraps = _wraps_between_resums(period)

    def update(self, price: float, volume: float) -> None:
        pv = price * volume
        i = self._i
        pvs = self._pv
        vs = self._v
        spv = self._spv + pv - pvs[i]
        sv = self._sv + volume - vs[i]
        pvs[i] = pv
        vs[i] = volume
        i += 1
        if i == self.period:
            i = 0
            self._wraps -= 1
            if not self._wraps:
                self._wraps = self._every
                spv = math.fsum(pvs)
                sv = math.fsum(vs)
        self._i = i
        self._spv = spv
        self._sv = sv
        if not self.ready:
            self._n += 1
            if self._n < self.period:
                return
            self.ready = True
        self.value = spv / sv if sv > 0.0 else price


class SessionVWAP(Indicator):
    """VWAP since the instrument's session opened; resets at each session open.

    The calendar is asked for the next boundary once per session; the per-update check is one
    integer comparison against that cached boundary.
    """

    __slots__ = ("_next", "_spv", "_sv", "calendar", "session_start")

    KIND = "tpv"

    def __init__(self, calendar: TradingCalendar, name: str = "vwap") -> None:
        super().__init__(name)
        self.calendar = calendar
        self.session_start = 0
        self._next = -(2**62)  # forces a lookup on the first update
        self._spv = 0.0
        self._sv = 0.0

    def update(self, ts: int, price: float, volume: float) -> None:
        if ts >= self._next:  # always taken by the first update (_next starts far in the past)
            self.session_start = self.calendar.session_start(ts)
            self._next = self.calendar.next_session_start(ts)
            self._spv = 0.0
            self._sv = 0.0
            self.ready = True  # ready from the first update on: set here, not on every tick
        spv = self._spv + price * volume
        sv = self._sv + volume
        self._spv = spv
        self._sv = sv
        self.value = spv / sv if sv > 0.0 else price


class Momentum(Indicator):
    """Momentum score: |Δprice %| over the last ``period`` updates × the volume traded in them.

    ``100 × |p_t − p_{t−period}| / p_{t−period} × Σ volume_{t−period+1..t}``.
    """

    __slots__ = ("_every", "_i", "_n", "_prices", "_sv", "_vols", "_wraps", "period")

    KIND = "cv"

    def __init__(self, period: int, name: str = "") -> None:
        super().__init__(name or f"mom_{period}")
        self.period = _period("mom", period)
        size = period + 1  # prices: the newest and the one `period` updates before it
        self._prices = [0.0] * size
        self._vols = [0.0] * size  # the slot being overwritten is the one leaving the window
        self._i = 0
        self._n = 0
        self._sv = 0.0
        self._every = self._wraps = _wraps_between_resums(size)

    def update(self, close: float, volume: float) -> None:
        i = self._i
        prices = self._prices
        vols = self._vols
        j = i + 1
        if j == len(prices):
            j = 0
        # After this update the window's volumes are slots other than j (the oldest), whose
        # volume leaves; the base price is the one in slot j.
        sv = self._sv + volume - vols[j] if self._n >= self.period else self._sv + volume
        prices[i] = close
        vols[i] = volume
        if j == 0:
            self._wraps -= 1
            if not self._wraps:
                self._wraps = self._every
                sv = math.fsum(vols) - (vols[j] if self._n >= self.period else 0.0)
        self._i = j
        self._sv = sv
        if not self.ready:
            self._n += 1
            if self._n <= self.period:
                return
        base = prices[j]
        if base != 0.0:
            self.value = abs(close - base) / abs(base) * 100.0 * sv
            self.ready = True


# --------------------------------------------------------------------------------------------------
# Order book


class BookImbalance(Indicator):
    """Order-book imbalance over the top ``levels`` levels: (bid size − ask size) / (sum), in [−1, 1].

    From a top-of-book quote only level 1 is known, so a quote gives the level-1 imbalance.
    """

    __slots__ = ("levels",)

    KIND = "book"

    def __init__(self, levels: int = 5, name: str = "") -> None:
        super().__init__(name or f"obi_{levels}")
        self.levels = _period("obi", levels)

    def update_quote(self, bid_size: float, ask_size: float) -> None:
        total = bid_size + ask_size
        self.value = (bid_size - ask_size) / total if total > 0.0 else 0.0
        self.ready = True

    def update_sizes(self, bid_sizes: list[float], ask_sizes: list[float]) -> None:
        """Sizes best first on each side (the engine's local book keeps them so)."""
        n = self.levels
        b = 0.0
        for s in bid_sizes[:n] if len(bid_sizes) > n else bid_sizes:
            b += s
        a = 0.0
        for s in ask_sizes[:n] if len(ask_sizes) > n else ask_sizes:
            a += s
        total = a + b
        self.value = (b - a) / total if total > 0.0 else 0.0
        self.ready = True


def _wraps_between_resums(period: int) -> int:
    """How many trips round a ring of ``period`` make about :data:`RESUM_EVERY` updates."""
    return max(1, RESUM_EVERY // period)


def _num(x: float) -> str:
    """2.0 -> "2", 2.5 -> "2.5" (for column names)."""
    return str(int(x)) if float(x).is_integer() else repr(float(x))
