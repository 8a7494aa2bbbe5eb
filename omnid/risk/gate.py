"""The pre-trade risk gate: every intent passes through :meth:`RiskGate.check`, always.

``check`` returns the intent sized and rounded to tick/lot, or a :class:`RiskDenial` that it has
already recorded. CLOSE intents (exits) are never blocked by entry rules (kill switch and loss
halts, session window and cut-off, rate limit, max positions, exposure caps); they are sized to
the open position, rounded, and checked for sanity, duplicates, venue minimums and the price collar.

The engine's side of the contract (all synchronous, in this order for one order's life):

1. ``out = gate.check(intent, last_price)``; if it is an :class:`OrderIntent`, build the Order;
2. ``gate.on_order_open(order)`` before submitting it (the gate counts orders in flight toward
   positions, exposure and the duplicate guard);
3. ``gate.on_fill(fill)`` for every fill (after or before the portfolio books it: either works);
4. ``gate.on_order_closed(order)`` when the order ends (filled, cancelled, rejected, expired);
5. ``gate.exits.on_price(instrument_id, price, ts)`` on every trade: a returned CLOSE intent goes
   back through ``check`` like any other;
6. ``gate.install(clock, emit)`` once: square-off timers, the periodic loss-limit check and
   flatten-on-halt send their CLOSE intents to ``emit``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from omnid.calendar import NS_PER_SECOND, TradingCalendar, parse_hhmm
from omnid.clock import Clock, TimeEvent
from omnid.errors import ConfigError
from omnid.model import Fill, Instrument, IntentAction, Order, OrderIntent, OrderStatus, OrderType, Side
from omnid.ports import PortfolioView, Recorder
from omnid.risk.config import RiskConfig
from omnid.risk.events import RiskDenial, RiskHaltEvent, RiskStatus
from omnid.risk.exits import QTY_EPS, ExitManager, resolve_calendars
from omnid.risk.rules import (
    EXACT_STEPS,
    DuplicateGuard,
    ExposureCaps,
    KillSwitch,
    LossLimits,
    MaxPositions,
    MinSize,
    PriceCollar,
    RateLimit,
    Rounder,
    SessionWindow,
    Verdict,
    within,
)
from omnid.risk.sizing import Sizer

Emit = Callable[[OrderIntent], None]
_replace = msgspec.structs.replace
_LIMIT_TYPES = frozenset({OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.LIMIT_MAKER})
_STOP_TYPES = frozenset({OrderType.STOP, OrderType.STOP_LIMIT})
# Enum member lookups on the class cost ~0.1 µs each in Python 3.11: bind them once.
_MARKET = OrderType.MARKET
_OPEN = IntentAction.OPEN
_BUY = Side.BUY
_SELL = Side.SELL
_NONE = Side.NONE
_INF = math.inf
_floor = math.floor
_TERMINAL = frozenset(s for s in OrderStatus if s.is_terminal)
_UNREAD = -(2**63)  # "the clock not read yet" (no clock is ever at this instant)

SANITY = "sanity"
CLOSE_POSITION = "close_position"


class _Book:
    """One instrument as the gate sees it, found with one dict lookup per order: its static facts
    (instrument, rounder, lot) and its orders in flight, ``buy``/``sell`` leaves (limits assume the
    worst outcome: every order on the side that grows the position fills, every other does not).
    ``pending`` says whether it is in the gate's in-flight map; when it leaves it, both sides go
    back to exactly 0 (a residue below ``QTY_EPS`` is dropped, not carried to the next order)."""

    __slots__ = (
        "buy", "has_min", "iid", "inst", "lot", "lot_int", "lot_places", "lot_scale", "mult", "pending", "px",
        "rounder", "sell", "session",
    )

    def __init__(self, iid: str, inst: Instrument, session: bool) -> None:
        self.iid = iid
        self.inst = inst
        self.rounder = Rounder(inst)
        self.lot = self.rounder.lot
        self.lot_places = self.rounder.lot_places
        self.lot_int = self.rounder.lot_int
        self.lot_scale = self.rounder.lot_scale
        self.mult = inst.multiplier
        self.has_min = bool(inst.min_qty or inst.min_notional)
        self.session = session
        self.buy = 0.0
        self.sell = 0.0
        self.pending = False
        #: The price its orders in flight are valued at (None until one is known).
        self.px: float | None = None


#: An order in flight (what it still may add to its instrument's position) is a list
#: ``[book: _Book, key: DupKey, sign: int, leaves: float]``, indexed by these: building a list costs
#: a fifth of constructing a class instance, once per order.
_P_BOOK, _P_KEY, _P_SIGN, _P_LEAVES = 0, 1, 2, 3


class RiskGate:
    """Approves (sized, rounded) or denies (recorded) every order intent; owns the managed exits."""

    def __init__(
        self,
        config: RiskConfig,
        *,
        clock: Clock,
        portfolio: PortfolioView,
        instruments: Mapping[str, Instrument],
        recorder: Recorder,
        calendars: Mapping[str, TradingCalendar] | None = None,
    ) -> None:
        self.config = config
        self._clock = clock
        self._pf = portfolio
        self._rec = recorder
        self._instruments = dict(instruments)
        cals = resolve_calendars(calendars)
        cutoffs = {}
        for name, hhmm in config.entry_cutoff.items():
            cal = cals.get(name)
            if cal is None:
                problem = f"unknown calendar {name!r} (known: {sorted(cals)})"
                raise ConfigError("risk", [(f"entry_cutoff.{name}", problem)])
            at = parse_hhmm(hhmm, key=f"entry_cutoff.{name}")
            for iid, inst in self._instruments.items():
                if inst.calendar == cal:
                    cutoffs[iid] = at
        self.kill = KillSwitch()
        self.loss = LossLimits(
            max_daily_loss=config.max_daily_loss,
            max_daily_loss_pct=config.max_daily_loss_pct,
            max_drawdown_pct=config.max_drawdown_pct,
            # Empty: the portfolio's own day boundary (omnid.portfolio.Portfolio has ``timezone``),
            # so the halt lifts when daily_pnl starts a new day; UTC for a view without one.
            day_tz=config.day_timezone or str(getattr(portfolio, "timezone", "") or "UTC"),
            kill=self.kill,
        )
        self.loss.on_lift = self._on_lift
        self.session = SessionWindow(enabled=config.session_window, cutoffs=cutoffs)
        self.duplicate = DuplicateGuard(
            enabled=config.duplicate_guard,
            window_ns=round(config.duplicate_window_seconds * NS_PER_SECOND),
        )
        self.rate = RateLimit(
            max_orders=config.max_orders, window_ns=round(config.rate_window_seconds * NS_PER_SECOND)
        )
        self.sizer = Sizer(config.sizing, default_stop_pct=config.exits.stop_loss_pct)
        self.min_size = MinSize()
        self.collar = PriceCollar(pct=config.price_collar_pct)
        self.max_positions = MaxPositions(limit=config.max_open_positions)
        self.exposure = ExposureCaps(
            symbol=config.max_symbol_exposure,
            symbol_pct=config.max_symbol_exposure_pct,
            gross=config.max_gross_exposure,
            gross_pct=config.max_gross_exposure_pct,
        )
        self.exits = ExitManager(config, portfolio=portfolio, instruments=self._instruments, calendars=cals)
        self._plans_exits = bool(
            config.exits.stop_loss_pct or config.exits.take_profit_pct or config.exits.trailing_stop_pct
        )
        # Which rules have anything to do, decided once (the hot path skips the rest).
        self._loss_on = self.loss.enabled
        self._dup_on = self.duplicate.enabled
        self._dup_window = self.duplicate.enabled and self.duplicate.window_ns > 0
        self._dup_open = self.duplicate.open  # the guard's live count of open orders per key
        self._rate_on = self.rate.max_orders > 0
        self._caps_on = self.exposure.has_symbol or self.exposure.has_gross
        self._all_in = config.sizing.mode == "all_in"
        self._at_fill = self._all_in and config.sizing.at_fill
        self._session_iids = frozenset(
            iid for iid, inst in self._instruments.items()
            if (config.session_window and not inst.calendar.always_open) or iid in cutoffs
        )
        self._fraction = config.sizing.mode == "fraction"
        self._frac = self.sizer.fraction
        self._books = {
            iid: _Book(iid, inst, iid in self._session_iids) for iid, inst in self._instruments.items()
        }
        # Whether check needs the time before it decides (else only a denial reads the clock).
        self._timed = self._loss_on or bool(self._session_iids) or self._dup_window or self._rate_on
        self._orders: dict[str, list[Any]] = {}  # orders in flight by client order id (see _P_BOOK)
        # Instruments with orders in flight, in the order they got them (sums over it keep that order).
        self._pend: dict[str, _Book] = {}
        # The exit manager's live maps: an order's end has nothing to tell it while both are empty.
        self._exit_managed = self.exits.managed
        self._exit_plans = self.exits.plans
        self._exits_on_fill = self.exits.on_fill
        self._emit: Emit | None = None
        self.approvals = 0
        self.denials = 0
        #: Per rule: [denials, the first one's message] (a backtest reports them; the daemon
        #: records each denial in full).
        self.denials_by_rule: dict[str, list[Any]] = {}

    # -- the rules, by name (for status and docs) ------------------------------------------------------

    @property
    def rules(self) -> tuple[object, ...]:
        return (
            self.kill, self.loss, self.session, self.duplicate, self.rate, self.sizer, self.min_size,
            self.collar, self.max_positions, self.exposure,
        )

    # -- wiring -------------------------------------------------------------------------------------

    def install(self, clock: Clock, emit: Emit) -> None:
        """Arm square-off timers and the periodic loss-limit check; their CLOSE intents go to ``emit``.

        ``emit`` should pass each intent through :meth:`check` and route what is approved.
        """
        self._emit = emit
        self.exits.install(clock, emit)
        secs = self.config.limits_check_seconds
        if self.loss.enabled and secs > 0:
            clock.set_periodic("risk.limits", round(secs * NS_PER_SECOND), self._on_limits_timer)

    def _on_limits_timer(self, ev: TimeEvent) -> None:
        self.check_limits()

    # -- the gate -----------------------------------------------------------------------------------

    def check(self, intent: OrderIntent, last_price: float) -> OrderIntent | RiskDenial:
        """Size, round and check one intent against every rule; approve it or record a denial."""
        # The clock is read up front only when a rule on needs it; otherwise a denial reads it (the
        # same instant: nothing in here moves the clock).
        now = self._clock.now_ns() if self._timed else _UNREAD
        iid = intent.instrument_id
        book = self._books.get(iid)
        if book is None:
            return self._deny(intent, (SANITY, f"unknown instrument {iid!r}", {}), now)
        side = intent.side
        action = intent.action
        order_type = intent.order_type
        if (
            side.__class__ is not Side
            or action.__class__ is not IntentAction
            or order_type.__class__ is not OrderType
        ):
            fixed = self._coerce(intent)
            if fixed is None:
                what = f"side={side!r} action={action!r} order_type={order_type!r}"
                return self._deny(intent, (SANITY, f"not a valid intent: {what}", {}), now)
            intent = fixed
            side = intent.side
            action = intent.action
            order_type = intent.order_type
        if side is _BUY:
            sign = 1
        elif side is _SELL:
            sign = -1
        else:
            return self._deny(intent, (SANITY, f"side must be buy or sell, got {str(side)!r}", {}), now)
        if not 0.0 < last_price < _INF:
            return self._deny(intent, (SANITY, f"last price {last_price} is not a usable price",
                                       {"last_price": last_price}), now)
        qty = intent.qty
        if not 0.0 <= qty < _INF:
            return self._deny(intent, (SANITY, f"quantity {qty} is not a usable quantity", {"qty": qty}), now)
        limit = intent.limit_price
        stop = intent.stop_price
        if order_type is _MARKET:
            limit = stop = None  # a stray price on a market order must not size or collar it
        else:
            rounder = book.rounder
            if order_type in _LIMIT_TYPES:
                if limit is None or not 0.0 < limit < _INF:
                    return self._deny(intent, (SANITY, f"a {order_type.value} order needs a positive "
                                               f"limit price, got {limit}", {}), now)
                limit = rounder.price(limit, side)
            else:
                limit = None
            if order_type in _STOP_TYPES:
                if stop is None or not 0.0 < stop < _INF:
                    return self._deny(intent, (SANITY, f"a {order_type.value} order needs a positive "
                                               f"stop price, got {stop}", {}), now)
                stop = rounder.price(stop, _NONE)
            else:
                stop = None
        opening = action is _OPEN
        # The guard's key, built and hashed only when the guard may have a verdict: an order open
        # (under any key: most intents come when none is) or a window of recent approvals.
        dup_check = False
        if self._dup_on and (self._dup_window or self._dup_open):
            key = (intent.strategy_id, iid, side, action)
            dup_check = self._dup_window or key in self._dup_open
        flatten: Verdict | None = None

        v: Verdict | None = None
        if opening:
            if self._loss_on:
                v = flatten = self.loss.evaluate(self._pf, now)
            if v is None and self.kill.halts:
                v = self.kill.check()
            if v is None and book.session:
                v = self.session.check(book.inst, iid, now)
            if v is None and dup_check:
                v = self.duplicate.check(key, now)
            if v is None and self._rate_on:
                v = self.rate.check(now)
        elif dup_check:
            v = self.duplicate.check(key, now)
        if v is not None:
            denial = self._deny(intent, v, now)
            if flatten is not None:
                self._on_new_halt(flatten, now)
            return denial

        ref = limit if limit is not None else last_price
        pos = self._pf.position_qty(iid)
        pending = book.pending
        if not pending:
            before = opposite = pos
        elif sign > 0:
            before, opposite = pos + book.buy, pos - book.sell
        else:
            before, opposite = pos - book.sell, pos + book.buy
        auto = qty == 0.0
        at_fill = auto and opening and self._at_fill and intent.order_type is OrderType.MARKET
        if opening:
            if auto:
                equity = self._pf.equity()
                if self._fraction and equity > 0.0:
                    # Sizer.size's "fraction" rule, the same arithmetic without the call.
                    qty = equity * self._frac / (ref * book.mult)
                else:
                    if self._all_in:
                        equity -= self._committed(iid, sign * before, ref * book.mult)
                    sized = self.sizer.size(book.inst, sign, ref, intent.stop_loss, equity)
                    if isinstance(sized, tuple):
                        return self._deny(intent, sized, now)
                    qty = sized
        else:
            closable = -sign * before
            if closable <= QTY_EPS:
                return self._deny(intent, (CLOSE_POSITION, f"no {'long' if sign < 0 else 'short'} "
                                           f"position in {iid} to close", {"position": before}), now)
            if auto or qty > closable:
                qty = closable
        raw = qty
        lot = book.lot
        if lot > 0:  # Rounder.qty, inline: down to the lot
            n = _floor(qty / lot + 1e-9)
            if not n:
                qty = 0.0
            elif book.lot_places == 0:
                qty = n * lot
            else:
                steps = n * book.lot_int
                qty = steps / book.lot_scale if 0 < steps < EXACT_STEPS else round(n * lot, book.lot_places)

        if opening and qty > 0.0:
            limit_n = self.max_positions.limit
            if limit_n and not pending and -QTY_EPS <= pos <= QTY_EPS:  # abs(pos) <= QTY_EPS
                # _projected_positions, inline: open positions plus flat instruments with orders out.
                pf = self._pf
                n_pos = pf.open_position_count()
                if self._pend:
                    for other in self._pend:
                        if abs(pf.position_qty(other)) <= QTY_EPS:
                            n_pos += 1
                if n_pos >= limit_n:
                    v = self.max_positions.check(n_pos)
                    if v is not None:
                        return self._deny(intent, v, now)
            if self._caps_on:
                capped = self._cap_exposure(iid, book.inst, sign, before, opposite, qty, ref, auto,
                                            book.rounder)
                if isinstance(capped, tuple):
                    return self._deny(intent, capped, now)
                if capped != qty:
                    at_fill = False  # a cap sized it: the broker must not size it up to all in
                qty = capped

        if qty <= 0.0 or book.has_min:  # else MinSize has nothing to say
            v = self.min_size.check(book.inst, raw, qty, ref)
            if v is not None:
                return self._deny(intent, v, now)
        if limit is not None:
            v = self.collar.check(limit, last_price)
            if v is not None:
                return self._deny(intent, v, now)

        if self._rate_on:
            self.rate.approved(now)
        if self._dup_window:  # (then key was built above)
            self.duplicate.approved(key, now)
        self.approvals += 1
        book.px = ref
        if at_fill:
            out = _replace(intent, qty=qty, all_in=True)  # the broker sizes it again at the fill
        elif intent.all_in:  # only the gate may ask a broker to size: nothing gets past its limits
            out = _replace(intent, qty=qty, limit_price=limit, stop_price=stop, all_in=False)
        elif limit is intent.limit_price and stop is intent.stop_price:  # the common market order
            out = _replace(intent, qty=qty)
        else:
            out = _replace(intent, qty=qty, limit_price=limit, stop_price=stop)
        if opening and (self._plans_exits or intent.stop_loss is not None or intent.take_profit is not None):
            self.exits.plan(out)
        return out

    @staticmethod
    def _coerce(intent: OrderIntent) -> OrderIntent | None:
        """An intent whose enums arrived as plain strings, with real enums (None if not valid)."""
        try:
            return _replace(
                intent,
                side=Side(intent.side),
                action=IntentAction(intent.action),
                order_type=OrderType(intent.order_type),
            )
        except (ValueError, TypeError):
            return None

    def _cap_exposure(
        self,
        iid: str,
        inst: Instrument,
        sign: int,
        before: float,
        opposite: float,
        qty: float,
        price: float,
        auto: bool,
        rounder: Rounder,
    ) -> float | Verdict:
        """The quantity after the symbol and gross caps: denied if explicit and over, else shrunk.

        ``before`` is the position if every order in flight on this order's side fills, ``opposite``
        if every one on the other side does: an order that does not push the worst case further
        out (a reduction) is not capped.
        """
        after = before + sign * qty
        if abs(after) <= max(abs(before), abs(opposite)) + QTY_EPS:
            return qty
        pm = price * inst.multiplier
        equity = self._pf.equity()
        caps = self.exposure
        if caps.has_symbol:
            v = self._one_cap(caps.SYMBOL, caps.symbol_cap(equity), 0.0, iid, sign, before, qty, pm, equity,
                              auto, rounder)
            if isinstance(v, tuple):
                return v
            qty = v
        if caps.has_gross:
            pf = self._pf
            others = pf.gross_exposure() - pf.exposure(iid)
            if self._pend:
                others += self._pending_gross(iid)
            return self._one_cap(caps.GROSS, caps.gross_cap(equity), others, iid, sign, before, qty, pm,
                                 equity, auto, rounder)
        return qty

    @staticmethod
    def _one_cap(
        rule: str,
        cap: float,
        others: float,
        iid: str,
        sign: int,
        before: float,
        qty: float,
        pm: float,
        equity: float,
        auto: bool,
        rounder: Rounder,
    ) -> float | Verdict:
        """One cap: ``others`` plus this position's notional after the order must stay within it."""
        total = others + abs(before + sign * qty) * pm
        if within(total, cap):
            return qty
        numbers = {"qty": qty, "unit_notional": pm, "exposure": total, "cap": cap, "position": before,
                   "equity": equity}
        what = "symbol" if rule == ExposureCaps.SYMBOL else "gross"
        if not auto:
            return rule, f"{iid}: {what} exposure {total:.2f} would exceed the cap {cap:.2f}", numbers
        room = (cap - others) / pm - sign * before
        qty = rounder.qty(room) if room > 0 else 0.0
        if qty <= 0.0:
            return rule, f"{iid}: no room under the {what} exposure cap {cap:.2f}", numbers
        return qty

    def free_funds(self, instrument_id: str, sign: int, price: float) -> float:
        """What an all-in entry in ``instrument_id`` on side ``sign`` may spend at ``price`` now:
        equity less the notional at work elsewhere and on this side (as the gate sizes it at the
        decision; backtesting.py's ``margin_available``). The paper broker asks at the fill."""
        book = self._books.get(instrument_id)
        mult = book.mult if book is not None else 1.0
        pos = self._pf.position_qty(instrument_id)
        return self._pf.equity() - self._committed(instrument_id, sign * pos, price * mult)

    def _committed(self, iid: str, same_side: float, unit: float) -> float:
        """Notional already at work, so that "all in" never levers up: every other instrument's
        exposure (with orders in flight) plus this one's position on the order's own side. A
        position on the other side is not counted: the order reverses it (its close frees it)."""
        pf = self._pf
        used = pf.gross_exposure() - pf.exposure(iid) + max(same_side, 0.0) * unit
        if self._pend:
            used += self._pending_gross(iid)
        return used

    def _pending_gross(self, exclude: str) -> float:
        """How much orders in flight (other than on ``exclude``) may add to gross exposure, at worst."""
        total = 0.0
        for iid, book in self._pend.items():
            if iid == exclude:
                continue
            cur = self._pf.position_qty(iid)
            worst = max(abs(cur + book.buy), abs(cur - book.sell))
            px = book.px
            total += (worst - abs(cur)) * (px if px is not None else 0.0) * book.mult
        return total

    def _projected_positions(self) -> int:
        """Open positions, plus flat instruments with orders in flight (they may open)."""
        n = self._pf.open_position_count()
        for iid in self._pend:
            if abs(self._pf.position_qty(iid)) <= QTY_EPS:
                n += 1
        return n

    def _deny(self, intent: OrderIntent, verdict: Verdict, now: int) -> RiskDenial:
        rule, message, numbers = verdict
        if now == _UNREAD:
            now = self._clock.now_ns()
        denial = RiskDenial(
            ts=now,
            strategy_id=intent.strategy_id,
            instrument_id=intent.instrument_id,
            side=intent.side,
            rule=rule,
            message=message,
            numbers=numbers,
            action=intent.action,
        )
        self.denials += 1
        by_rule = self.denials_by_rule
        if rule in by_rule:
            by_rule[rule][0] += 1
        else:
            by_rule[rule] = [1, message]
        self._rec.record(denial)
        if rule == SANITY and intent.action is IntentAction.CLOSE:
            # Bad input (no usable price yet) may pass on the next tick: let the exit fire again.
            # Other denials of an exit wait for an order event (a close in flight ends, a fill
            # changes the position) instead of repeating the same denial on every tick.
            self.exits.rearm(intent.instrument_id)
        return denial

    # -- what the engine tells the gate -----------------------------------------------------------------

    def on_order_open(self, order: Order) -> None:
        """An approved order is about to be submitted: count it as in flight."""
        coid = order.client_order_id
        if coid in self._orders or order.status in _TERMINAL:  # Order.is_open without the property
            return
        iid = order.instrument_id
        book = self._books.get(iid)
        if book is None:
            return
        side = order.side
        sign = 1 if side is _BUY else -1 if side is _SELL else 0  # Side.sign without the member lookup
        leaves = order.qty - order.filled_qty  # Order.leaves_qty without the property call
        if leaves < 0.0:  # noqa: PLR1730 - a compare, not a max() call, per order
            leaves = 0.0
        key = (order.strategy_id, iid, side, order.action)
        self._orders[coid] = [book, key, sign, leaves]  # _P_BOOK, _P_KEY, _P_SIGN, _P_LEAVES
        if leaves > QTY_EPS and not book.pending:
            # _adjust_pending's outcome when nothing else is in flight here: 0.0 + leaves is leaves.
            if sign > 0:
                book.buy = leaves
            else:
                book.sell = leaves
            self._pend[iid] = book
            book.pending = True
        else:
            self._adjust_pending(book, sign, leaves)
        if book.px is None:
            pos = self._pf.position(iid)
            book.px = order.limit_price or (pos.last_price if pos is not None else 0.0)
        dup = self._dup_open
        dup[key] = dup.get(key, 0) + 1

    def note_price(self, instrument_id: str, price: float) -> None:
        """The latest price of an instrument (values its orders in flight for the gross cap)."""
        book = self._books.get(instrument_id)
        if book is not None:
            book.px = price

    def on_fill(self, fill: Fill) -> None:
        """A fill: shrink the order in flight, update managed exits, re-check the loss limits."""
        coid = fill.client_order_id
        p = self._orders.get(coid)
        if p is not None:
            fq = fill.qty
            left = p[3]  # _P_LEAVES
            f = left if left < fq else fq  # min(fill.qty, leaves) without the call
            p[3] = left = left - f
            # _adjust_pending(book, sign, -f), inline (x + -f is x - f exactly).
            book = p[0]  # _P_BOOK
            if p[2] > 0:  # _P_SIGN
                v = book.buy - f
                if v < 0.0:  # noqa: PLR1730 - max(v, 0.0) exactly
                    v = 0.0
                book.buy = v
            else:
                v = book.sell - f
                if v < 0.0:  # noqa: PLR1730
                    v = 0.0
                book.sell = v
            if book.buy <= QTY_EPS and book.sell <= QTY_EPS:
                if book.pending:
                    del self._pend[book.iid]
                    book.pending = False
                book.buy = book.sell = 0.0
            elif not book.pending:
                self._pend[book.iid] = book
                book.pending = True
            if left <= QTY_EPS:  # filled: _forget, inline
                del self._orders[coid]
                if left > 0.0:
                    self._adjust_pending(book, p[_P_SIGN], -left)
                dup = self._dup_open
                key = p[1]  # _P_KEY
                n = dup.pop(key, 0) - 1  # one lookup in the common case (the last order under it)
                if n > 0:
                    dup[key] = n
        self._exits_on_fill(fill)
        if self.loss.enabled:
            self.check_limits()

    def on_order_closed(self, order: Order) -> None:
        """An order ended (filled, cancelled, rejected, expired): it is no longer in flight."""
        coid = order.client_order_id
        if coid in self._orders:  # a whole fill has forgotten it already
            self._forget(coid)
        if self._exit_managed or self._exit_plans:  # else the exit manager has nothing to update
            self.exits.on_order_closed(order)

    def _forget(self, coid: str) -> None:
        p = self._orders.pop(coid, None)
        if p is None:
            return
        left = p[_P_LEAVES]
        if left > 0.0:
            self._adjust_pending(p[_P_BOOK], p[_P_SIGN], -left)
        dup = self._dup_open
        key = p[_P_KEY]
        n = dup.pop(key, 0) - 1
        if n > 0:
            dup[key] = n

    def _adjust_pending(self, book: _Book, sign: int, delta: float) -> None:
        """Move one side's leaves by ``delta`` (never below 0); an instrument whose both sides are
        at most QTY_EPS leaves the in-flight map and starts again from 0."""
        if sign > 0:
            v = book.buy + delta
            if v < 0.0:  # noqa: PLR1730 - max(v, 0.0) exactly (NaN and -0.0 stay), without the call
                v = 0.0
            book.buy = v
        else:
            v = book.sell + delta
            if v < 0.0:  # noqa: PLR1730
                v = 0.0
            book.sell = v
        if book.buy <= QTY_EPS and book.sell <= QTY_EPS:
            if book.pending:
                del self._pend[book.iid]
                book.pending = False
            book.buy = book.sell = 0.0
        elif not book.pending:
            self._pend[book.iid] = book
            book.pending = True

    # -- halts ------------------------------------------------------------------------------------------

    @property
    def halted(self) -> bool:
        """True while any halt (operator, daily loss, drawdown) holds new entries."""
        if self.loss.enabled:
            self.loss.refresh(self._clock.now_ns())
        return self.kill.halted

    def check_limits(self) -> list[OrderIntent]:
        """Evaluate the loss limits now; on a new breach, halt and (if configured) flatten."""
        now = self._clock.now_ns()
        v = self.loss.evaluate(self._pf, now)
        if v is None:
            return []
        return self._on_new_halt(v, now)

    def _on_new_halt(self, verdict: Verdict, now: int) -> list[OrderIntent]:
        rule, message, numbers = verdict
        self._rec.record(RiskHaltEvent(ts=now, halted=True, source=rule, reason=message, numbers=numbers))
        if not self.config.flatten_on_halt:
            return []
        return self._send(self.flatten_intents(f"flatten: {message}"))

    def _on_lift(self, source: str, now: int) -> None:
        self._rec.record(RiskHaltEvent(ts=now, halted=False, source=source, reason="a new trading day"))

    def halt(self, reason: str, *, flatten: bool = False) -> list[OrderIntent]:
        """The kill switch: halt new entries (exits still pass); optionally flatten every position.

        The flatten intents are returned, and also sent to ``emit`` when :meth:`install` was called.
        """
        now = self._clock.now_ns()
        self.kill.halts[KillSwitch.name] = reason
        self._rec.record(RiskHaltEvent(ts=now, halted=True, source=KillSwitch.name, reason=reason))
        if not flatten:
            return []
        return self._send(self.flatten_intents(f"kill switch: {reason}"))

    def resume(self, reason: str, *, source: str | None = None) -> None:
        """Lift the halt held by ``source`` (``kill_switch``, ``daily_loss``, ``max_drawdown``), or all."""
        now = self._clock.now_ns()
        sources = [source] if source is not None else list(self.kill.halts)
        for src in sources:
            if self.kill.halts.pop(src, None) is not None:
                self._rec.record(RiskHaltEvent(ts=now, halted=False, source=src, reason=reason))

    def flatten_intents(self, reason: str) -> list[OrderIntent]:
        """CLOSE intents (market) for every open position in a known instrument."""
        now = self._clock.now_ns()
        out = []
        for iid in self._instruments:
            qty = self._pf.position_qty(iid)
            if abs(qty) <= QTY_EPS:
                continue
            out.append(
                OrderIntent(
                    strategy_id="risk",
                    instrument_id=iid,
                    side=Side.SELL if qty > 0 else Side.BUY,
                    qty=abs(qty),
                    action=IntentAction.CLOSE,
                    reason=reason,
                    numbers={"qty": qty},
                    ts_event=now,
                )
            )
        return out

    def _send(self, intents: list[OrderIntent]) -> list[OrderIntent]:
        emit = self._emit
        if emit is not None:
            for intent in intents:
                emit(intent)
        return intents

    def status(self) -> RiskStatus:
        """A snapshot for the admin socket and dashboard."""
        now = self._clock.now_ns()
        return RiskStatus(
            ts=now,
            halted=self.halted,
            halts=dict(self.kill.halts),
            open_positions=self._pf.open_position_count(),
            pending_orders=len(self._orders),
            orders_in_window=self.rate.in_window(now) if self.rate.max_orders else 0,
            denials=self.denials,
            approvals=self.approvals,
            managed_exits=self.exits.managed_count,
        )
