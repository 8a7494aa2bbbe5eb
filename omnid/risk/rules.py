"""The gate's rules: each a small named object holding its own configuration and state.

A rule's ``check`` returns ``None`` to pass or a :data:`Verdict` ``(rule, message, numbers)`` to
deny; the gate turns a verdict into a recorded :class:`~omnid.risk.events.RiskDenial`. Rules never
read the wall clock (the gate hands them ``now`` from its Clock) and cache anything that needs time
zone arithmetic, so the per-intent cost is a few comparisons.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import deque
from collections.abc import Callable, Mapping

from omnid.calendar import NS_PER_SECOND, TradingCalendar, to_ns, zone
from omnid.model import Instrument, IntentAction, Side
from omnid.ports import PortfolioView

_BUY = Side.BUY
_SELL = Side.SELL

Verdict = tuple[str, str, dict[str, float]]
#: (strategy_id, instrument_id, side, action): what the duplicate guard compares.
DupKey = tuple[str, str, Side, IntentAction]

# Relative slack for comparisons of float money against a limit, so that a value computed exactly at
# the limit (0.1 + 0.2 style noise included) passes and anything materially over it does not.
EPS = 1e-9


def within(value: float, limit: float) -> bool:
    """``value`` is at most ``limit`` (with float slack); False for NaN, so checks fail closed."""
    return value <= limit + EPS * max(1.0, abs(limit))


# --------------------------------------------------------------------------------------------------
# Kill switch and loss limits


class KillSwitch:
    """Halts new entries until resumed. Several sources may hold a halt at once (the operator as
    ``kill_switch``, the ``daily_loss`` and ``max_drawdown`` limits); entries resume when none does.
    A denial names the first holding source as its rule."""

    name = "kill_switch"

    def __init__(self) -> None:
        self.halts: dict[str, str] = {}

    @property
    def halted(self) -> bool:
        return bool(self.halts)

    def check(self) -> Verdict | None:
        if not self.halts:
            return None
        source, reason = next(iter(self.halts.items()))
        return source, f"new entries are halted ({source}: {reason})", {"halts": float(len(self.halts))}


class LocalDay:
    """Which local day a timestamp falls on (an integer key), cached so most calls are a compare."""

    __slots__ = ("_hi", "_key", "_lo", "tz")

    def __init__(self, tz: str) -> None:
        self.tz = tz
        self._lo = 1
        self._hi = 0
        self._key = 0
        zone(tz)

    def key(self, ts: int) -> int:
        if self._lo <= ts < self._hi:
            return self._key
        tzinfo = zone(self.tz)
        day = dt.datetime.fromtimestamp(ts / NS_PER_SECOND, tz=tzinfo).date()
        self._lo = to_ns(dt.datetime.combine(day, dt.time(0), tzinfo=tzinfo))
        self._hi = to_ns(dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=tzinfo))
        self._key = day.toordinal()
        return self._key


class LossLimits:
    """Max daily loss (amount and/or % of the day's starting equity) and max drawdown from peak.

    A breach halts new entries through the kill switch. The daily-loss halt lifts by itself when
    the local day (``day_timezone``) changes; a drawdown halt stays until an operator resumes.
    """

    name = "loss_limits"
    DAILY = "daily_loss"
    DRAWDOWN = "max_drawdown"

    def __init__(
        self,
        *,
        max_daily_loss: float,
        max_daily_loss_pct: float,
        max_drawdown_pct: float,
        day_tz: str,
        kill: KillSwitch,
    ) -> None:
        self.max_daily_loss = max_daily_loss
        self.max_daily_loss_frac = max_daily_loss_pct / 100.0
        self.max_drawdown_pct = max_drawdown_pct
        self.enabled = bool(max_daily_loss or max_daily_loss_pct or max_drawdown_pct)
        self._day = LocalDay(day_tz)
        self._halt_day = -1
        self._kill = kill
        self.on_lift: Callable[[str, int], None] | None = None

    def daily_limit(self, equity: float, daily_pnl: float) -> float:
        """The loss allowed today: the tighter of the amount and the % of the day's start equity."""
        limit = math.inf
        if self.max_daily_loss > 0:
            limit = self.max_daily_loss
        if self.max_daily_loss_frac > 0:
            limit = min(limit, (equity - daily_pnl) * self.max_daily_loss_frac)
        return limit

    def refresh(self, now: int) -> None:
        """Lift a daily-loss halt left over from an earlier local day (and say so via ``on_lift``)."""
        halts = self._kill.halts
        if self.DAILY in halts and self._day.key(now) != self._halt_day:
            del halts[self.DAILY]
            if self.on_lift is not None:
                self.on_lift(self.DAILY, now)

    def evaluate(self, portfolio: PortfolioView, now: int) -> Verdict | None:
        """Check the portfolio; on a new breach set the halt and return the verdict that caused it."""
        if not self.enabled:
            return None
        halts = self._kill.halts
        self.refresh(now)
        if (self.max_daily_loss > 0 or self.max_daily_loss_frac > 0) and self.DAILY not in halts:
            equity = portfolio.equity()
            pnl = portfolio.daily_pnl()
            limit = self.daily_limit(equity, pnl)
            if not within(-pnl, limit):  # a NaN P&L (a broken ledger) halts too
                self._halt_day = self._day.key(now)
                msg = f"daily loss {-pnl:.2f} is over the limit {limit:.2f}"
                halts[self.DAILY] = msg
                return self.DAILY, msg, {"daily_pnl": pnl, "limit": limit, "equity": equity}
        if self.max_drawdown_pct > 0 and self.DRAWDOWN not in halts:
            equity = portfolio.equity()
            peak = portfolio.peak_equity()
            if peak > 0:
                dd_pct = (peak - equity) / peak * 100.0
                if not within(dd_pct, self.max_drawdown_pct):
                    msg = f"drawdown {dd_pct:.2f} % from peak {peak:.2f} is over {self.max_drawdown_pct} %"
                    halts[self.DRAWDOWN] = msg
                    return (
                        self.DRAWDOWN,
                        msg,
                        {"drawdown_pct": dd_pct, "limit_pct": self.max_drawdown_pct, "peak": peak,
                         "equity": equity},
                    )
        return None


# --------------------------------------------------------------------------------------------------
# Session window and cut-off


class _Window:
    """A cached answer for one calendar: ``value`` holds for ``lo <= ts < hi``."""

    __slots__ = ("hi", "lo", "value")

    def __init__(self) -> None:
        self.lo = 1
        self.hi = 0
        self.value = True


class SessionWindow:
    """No new entries outside the instrument's session, nor after a local cut-off time.

    ``cutoffs`` maps an instrument id to its calendar's cut-off (local wall time in the calendar's
    time zone). Answers are cached per instrument for as long as they hold.
    """

    name = "session_window"
    CUTOFF = "entry_cutoff"

    def __init__(self, *, enabled: bool, cutoffs: Mapping[str, dt.time]) -> None:
        self.enabled = enabled
        self.cutoffs = dict(cutoffs)
        self._open: dict[str, _Window] = {}
        self._cut: dict[str, _Window] = {}

    def check(self, inst: Instrument, inst_id: str, now: int) -> Verdict | None:
        cal = inst.calendar
        if self.enabled and not cal.always_open:
            w = self._open.get(inst_id)
            if w is None:
                w = self._open[inst_id] = _Window()
            if not (w.lo <= now < w.hi):
                self._refresh_open(cal, now, w)
            if not w.value:
                return (
                    self.name,
                    f"{inst_id}: no new entries outside the session ({cal.open}-{cal.close} {cal.tz})",
                    {"ts": float(now), "next_open": float(w.hi)},
                )
        if self.cutoffs:
            cut = self.cutoffs.get(inst_id)
            if cut is not None:
                w = self._cut.get(inst_id)
                if w is None:
                    w = self._cut[inst_id] = _Window()
                if not (w.lo <= now < w.hi):
                    self._refresh_cut(cal.tz, cut, now, w)
                if not w.value:
                    return (
                        self.CUTOFF,
                        f"{inst_id}: no new entries after the {cut.isoformat('minutes')} {cal.tz} cut-off",
                        {"ts": float(now), "cutoff": float(w.lo)},
                    )
        return None

    @staticmethod
    def _refresh_open(cal: TradingCalendar, now: int, w: _Window) -> None:
        bounds = cal.session_bounds(now)
        if bounds is not None and bounds[0] <= now < bounds[1]:
            w.lo, w.hi, w.value = bounds[0], bounds[1], True
        elif bounds is not None and now < bounds[0]:
            w.lo, w.hi, w.value = now, bounds[0], False
        else:
            w.lo, w.hi, w.value = now, cal.next_session_start(now), False

    @staticmethod
    def _refresh_cut(tz: str, cut: dt.time, now: int, w: _Window) -> None:
        tzinfo = zone(tz)
        day = dt.datetime.fromtimestamp(now / NS_PER_SECOND, tz=tzinfo).date()
        midnight = to_ns(dt.datetime.combine(day, dt.time(0), tzinfo=tzinfo))
        cutoff = to_ns(dt.datetime.combine(day, cut, tzinfo=tzinfo))
        tomorrow = to_ns(dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=tzinfo))
        if now < cutoff:
            w.lo, w.hi, w.value = midnight, cutoff, True
        else:
            w.lo, w.hi, w.value = cutoff, tomorrow, False


# --------------------------------------------------------------------------------------------------
# Order flow: duplicates and rate


class DuplicateGuard:
    """The same strategy/instrument/side/action again while its previous order is open, or within
    ``window_ns`` of the previous approval, is a duplicate (a strategy firing twice on one signal)."""

    name = "duplicate"

    def __init__(self, *, enabled: bool, window_ns: int) -> None:
        self.enabled = enabled
        self.window_ns = window_ns
        self.open: dict[DupKey, int] = {}
        self.last: dict[DupKey, int] = {}

    def check(self, key: DupKey, now: int) -> Verdict | None:
        if not self.enabled:
            return None
        n = self.open.get(key, 0)
        if n:
            return (
                self.name,
                f"{key[0]} already has an open {key[3]} {key[2]} order on {key[1]}",
                {"open_orders": float(n)},
            )
        if self.window_ns:
            last = self.last.get(key)
            if last is not None and now - last < self.window_ns:
                age = (now - last) / NS_PER_SECOND
                return (
                    self.name,
                    f"{key[0]} sent the same {key[3]} {key[2]} on {key[1]} {age:.3f} s ago "
                    f"(window {self.window_ns / NS_PER_SECOND} s)",
                    {"age_s": age, "window_s": self.window_ns / NS_PER_SECOND},
                )
        return None

    def approved(self, key: DupKey, now: int) -> None:
        if self.enabled and self.window_ns:
            self.last[key] = now


class RateLimit:
    """At most ``max_orders`` approvals in any ``window_ns`` (a sliding window on the clock).

    Every approval counts; only entries are denied by it (an exit must never wait on a throttle).
    """

    name = "rate_limit"

    def __init__(self, *, max_orders: int, window_ns: int) -> None:
        self.max_orders = max_orders
        self.window_ns = window_ns
        self.times: deque[int] = deque()

    def in_window(self, now: int) -> int:
        times = self.times
        edge = now - self.window_ns
        while times and times[0] <= edge:
            times.popleft()
        return len(times)

    def check(self, now: int) -> Verdict | None:
        if not self.max_orders:
            return None
        n = self.in_window(now)
        if n >= self.max_orders:
            return (
                self.name,
                f"{n} orders in the last {self.window_ns / NS_PER_SECOND} s (limit {self.max_orders})",
                {"orders": float(n), "limit": float(self.max_orders),
                 "window_s": self.window_ns / NS_PER_SECOND},
            )
        return None

    def approved(self, now: int) -> None:
        if self.max_orders:
            self.times.append(now)


# --------------------------------------------------------------------------------------------------
# Prices and quantities


class PriceCollar:
    """A limit price more than ``pct`` % away from the last price is a fat finger."""

    name = "price_collar"

    def __init__(self, *, pct: float) -> None:
        self.pct = pct

    def check(self, limit_price: float, last: float) -> Verdict | None:
        if not self.pct:
            return None
        away = abs(limit_price - last) / last * 100.0
        if not within(away, self.pct):
            return (
                self.name,
                f"limit {limit_price} is {away:.4f} % from the last price {last} (collar {self.pct} %)",
                {"limit_price": limit_price, "last_price": last, "away_pct": away, "collar_pct": self.pct},
            )
        return None


class Rounder:
    """Tick/lot rounding for one instrument, equal to :meth:`Instrument.round_price`/``round_qty``
    but without building Decimals on every call (rounding to the step's decimal places recovers the
    exact decimal the model's Decimal arithmetic produces).

    ``round(n * step, places)`` costs ~0.25 µs; when the step is ``step_int / step_scale`` exactly
    (``step_int`` an integer, ``step_scale`` a power of ten) and ``n * step_int`` is below
    :data:`EXACT_STEPS`, ``n * step_int / step_scale`` (an exactly rounded integer division) is the
    same float: both are the float nearest to the decimal ``n * step_int / 10**places``, because
    ``n * step`` is then within half a unit of the last place of it.
    """

    __slots__ = (
        "lot", "lot_int", "lot_places", "lot_scale", "tick", "tick_int", "tick_places", "tick_scale",
    )

    def __init__(self, inst: Instrument) -> None:
        self.tick = inst.tick_size
        self.lot = inst.lot_size
        self.tick_places = _places(self.tick)
        self.lot_places = _places(self.lot)
        self.tick_int, self.tick_scale = _as_fraction(self.tick, self.tick_places)
        self.lot_int, self.lot_scale = _as_fraction(self.lot, self.lot_places)

    def price(self, price: float, side: Side) -> float:
        tick = self.tick
        if tick <= 0:
            return price
        steps = price / tick
        if side is _BUY:
            n = math.floor(steps + 1e-9)
        elif side is _SELL:
            n = math.ceil(steps - 1e-9)
        else:
            n = round(steps)
        places = self.tick_places
        if places == 0:
            return n * tick
        steps = n * self.tick_int
        if 0 < steps < EXACT_STEPS:
            return steps / self.tick_scale
        return round(n * tick, places)

    def qty(self, qty: float) -> float:
        """Round a positive quantity down to the lot."""
        lot = self.lot
        if lot <= 0:
            return qty
        n = math.floor(qty / lot + 1e-9)
        if not n:
            return 0.0
        places = self.lot_places
        if places == 0:
            return n * lot
        steps = n * self.lot_int
        if 0 < steps < EXACT_STEPS:
            return steps / self.lot_scale
        return round(n * lot, places)


#: Below this many steps, ``n * step`` is within 2**-51 relative of the decimal ``n * step_int /
#: step_scale``, far inside the half unit of the last place that ``round`` needs (see Rounder).
EXACT_STEPS = 2**50


def _as_fraction(step: float, places: int) -> tuple[int, int]:
    """``(step_int, 10**places)`` when ``step`` is exactly the float of that fraction, else ``(0, 1)``
    (then Rounder always uses ``round``)."""
    if not (0.0 < step < math.inf) or places > 22:
        return 0, 1
    scale = 10**places
    whole = round(step * scale)
    if whole <= 0 or whole / scale != step:
        return 0, 1
    return whole, scale


def _places(step: float) -> int:
    text = repr(step)
    if "e" in text or "E" in text:
        mant, _, exp = text.lower().partition("e")
        frac = mant.partition(".")[2].rstrip("0")
        return max(len(frac) - int(exp), 0)
    frac = text.partition(".")[2].rstrip("0")
    return len(frac)


class MinSize:
    """The venue's filters: a quantity that rounds to nothing, or under min qty/notional, is denied."""

    name = "min_size"
    ROUNDING = "rounding"
    MIN_QTY = "min_qty"
    MIN_NOTIONAL = "min_notional"

    def check(self, inst: Instrument, raw_qty: float, qty: float, price: float) -> Verdict | None:
        if qty <= 0:
            return (
                self.ROUNDING,
                f"{inst.id}: quantity {raw_qty} rounds to 0 at lot size {inst.lot_size}",
                {"qty": raw_qty, "lot_size": inst.lot_size},
            )
        if inst.min_qty and qty < inst.min_qty * (1 - EPS):
            return (
                self.MIN_QTY,
                f"{inst.id}: quantity {qty} is below the minimum {inst.min_qty}",
                {"qty": qty, "min_qty": inst.min_qty},
            )
        if inst.min_notional:
            notional = qty * price * inst.multiplier
            if notional < inst.min_notional * (1 - EPS):
                return (
                    self.MIN_NOTIONAL,
                    f"{inst.id}: notional {notional:.8g} is below the minimum {inst.min_notional}",
                    {"qty": qty, "price": price, "notional": notional, "min_notional": inst.min_notional},
                )
        return None


# --------------------------------------------------------------------------------------------------
# Positions and exposure


class MaxPositions:
    """At most ``limit`` instruments with a non-zero position, counting orders still in flight."""

    name = "max_positions"

    def __init__(self, *, limit: int) -> None:
        self.limit = limit

    def check(self, projected_count: int) -> Verdict | None:
        if projected_count >= self.limit:
            return (
                self.name,
                f"{projected_count} positions open or opening (limit {self.limit})",
                {"positions": float(projected_count), "limit": float(self.limit)},
            )
        return None


class ExposureCaps:
    """Per-symbol and gross notional caps, each an amount and/or a % of equity (the tighter wins).

    ``max_qty`` says how large a position (in absolute units) a cap leaves room for, so the gate
    can deny an explicit quantity that would breach it or shrink one it sized itself.
    """

    name = "exposure"
    SYMBOL = "symbol_exposure"
    GROSS = "gross_exposure"

    def __init__(
        self, *, symbol: float, symbol_pct: float, gross: float, gross_pct: float
    ) -> None:
        self.symbol = symbol
        self.symbol_frac = symbol_pct / 100.0
        self.gross = gross
        self.gross_frac = gross_pct / 100.0
        self.has_symbol = bool(symbol or symbol_pct)
        self.has_gross = bool(gross or gross_pct)

    def symbol_cap(self, equity: float) -> float:
        cap = self.symbol if self.symbol > 0 else math.inf
        if self.symbol_frac > 0:
            cap = min(cap, (equity if equity > 0.0 else 0.0) * self.symbol_frac)  # NaN equity: no room
        return cap

    def gross_cap(self, equity: float) -> float:
        cap = self.gross if self.gross > 0 else math.inf
        if self.gross_frac > 0:
            cap = min(cap, (equity if equity > 0.0 else 0.0) * self.gross_frac)
        return cap
