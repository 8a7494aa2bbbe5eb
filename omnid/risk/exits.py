"""Managed exits: stop-loss, take-profit and trailing stop per position, and intraday square-off.

The engine calls :meth:`ExitManager.on_price` on every trade, so an instrument without a managed
position costs one dict lookup, and a managed one a few float compares (O(1), nothing allocated
until an exit fires). Levels come from the entry intent's ``stop_loss``/``take_profit`` (absolute
prices) or, when it has none, from ``[risk.exits]`` defaults as % of the entry price; the trailing
stop follows the best price since entry.

The manager tracks each instrument's net position from the fills it is told about (``on_fill``),
so it does not depend on whether the portfolio has booked a fill yet. An exit fires once: it stays
quiet while its close order is out, and re-arms if that order ends without flattening the position
(:meth:`rearm`, called by the gate when it denies the close, or :meth:`on_order_closed`).

Square-off: :meth:`install` puts one daily timer per configured calendar on the Clock
(``risk.square_off.<calendar>``) which emits a CLOSE intent for every open position in an instrument
on that calendar, read from the portfolio at the moment the timer fires.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Callable, Mapping

import msgspec

from omnid.calendar import TradingCalendar, parse_hhmm
from omnid.clock import Clock, TimeEvent
from omnid.errors import ConfigError
from omnid.model import Fill, Instrument, IntentAction, Order, OrderIntent, OrderType, Position, Side
from omnid.ports import PortfolioView
from omnid.risk.config import RiskConfig

Emit = Callable[[OrderIntent], None]

#: Quantities smaller than this are treated as flat (float residue of partial fills).
QTY_EPS = 1e-12
_BUY = Side.BUY
_SELL = Side.SELL

STOP_LOSS = "stop_loss"
TRAILING_STOP = "trailing_stop"
TAKE_PROFIT = "take_profit"
SQUARE_OFF = "square_off"


class ExitLevels(msgspec.Struct, kw_only=True):
    """A managed position's levels, for status and tests (``nan`` where a level is not set)."""

    instrument_id: str
    strategy_id: str
    qty: float
    entry: float
    stop_loss: float
    trailing_stop: float
    take_profit: float
    best: float
    exiting: bool


class _Managed:
    """One managed position. Longs keep stops below (``-inf`` when unset), shorts above (``+inf``)."""

    __slots__ = (
        "best", "entry", "exiting", "fixed_stop", "fixed_take", "sign", "stop", "stop_kind",
        "strategy_id", "take", "trail", "trail_frac",
    )

    def __init__(self, strategy_id: str, sign: int, trail_frac: float) -> None:
        self.strategy_id = strategy_id
        self.sign = sign
        self.trail_frac = trail_frac
        self.entry = 0.0
        self.best = 0.0
        self.fixed_stop: float | None = None
        self.fixed_take: float | None = None
        self.stop = -math.inf * sign
        self.take = math.inf * sign
        self.trail = -math.inf * sign
        self.stop_kind = STOP_LOSS
        self.exiting = False


class _Track:
    """An instrument's net position as the fills told it (kept when flat: ``qty`` 0, ``avg`` then
    unused), and the strategy that last opened it (None until one did)."""

    __slots__ = ("avg", "owner", "qty")

    def __init__(self) -> None:
        self.qty = 0.0
        self.avg = 0.0
        self.owner: str | None = None


class ExitManager:
    """Stop-loss, take-profit and trailing stops per instrument, and timed intraday square-off."""

    def __init__(
        self,
        config: RiskConfig,
        *,
        portfolio: PortfolioView,
        instruments: Mapping[str, Instrument],
        calendars: Mapping[str, TradingCalendar] | None = None,
    ) -> None:
        ex = config.exits
        self._stop_frac = ex.stop_loss_pct / 100.0
        self._take_frac = ex.take_profit_pct / 100.0
        self._trail_frac = ex.trailing_stop_pct / 100.0
        # Whether a fill can arm levels without an entry's own stop/take-profit.
        self._defaults = bool(self._stop_frac or self._take_frac or self._trail_frac)
        self._portfolio = portfolio
        self._instruments = dict(instruments)
        self._track: dict[str, _Track] = {}
        self._plans: dict[str, tuple[str, int, float | None, float | None]] = {}
        self._managed: dict[str, _Managed] = {}
        self._emit: Emit | None = None
        cals = resolve_calendars(calendars)
        self._square_off: dict[str, tuple[TradingCalendar, dt.time, list[str]]] = {}
        for name, hhmm in ex.square_off.items():
            cal = cals.get(name)
            if cal is None:
                problem = f"unknown calendar {name!r} (known: {sorted(cals)})"
                raise ConfigError("risk", [(f"exits.square_off.{name}", problem)])
            members = [iid for iid, inst in self._instruments.items() if inst.calendar == cal]
            self._square_off[name] = (cal, parse_hhmm(hhmm, key=f"exits.square_off.{name}"), members)

    @property
    def managed(self) -> Mapping[str, object]:
        """Instruments with a managed exit (the live mapping, read only): the engine's per-instrument
        trade path tests membership and skips :meth:`on_price` for the rest (most ticks)."""
        return self._managed

    @property
    def plans(self) -> Mapping[str, object]:
        """Approved entries' planned levels waiting for their fill (the live mapping, read only):
        while it and :attr:`managed` are empty, an order's end changes nothing here."""
        return self._plans

    # -- wiring ------------------------------------------------------------------------------------

    def install(self, clock: Clock, emit: Emit) -> None:
        """Arm the daily square-off timers; their CLOSE intents go to ``emit`` (which should pass
        them through :meth:`RiskGate.check` and route the result, like any strategy intent)."""
        self._emit = emit
        for name, (cal, at, _members) in self._square_off.items():
            weekdays = None if cal.always_open else cal.weekdays
            clock.set_daily(
                f"risk.square_off.{name}",
                at.isoformat("seconds"),
                cal.tz,
                functools.partial(self._on_square_off, name),
                weekdays=weekdays,
            )

    def _on_square_off(self, name: str, ev: TimeEvent) -> None:
        emit = self._emit
        for intent in self.square_off(name, ev.ts_fired):
            if emit is not None:
                emit(intent)

    # -- what the gate/engine tells us ---------------------------------------------------------------

    def plan(self, intent: OrderIntent) -> None:
        """Remember an approved entry's stop/take-profit until its fill opens the position."""
        self._plans[intent.instrument_id] = (
            intent.strategy_id, intent.side.sign, intent.stop_loss, intent.take_profit
        )

    def on_fill(self, fill: Fill) -> None:
        """Book a fill into the tracked net position and (re)compute the managed levels."""
        iid = fill.instrument_id
        side = fill.side
        sign = 1 if side is _BUY else -1 if side is _SELL else 0  # Side.sign without the member lookup
        qty = fill.qty
        if sign == 0 or not qty > 0:
            return
        t = self._track.get(iid)
        before = t.qty if t is not None else 0.0
        after = before + sign * qty
        if -QTY_EPS <= after <= QTY_EPS:  # abs(after) <= QTY_EPS (NaN too) without the call
            if t is not None:
                t.qty = 0.0
            managed = self._managed
            if managed:
                managed.pop(iid, None)
            return
        if t is None:
            t = self._track[iid] = _Track()
        t.qty = after
        # _arm with no plan, no default level and no managed position would only find nothing to
        # manage: skip it (the common case of a strategy that exits by itself).
        plans = self._plans
        managed = self._managed
        arm = self._defaults or (bool(plans) and iid in plans) or (bool(managed) and iid in managed)
        if before == 0.0 or (before > 0) != (after > 0):  # opened, or flipped through flat
            price = fill.price
            t.avg = price
            t.owner = fill.strategy_id
            if arm:
                self._arm(iid, fill.strategy_id, 1 if after > 0 else -1, price, price)
        elif abs(after) > abs(before):  # added: new average, levels follow the new entry
            # (an open position always has its average and owner: set when it opened, or adopted)
            avg = (t.avg * abs(before) + fill.price * qty) / abs(after)
            t.avg = avg
            if arm:
                m = self._managed.get(iid)
                best = m.best if m is not None else fill.price
                owner = t.owner if t.owner is not None else fill.strategy_id
                self._arm(iid, owner, 1 if after > 0 else -1, avg, best)
        # A reduction keeps the levels; an exit in progress stays quiet until its order ends.

    def adopt(self, position: Position, *, strategy_id: str = "risk") -> None:
        """Take over a position that exists without fills we saw (restored after a restart,
        reconciled from the broker): track it and arm the configured default levels from its
        average price."""
        iid = position.instrument_id
        qty = position.qty
        if abs(qty) <= QTY_EPS or not position.avg_price > 0.0:
            return
        t = self._track.get(iid)
        if t is None:
            t = self._track[iid] = _Track()
        t.qty = qty
        t.avg = position.avg_price
        t.owner = strategy_id
        best = position.last_price if position.last_price > 0.0 else position.avg_price
        sign = 1 if qty > 0 else -1
        best = max(best, position.avg_price) if sign > 0 else min(best, position.avg_price)
        self._arm(iid, strategy_id, sign, position.avg_price, best)

    def on_order_closed(self, order: Order) -> None:
        """An order ended: a close that left the position open re-arms its exit; an entry that
        never filled drops its planned levels (so they cannot attach to a later entry)."""
        if order.action is IntentAction.CLOSE:
            self.rearm(order.instrument_id)
        elif order.filled_qty <= 0.0:
            plan = self._plans.get(order.instrument_id)
            if plan is not None and plan[0] == order.strategy_id and plan[1] == order.side.sign:
                del self._plans[order.instrument_id]

    def rearm(self, instrument_id: str) -> None:
        """Let a managed position's exit fire again (its close was denied or did not flatten)."""
        m = self._managed.get(instrument_id)
        if m is not None:
            m.exiting = False

    def _arm(self, iid: str, strategy_id: str, sign: int, entry: float, best: float) -> None:
        plan = self._plans.get(iid)
        stop: float | None = None
        take: float | None = None
        if plan is not None and plan[1] == sign:
            strategy_id, stop, take = plan[0], plan[2], plan[3]
        elif (old := self._managed.get(iid)) is not None and old.sign == sign:
            stop, take = old.fixed_stop, old.fixed_take
        self._plans.pop(iid, None)
        if stop is None and self._stop_frac:
            stop_v = entry * (1.0 - sign * self._stop_frac)
        else:
            stop_v = stop if stop is not None else -math.inf * sign
        if take is None and self._take_frac:
            take_v = entry * (1.0 + sign * self._take_frac)
        else:
            take_v = take if take is not None else math.inf * sign
        if not (math.isfinite(stop_v) or math.isfinite(take_v) or self._trail_frac):
            self._managed.pop(iid, None)
            return
        m = _Managed(strategy_id, sign, self._trail_frac)
        m.fixed_stop, m.fixed_take = stop, take
        m.entry = entry
        m.best = best
        m.stop = stop_v
        m.take = take_v
        if self._trail_frac:
            m.trail = best * (1.0 - sign * self._trail_frac)
        self._managed[iid] = m

    # -- the hot path --------------------------------------------------------------------------------

    def on_price(self, instrument_id: str, price: float, ts: int) -> OrderIntent | None:
        """A trade printed: move the trailing stop and return a CLOSE intent if a level is crossed."""
        m = self._managed.get(instrument_id)
        if m is None or m.exiting:
            return None
        if m.sign > 0:
            if price > m.best:
                m.best = price
                if m.trail_frac:
                    m.trail = price * (1.0 - m.trail_frac)
            if price <= m.stop:
                return self._fire(instrument_id, m, STOP_LOSS, m.stop, price, ts)
            if price <= m.trail:
                return self._fire(instrument_id, m, TRAILING_STOP, m.trail, price, ts)
            if price >= m.take:
                return self._fire(instrument_id, m, TAKE_PROFIT, m.take, price, ts)
            return None
        if price < m.best:
            m.best = price
            if m.trail_frac:
                m.trail = price * (1.0 + m.trail_frac)
        if price >= m.stop:
            return self._fire(instrument_id, m, STOP_LOSS, m.stop, price, ts)
        if price >= m.trail:
            return self._fire(instrument_id, m, TRAILING_STOP, m.trail, price, ts)
        if price <= m.take:
            return self._fire(instrument_id, m, TAKE_PROFIT, m.take, price, ts)
        return None

    def _fire(
        self, iid: str, m: _Managed, kind: str, level: float, price: float, ts: int
    ) -> OrderIntent | None:
        t = self._track.get(iid)
        qty = abs(t.qty) if t is not None else 0.0
        if qty <= QTY_EPS:
            self._managed.pop(iid, None)
            return None
        m.exiting = True
        side = Side.SELL if m.sign > 0 else Side.BUY
        word = "below" if (m.sign > 0) == (kind != TAKE_PROFIT) else "above"
        return OrderIntent(
            strategy_id=m.strategy_id,
            instrument_id=iid,
            side=side,
            qty=qty,
            action=IntentAction.CLOSE,
            reason=f"{kind.replace('_', '-')}: price {price} is {word} {level:.8g} (entry {m.entry:.8g})",
            numbers={"price": price, "level": level, "entry": m.entry, "best": m.best, "qty": qty},
            ts_event=ts,
        )

    # -- square-off -----------------------------------------------------------------------------------

    def square_off(self, calendar: str, ts: int) -> list[OrderIntent]:
        """CLOSE intents for every open position on ``calendar`` (nothing on a non-trading day)."""
        entry = self._square_off.get(calendar)
        if entry is None:
            return []
        cal, at, members = entry
        if not cal.always_open and cal.session_bounds(ts) is None:
            return []
        out: list[OrderIntent] = []
        for iid in members:
            qty = self._portfolio.position_qty(iid)
            if abs(qty) <= QTY_EPS:
                continue
            m = self._managed.get(iid)
            if m is not None:
                m.exiting = True
            out.append(
                OrderIntent(
                    strategy_id=self._owner(iid),
                    instrument_id=iid,
                    side=Side.SELL if qty > 0 else Side.BUY,
                    qty=abs(qty),
                    order_type=OrderType.MARKET,
                    action=IntentAction.CLOSE,
                    reason=f"intraday square-off at {at.isoformat('minutes')} {cal.tz} ({calendar})",
                    numbers={"qty": qty},
                    ts_event=ts,
                )
            )
        return out

    def _owner(self, iid: str) -> str:
        """The strategy that last opened ``iid`` ("risk" if none did)."""
        t = self._track.get(iid)
        return t.owner if t is not None and t.owner is not None else "risk"

    def _qty(self, iid: str) -> float:
        """The tracked net position (0 when flat or never traded)."""
        t = self._track.get(iid)
        return t.qty if t is not None else 0.0

    # -- status -----------------------------------------------------------------------------------------

    @property
    def managed_count(self) -> int:
        return len(self._managed)

    def levels(self, instrument_id: str) -> ExitLevels | None:
        """The managed levels of one instrument's position, if it has any."""
        m = self._managed.get(instrument_id)
        if m is None:
            return None

        def fin(x: float) -> float:
            return x if math.isfinite(x) else math.nan

        return ExitLevels(
            instrument_id=instrument_id,
            strategy_id=m.strategy_id,
            qty=self._qty(instrument_id),
            entry=m.entry,
            stop_loss=fin(m.stop),
            trailing_stop=fin(m.trail),
            take_profit=fin(m.take),
            best=m.best,
            exiting=m.exiting,
        )


def resolve_calendars(calendars: Mapping[str, TradingCalendar] | None) -> dict[str, TradingCalendar]:
    """Named calendars: the built-ins, overlaid with the given (config) ones."""
    from omnid.config import BUILTIN_CALENDARS  # late: omnid.config imports omnid.risk.config

    out = dict(BUILTIN_CALENDARS)
    if calendars:
        out.update(calendars)
    return out
