"""The paper broker: a venue like any other, filled from the market data the engine hands it.

Fill model (the numbers come from :class:`~omnid.venues.paper.config.PaperConfig`):

- **Next available price.** An order is only matched against data that arrives after it was
  submitted: a market order fills at the next trade (or, with quotes, a buy at the next ask and a
  sell at the next bid), or at the open of the next bar — a decision on a bar's close fills at the
  next bar's open. A bar that opened before the order was created never fills it, so the engine
  may hand the broker a bar before or after the strategies saw it without any look-ahead.
- **Limits** fill when the price reaches them (``limit_fill_on_touch``; otherwise it must trade
  through). An order that is marketable when it first meets the market takes the market's price
  (a taker fill, never worse than the limit); one that has rested fills at its limit (a maker
  fill). With bars: an open beyond the limit (a gap) fills at the open, else a range that reaches
  it fills at the limit. ``limit_maker`` (post-only) expires instead of taking.
- **Stops** trigger when the price reaches the stop and then fill like a market order at the
  triggering price (a gap through the stop fills at the open); stop-limits become limits.
- **Slippage** (``slippage_bps`` and ``slippage_ticks``) worsens taker prices, capped at the limit
  for limit orders. **Commission** = rate × notional + per unit × qty, plus a fixed amount on an
  order's first fill.
- **Volume.** With ``limit_by_volume``, the orders of one instrument share ``participation`` × the
  event's size (trade size, quote size on the side taken, bar volume); the rest waits for later
  data (quantities round down to the lot when the instrument is known). Data without size (0)
  does not limit.
- **Time in force**: IOC fills what it can on its first chance and expires the rest; FOK fills in
  full on its first chance or expires; DAY expires at the close of the instrument's session (the
  UTC day when the calendar is always open or the instrument unknown).

Speed: the per-event check is one dict lookup when the instrument has no working order, so a
backtest pays almost nothing for ticks in which nothing can fill. Everything is synchronous; order
updates and fills go to the bound :class:`~omnid.ports.ExecutionEvents` as they happen.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable, Container, Iterable

from omnid.clock import Clock
from omnid.model import (
    Bar,
    Fill,
    Instrument,
    Liquidity,
    Order,
    OrderStatus,
    OrderType,
    Quote,
    Side,
    TimeInForce,
    Trade,
)
from omnid.ports import ExecutionEvents, OrderUpdate, VenueCapabilities
from omnid.venues.paper.config import PaperConfig

log = logging.getLogger(__name__)

_INF = math.inf
#: backtesting.py's default "all in" order size, a fraction of the available margin.
_ALL_IN = 1.0 - sys.float_info.epsilon
#: (instrument_id, side sign, price) -> the free funds an all-in entry may spend.
FreeFunds = Callable[[str, int, float], float]
_DUST = 1e-12
_MARKET = OrderType.MARKET
_LIMIT = OrderType.LIMIT
_STOP = OrderType.STOP
_STOP_LIMIT = OrderType.STOP_LIMIT
_MAKER = OrderType.LIMIT_MAKER
_IOC = TimeInForce.IOC
_FOK = TimeInForce.FOK
# More members read per order, as module globals: an enum member read through its class
# (``Liquidity.TAKER``) costs ~90 ns on Python 3.11.
_DAY = TimeInForce.DAY
_TAKER = Liquidity.TAKER
_MAKER_LIQ = Liquidity.MAKER
_ACCEPTED = OrderStatus.ACCEPTED
_SELL = Side.SELL
_BUY = Side.BUY
_NO_SIDE = Side.NONE


class _Working:
    """The broker's own copy of a working order (it never changes the caller's Order)."""

    __slots__ = (
        "all_in",
        "client_order_id",
        "expire_ns",
        "filled",
        "first",
        "instrument_id",
        "limit",
        "order_type",
        "qty",
        "side",
        "sign",
        "stop",
        "strategy_id",
        "tif",
        "triggered",
        "ts_created",
        "venue_order_id",
    )

    def __init__(self, order: Order, venue_order_id: str, expire_ns: int) -> None:
        self.client_order_id = order.client_order_id
        self.instrument_id = order.instrument_id
        self.strategy_id = order.strategy_id
        self.side = order.side
        self.sign = order.side.sign
        self.order_type = order.order_type
        self.tif = order.tif
        self.qty = order.qty
        self.limit = order.limit_price if order.limit_price is not None else 0.0
        self.stop = order.stop_price if order.stop_price is not None else 0.0
        self.filled = 0.0
        self.first = True  # has not met the market yet
        self.triggered = order.order_type not in (_STOP, _STOP_LIMIT)
        self.ts_created = order.ts_created
        self.venue_order_id = venue_order_id
        self.expire_ns = expire_ns
        self.all_in = order.all_in and order.order_type is _MARKET


class PaperBroker:
    """Implements :class:`~omnid.ports.ExecutionClient`; feed it with :meth:`on_trade`,
    :meth:`on_quote` and :meth:`on_bar` (before or after the strategies see the same event)."""

    def __init__(
        self,
        clock: Clock,
        config: PaperConfig | None = None,
        *,
        instruments: Iterable[Instrument] = (),
        funds: FreeFunds | None = None,
    ) -> None:
        cfg = config if config is not None else PaperConfig()
        self.config = cfg
        self.venue = cfg.venue
        self.capabilities = VenueCapabilities(
            order_types=frozenset(cfg.order_types),
            time_in_force=frozenset(t.value for t in TimeInForce),
            supports_short=cfg.allow_short,
            supports_cancel_replace=False,
            fractional_qty=True,
            intraday_square_off=False,
        )
        self._clock = clock
        self._events: ExecutionEvents | None = None
        self._instruments: dict[str, Instrument] = {i.id: i for i in instruments}
        self._working: dict[str, list[_Working]] = {}
        #: The instruments that have a working order (the same dict, for reading): the engine skips
        #: calling :meth:`on_trade` for a print that cannot fill anything (~100 ns per tick).
        self.working_instruments: Container[str] = self._working
        self._by_id: dict[str, _Working] = {}
        self._seen: set[str] = set()
        self._positions: dict[str, float] = {}
        self._order_seq = 0
        self._fill_seq = 0
        self._use_trades = "trade" in cfg.fill_on
        self._use_quotes = "quote" in cfg.fill_on
        self._use_bars = "bar" in cfg.fill_on
        self._bps = cfg.slippage_bps / 10_000.0
        self._ticks = float(cfg.slippage_ticks)
        self._participation = cfg.participation if cfg.limit_by_volume else 0.0
        self._touch = cfg.limit_fill_on_touch
        self._types = frozenset(OrderType(t) for t in cfg.order_types)
        #: The account's free funds for an all-in entry (instrument, side sign, price), asked when
        #: an ``Order.all_in`` order meets its fill price; None: such orders fill their estimate.
        self.funds = funds
        #: All-in orders cancelled at the fill because the free funds did not buy one lot.
        self.unfunded = 0

    def add_instrument(self, instrument: Instrument) -> None:
        """Tell the broker an instrument's tick, lot, multiplier and calendar."""
        self._instruments[instrument.id] = instrument

    # ---------------------------------------------------------------------------------------------
    # ExecutionClient

    def bind(self, events: ExecutionEvents) -> None:
        self._events = events

    def submit(self, order: Order) -> None:
        """Accept (or reject) ``order`` now; it fills on later market data."""
        now = self._clock.now_ns()
        coid = order.client_order_id
        seen = self._seen
        # Replaces self._check(order) for a market order it would pass: a new id, a side, a finite
        # positive quantity, no tick slippage to check, and a buy or a sell where shorts are allowed.
        side = order.side
        if (
            order.order_type is not _MARKET
            or coid in seen
            or _MARKET not in self._types
            or self._ticks
            or not (side is _BUY or (side is _SELL and self.config.allow_short))
            or not 0.0 < order.qty < _INF
        ):
            problem = self._check(order)
            if problem:
                self._update(coid, OrderStatus.REJECTED, now, reason=problem)
                return
        seen.add(coid)
        seq = self._order_seq = self._order_seq + 1
        expire = self._expiry(order, now) if order.tif is _DAY else 0  # only DAY orders expire
        vid = f"{self.venue}-{seq}"
        w = _Working(order, vid, expire)
        self._by_id[coid] = w
        iid = order.instrument_id
        ws = self._working.get(iid)
        if ws is None:
            self._working[iid] = [w]
        else:
            ws.append(w)
        events = self._events
        if events is None:  # replaces self._update(coid, _ACCEPTED, now, venue_order_id=vid)
            log.error("paper broker is not bound: %s for %s dropped", _ACCEPTED.value, coid)
            return
        events.on_order_update(
            OrderUpdate(client_order_id=coid, status=_ACCEPTED, ts_event=now, venue_order_id=vid)
        )

    def cancel(self, client_order_id: str) -> None:
        w = self._by_id.get(client_order_id)
        if w is None:
            log.info("paper: cancel for %s, which is not working", client_order_id)
            return
        self._remove(w)
        self._update(client_order_id, OrderStatus.CANCELLED, self._clock.now_ns(), reason="cancelled")

    # ---------------------------------------------------------------------------------------------
    # Restart: the journal hands back what a real venue would still hold

    def adopt(self, order: Order) -> bool:
        """Re-book an order the journal says is still working, after a restart.

        Why: a real venue keeps a resting order while omnid is down, so paper trading must too, or
        a restart would silently cancel every working limit and stop and paper would not rehearse
        live. The order keeps its filled quantity, id and venue id; it counts as having rested
        (a limit fills at its limit), and a stop is armed again (its trigger state is not journaled).
        Sends no update unless the venue's acknowledgement was never journaled (then ACCEPTED).
        Returns False, booking nothing, for an order that is not open or already known here.
        """
        coid = order.client_order_id
        if not order.is_open or coid in self._by_id or coid in self._seen:
            return False
        self._seen.add(coid)
        self._order_seq += 1
        vid = order.venue_order_id or f"{self.venue}-R{self._order_seq}"
        w = _Working(order, vid, self._expiry(order, order.ts_created))
        w.filled = order.filled_qty
        w.first = False
        self._by_id[coid] = w
        self._working.setdefault(order.instrument_id, []).append(w)
        if order.status is OrderStatus.SUBMITTED:
            self._update(coid, _ACCEPTED, self._clock.now_ns(), venue_order_id=vid)
        return True

    def restore_position(self, instrument_id: str, qty: float) -> None:
        """Set the venue's view of a position after a restart (the journal's ledger holds it)."""
        self._positions[instrument_id] = qty

    def skip_ids_past(self, order_seq: int, fill_seq: int) -> None:
        """Continue venue order and fill numbering past a previous run's (fill ids stay unique
        across restarts, so replaying the journal never mistakes a new fill for a repeat)."""
        self._order_seq = max(self._order_seq, order_seq)
        self._fill_seq = max(self._fill_seq, fill_seq)

    # ---------------------------------------------------------------------------------------------
    # Market data in

    def on_trade(self, trade: Trade) -> None:
        ws = self._working.get(trade.instrument_id)
        if ws is None or not self._use_trades:
            return
        p = trade.price
        if p - p == 0.0:  # skips NaN and inf prices: bad data must not become a fill
            self._match(ws, p, p, trade.size, trade.size, trade.ts_event)

    def on_quote(self, quote: Quote) -> None:
        ws = self._working.get(quote.instrument_id)
        if ws is None or not self._use_quotes:
            return
        if 0 < quote.ask < _INF and 0 < quote.bid < _INF:
            self._match(ws, quote.ask, quote.bid, quote.ask_size, quote.bid_size, quote.ts_event)

    def on_bar(self, bar: Bar) -> None:
        ws = self._working.get(bar.instrument_id)
        if ws is None or not self._use_bars:
            return
        if bar.open - bar.open == 0.0 and bar.high - bar.high == 0.0 and bar.low - bar.low == 0.0:
            self._match_bar(ws, bar)

    # ---------------------------------------------------------------------------------------------
    # Queries

    def working_orders(self, instrument_id: str | None = None) -> list[str]:
        """Client order ids still working, in arrival order."""
        if instrument_id is not None:
            return [w.client_order_id for w in self._working.get(instrument_id, ())]
        return list(self._by_id)

    def position(self, instrument_id: str) -> float:
        """The net quantity this broker has filled in an instrument (the venue's view)."""
        return self._positions.get(instrument_id, 0.0)

    # ---------------------------------------------------------------------------------------------
    # Matching

    def _match(
        self, ws: list[_Working], buy_px: float, sell_px: float, buy_size: float, sell_size: float, ts: int
    ) -> None:
        part = self._participation
        slipping = self._bps or self._ticks  # no slippage configured: the price as it is
        room_buy = buy_size * part if part and buy_size > 0 else _INF
        room_sell = sell_size * part if part and sell_size > 0 else _INF
        instruments = self._instruments
        for w in tuple(ws):  # fills may submit or cancel orders re-entrantly
            if w.client_order_id not in self._by_id:
                continue
            if w.expire_ns and ts >= w.expire_ns:
                self._expire(w, ts, "day order expired at the session close")
                continue
            s = w.sign
            px = buy_px if s > 0 else sell_px
            first = w.first
            w.first = False
            typ = w.order_type
            if typ is _MARKET or (typ is _STOP and w.triggered):
                price, liq = (self._slip(w, px) if slipping else px), _TAKER
            else:
                if not w.triggered:
                    if s * px < s * w.stop:
                        continue
                    w.triggered = True
                    first = True  # a triggered stop-limit meets the market now
                    if typ is _STOP:
                        price, liq = self._slip(w, px), _TAKER
                if typ is not _STOP:
                    lim = w.limit
                    crosses = s * px <= s * lim if self._touch else s * px < s * lim
                    if not crosses:
                        if w.tif is _IOC or w.tif is _FOK:
                            self._expire(w, ts, f"{w.tif.value} limit not marketable")
                        continue
                    if first:
                        if typ is _MAKER:
                            self._expire(w, ts, "post-only order would take liquidity")
                            continue
                        price = self._slip(w, px)
                        if s * price > s * lim:
                            price = lim
                        liq = _TAKER
                    else:
                        price, liq = lim, _MAKER_LIQ
            room = room_buy if s > 0 else room_sell
            inst = instruments.get(w.instrument_id)
            if w.all_in and not w.filled and not self._size_at_fill(w, price, inst, ts):
                continue
            # Replaces self._fill_qty(w, room, inst) when the room takes all that is left.
            qty = w.qty - w.filled
            if inst is not None:
                qty = inst.round_qty(qty)
            if room < qty:
                qty = self._fill_qty(w, room, inst)
            if qty <= 0:
                if w.tif is _IOC or w.tif is _FOK:
                    self._expire(w, ts, "no volume to fill against")
                continue
            if s > 0:
                room_buy -= qty
            else:
                room_sell -= qty
            self._fill(w, qty, price, liq, ts, inst)

    def _match_bar(self, ws: list[_Working], bar: Bar) -> None:
        part = self._participation
        vol = bar.volume
        room_buy = room_sell = vol * part if part and vol > 0 else _INF
        o, h, lo = bar.open, bar.high, bar.low
        ts_open, ts = bar.ts_open, bar.ts_event
        touch = self._touch
        for w in tuple(ws):
            if w.client_order_id not in self._by_id or bar.ts_open < w.ts_created:
                continue  # gone, or the bar began before the order existed
            if w.expire_ns and ts_open >= w.expire_ns:
                self._expire(w, ts_open, "day order expired at the session close")
                continue
            s = w.sign
            adverse, favourable = (h, lo) if s > 0 else (lo, h)
            typ = w.order_type
            at = ts_open
            liq = _TAKER
            first = w.first
            w.first = False
            if typ is _MARKET or (typ is _STOP and w.triggered):
                price = self._slip(w, o)
            elif not w.triggered:
                if s * o >= s * w.stop:
                    trigger_px = o  # gapped through the stop
                elif s * adverse >= s * w.stop:
                    trigger_px, at = w.stop, ts
                else:
                    continue
                w.triggered = True
                if typ is _STOP:
                    price = self._slip(w, trigger_px)
                elif s * trigger_px <= s * w.limit:
                    price = trigger_px  # the limit is reachable at the trigger price
                else:
                    continue  # a stop-limit whose limit the bar's path may not revisit
            else:
                lim = w.limit
                if s * o <= s * lim:
                    if first and typ is _MAKER:
                        self._expire(w, ts_open, "post-only order would take liquidity")
                        continue
                    price = min(self._slip(w, o), lim) if s > 0 else max(self._slip(w, o), lim)
                elif (s * favourable <= s * lim) if touch else (s * favourable < s * lim):
                    price, at, liq = lim, ts, _MAKER_LIQ
                else:
                    if w.tif is _IOC or w.tif is _FOK:
                        self._expire(w, ts_open, f"{w.tif.value} limit not marketable")
                    continue
            room = room_buy if s > 0 else room_sell
            inst = self._instruments.get(w.instrument_id)
            if w.all_in and not w.filled and not self._size_at_fill(w, price, inst, at):
                continue
            qty = self._fill_qty(w, room, inst)
            if qty <= 0:
                if w.tif is _IOC or w.tif is _FOK:
                    self._expire(w, at, "no volume to fill against")
                continue
            if s > 0:
                room_buy -= qty
            else:
                room_sell -= qty
            self._fill(w, qty, price, liq, at, inst)

    def _size_at_fill(self, w: _Working, price: float, inst: Instrument | None, ts: int) -> bool:
        """Size an all-in market order at its fill price, as backtesting.py sizes a relative order:
        ``int(free * size // (price + commission(size) / size))`` with ``size = 1 - eps``, in whole
        lots (a fixed fee per order is taken off ``free * size`` once). False (and the order
        cancelled, saying why) when the free funds do not cover one lot, or that lot is under the
        instrument's minimum quantity or notional."""
        funds_of = self.funds
        if funds_of is None:
            return True
        cfg = self.config
        mult = inst.multiplier if inst is not None else 1.0
        try:
            free = float(funds_of(w.instrument_id, w.sign, price))
        except Exception:  # the account's view failed: cancel (below) rather than guess a size
            log.exception("paper: free funds for %s unavailable", w.client_order_id)
            free = math.nan
        size = _ALL_IN
        unit = price * mult
        # backtesting.py's cost of a unit: price plus the commission of the order over its size.
        # Its fixed fee would count once per unit there; here it comes off the budget once.
        cost = unit + (size * unit * cfg.commission_rate + size * cfg.commission_per_unit) / size
        qty = 0.0
        if free > 0.0 and cost > 0.0 and math.isfinite(free) and math.isfinite(cost):
            budget = free * size - cfg.commission_per_order
            lot = inst.lot_size if inst is not None else 0.0
            if lot == 1.0:
                qty = float(budget // cost)
            elif lot > 0.0:
                qty = inst.round_qty(budget // (cost * lot) * lot) if inst is not None else 0.0
            else:
                qty = budget / cost
            if inst is not None and qty > 0.0 and (qty < inst.min_qty or qty * unit < inst.min_notional):
                qty = 0.0
        coid = w.client_order_id
        if not qty > 0.0:
            self.unfunded += 1
            self._remove(w)
            self._update(
                coid, OrderStatus.CANCELLED, ts,
                reason=f"all-in order: free funds {free:.2f} do not buy one lot of {w.instrument_id} "
                       f"at {price:g} with commission",
                venue_order_id=w.venue_order_id,
            )
            return False
        if qty != w.qty:
            w.qty = qty
            if self._events is not None:
                self._events.on_order_update(
                    OrderUpdate(client_order_id=coid, status=_ACCEPTED, ts_event=ts,
                                venue_order_id=w.venue_order_id, qty=qty)
                )
        return True

    def _slip(self, w: _Working, price: float) -> float:
        if self._bps:
            price *= 1.0 + w.sign * self._bps
        if self._ticks:
            inst = self._instruments.get(w.instrument_id)
            if inst is not None:
                price += w.sign * self._ticks * inst.tick_size
        return price

    def _fill_qty(self, w: _Working, room: float, inst: Instrument | None) -> float:
        """How much of ``w`` (of instrument ``inst``, None if unknown) can fill with ``room`` left;
        0 when FOK cannot fill in full."""
        leaves = w.qty - w.filled
        if inst is not None:
            # Float subtraction leaves residue (0.6614300000000001); a fill off the lot grid
            # would leave dust positions in the exact ledger, so snap the remainder to the lot.
            leaves = inst.round_qty(leaves)
        if room >= leaves:
            return leaves
        if w.tif is _FOK:
            return 0.0
        qty = inst.round_qty(room) if inst is not None else room
        return qty if qty > 0 else 0.0

    def _fill(
        self, w: _Working, qty: float, price: float, liq: Liquidity, ts: int, inst: Instrument | None
    ) -> None:
        """Book a fill of ``w`` (``inst``: its instrument, as the caller looked it up)."""
        cfg = self.config
        mult = inst.multiplier if inst is not None else 1.0
        fee = cfg.commission_rate * qty * price * mult + cfg.commission_per_unit * qty
        filled = w.filled
        if filled == 0.0:
            fee += cfg.commission_per_order
        w.filled = filled = filled + qty
        total = w.qty
        done = total - filled <= total * _DUST
        coid = w.client_order_id
        iid = w.instrument_id
        if done and self._by_id.pop(coid, None) is not None:  # replaces self._remove(w)
            ws = self._working.get(iid)
            if ws is not None:
                if len(ws) == 1 and ws[0] is w:
                    del self._working[iid]
                else:
                    ws.remove(w)
                    if not ws:
                        del self._working[iid]
        positions = self._positions
        positions[iid] = positions.get(iid, 0.0) + w.sign * qty
        seq = self._fill_seq = self._fill_seq + 1
        events = self._events
        if events is None:
            log.error("paper broker is not bound: fill of %s dropped", coid)
            return
        events.on_fill(
            Fill(
                fill_id=f"{self.venue}-F{seq}",
                client_order_id=coid,
                instrument_id=iid,
                strategy_id=w.strategy_id,
                side=w.side,
                qty=qty,
                price=price,
                commission=fee,
                commission_currency=cfg.commission_currency,
                liquidity=liq,
                venue_order_id=w.venue_order_id,
                ts_event=ts,
            )
        )
        if not done and w.tif is _IOC and coid in self._by_id:
            self._expire(w, ts, "ioc remainder")

    def _expire(self, w: _Working, ts: int, reason: str) -> None:
        self._remove(w)
        self._update(
            w.client_order_id, OrderStatus.EXPIRED, ts, reason=reason, venue_order_id=w.venue_order_id
        )

    def _remove(self, w: _Working) -> None:
        if self._by_id.pop(w.client_order_id, None) is None:
            return
        ws = self._working.get(w.instrument_id)
        if ws is not None:
            ws.remove(w)
            if not ws:
                del self._working[w.instrument_id]

    def _update(
        self, coid: str, status: OrderStatus, ts: int, *, reason: str = "", venue_order_id: str = ""
    ) -> None:
        if self._events is None:
            log.error("paper broker is not bound: %s for %s dropped", status.value, coid)
            return
        self._events.on_order_update(
            OrderUpdate(
                client_order_id=coid, status=status, ts_event=ts, venue_order_id=venue_order_id, reason=reason
            )
        )

    # ---------------------------------------------------------------------------------------------
    # Submission checks

    def _check(self, order: Order) -> str:
        """Why the venue refuses ``order`` ('' when it accepts it)."""
        if order.client_order_id in self._seen:
            return f"duplicate client order id {order.client_order_id}"
        if order.order_type not in self._types:
            return f"order type {order.order_type.value} is not supported here"
        if order.side is _NO_SIDE:
            return "side must be buy or sell"
        if not (math.isfinite(order.qty) and order.qty > 0):
            return f"quantity must be positive, got {order.qty!r}"
        typ = order.order_type
        if typ in (_LIMIT, _STOP_LIMIT, _MAKER) and not _positive(order.limit_price):
            return f"{typ.value} order needs a positive limit price"
        if typ in (_STOP, _STOP_LIMIT) and not _positive(order.stop_price):
            return f"{typ.value} order needs a positive stop price"
        if self._ticks and order.instrument_id not in self._instruments:
            return f"unknown instrument {order.instrument_id}: tick slippage needs its tick size"
        if order.side is _SELL and not self.config.allow_short:
            held = self._positions.get(order.instrument_id, 0.0)
            selling = sum(w.qty - w.filled for w in self._working.get(order.instrument_id, ()) if w.sign < 0)
            if order.qty > held - selling + 1e-12:
                return f"short selling is not allowed: holding {held}, selling {selling} + {order.qty}"
        return ""

    def _expiry(self, order: Order, now: int) -> int:
        """When a DAY order expires: its instrument's session close (UTC midnight if unknown)."""
        if order.tif is not _DAY:
            return 0
        inst = self._instruments.get(order.instrument_id)
        if inst is not None:
            cal = inst.calendar
            bounds = cal.session_bounds(now)
            if bounds is None or now >= bounds[1]:  # after hours: good for the next session
                bounds = cal.session_bounds(cal.next_session_start(now))
            if bounds is not None:
                return bounds[1]
        day = 86_400 * 1_000_000_000
        return now - now % day + day


def _positive(x: float | None) -> bool:
    return x is not None and math.isfinite(x) and x > 0
