"""The one domain model: every part of omnid speaks these structs.

Timestamps are integer nanoseconds since the Unix epoch, UTC: ``ts_event`` is when the venue says it
happened, ``ts_init`` when omnid first saw it. Prices and sizes are floats on the hot path;
:class:`Instrument` rounds them to its tick and lot and formats them as exact decimals for venues.
Venue wire formats are decoded into these at the edge; nothing downstream knows a venue's JSON.
"""

from __future__ import annotations

import enum
import math
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import ClassVar

import msgspec

from omnid.calendar import CRYPTO_24_7, TradingCalendar
from omnid.errors import IllegalTransition

# --------------------------------------------------------------------------------------------------
# Enumerations


class AssetClass(enum.StrEnum):
    CRYPTO = "crypto"
    EQUITY = "equity"
    ETF = "etf"
    FUTURE = "future"
    OPTION = "option"
    FX = "fx"
    INDEX = "index"


class Side(enum.StrEnum):
    """Order side, and a trade's aggressor (``NONE`` when the venue does not say)."""

    BUY = "buy"
    SELL = "sell"
    NONE = "none"

    #: +1 buy, -1 sell, 0 none: a plain attribute of each member (set below), read several times
    #: per order; a property looking the member up in a dict cost ~40 ns more per read.
    sign: int

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY if self is Side.SELL else Side.NONE


Side.BUY.sign = 1
Side.SELL.sign = -1
Side.NONE.sign = 0


class OrderType(enum.StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"  # stop-market
    STOP_LIMIT = "stop_limit"
    LIMIT_MAKER = "limit_maker"  # post-only


class TimeInForce(enum.StrEnum):
    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"
    DAY = "day"


class OrderStatus(enum.StrEnum):
    NEW = "new"
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def is_open(self) -> bool:
        return self not in _TERMINAL


#: Members read per order on the hot path (module globals are cheaper than class attributes).
_REJECTED = OrderStatus.REJECTED
_FILLED = OrderStatus.FILLED
_PARTIALLY_FILLED = OrderStatus.PARTIALLY_FILLED
_SUBMITTED = OrderStatus.SUBMITTED
_ACCEPTED = OrderStatus.ACCEPTED

_TERMINAL = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)

#: The order state machine. A venue may skip the acknowledgement (fill straight from submitted),
#: so SUBMITTED can go directly to any outcome; terminal states go nowhere.
ORDER_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.NEW: frozenset({OrderStatus.SUBMITTED, OrderStatus.REJECTED, OrderStatus.CANCELLED}),
    OrderStatus.SUBMITTED: frozenset(
        {
            OrderStatus.ACCEPTED,
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELLED,
            OrderStatus.REJECTED,
            OrderStatus.EXPIRED,
        }
    ),
    OrderStatus.ACCEPTED: frozenset(
        {OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.EXPIRED}
    ),
    OrderStatus.PARTIALLY_FILLED: frozenset(
        {OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.EXPIRED}
    ),
    OrderStatus.FILLED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
    OrderStatus.REJECTED: frozenset(),
    OrderStatus.EXPIRED: frozenset(),
}


class IntentAction(enum.StrEnum):
    """What an intent is for: risk treats entries and exits differently (exits are never blocked
    by entry limits such as the session cut-off or max open positions)."""

    OPEN = "open"
    CLOSE = "close"


class Liquidity(enum.StrEnum):
    MAKER = "maker"
    TAKER = "taker"
    NONE = "none"


# --------------------------------------------------------------------------------------------------
# Reference data


def _decimal(x: float) -> Decimal:
    """The shortest decimal that round-trips ``x`` (so 0.1 is 0.1, not 0.1000000000000000055)."""
    return Decimal(repr(x))


#: A step (tick or lot) size → ``(C, D, n_max)``: ``_decimal(step) * n`` is exactly ``n * C / D``
#: for ``|n| <= n_max``; ``(0, 1, -1)`` when no such form is used for that step.
_STEPS: dict[float, tuple[int, int, int]] = {}
#: Default decimal context precision: a product with more coefficient digits would be rounded.
_DEC_PREC = 28


def _step_parts(step: float) -> tuple[int, int, int]:
    """Split the step's shortest decimal ``c * 10**e`` once, so multiples need no Decimal."""
    d = _decimal(step)
    if not d.is_finite() or d <= 0:
        return 0, 1, -1
    t = d.as_tuple()
    e = t.exponent
    if not isinstance(e, int) or not -40 <= e <= 20:  # far outside any real tick or lot: no shortcut
        return 0, 1, -1
    c = int("".join(map(str, t.digits)))
    n_max = (10**_DEC_PREC - 1) // c  # the Decimal product's coefficient is n * c: exact up to here
    return (c * 10**e, 1, n_max) if e >= 0 else (c, 10**-e, n_max)


def _step_multiple(step: float, n: int) -> float:
    """``float(_decimal(step) * n)``, bit for bit, without building Decimals.

    ``_decimal(step) * n`` is the exact rational ``n * C / D`` while its coefficient fits the
    default context (28 digits), and both ``float(Decimal)`` and int true division round that
    rational correctly (to nearest, ties to even), so they give the same float. Beyond that (or
    for a step the shortcut does not cover) it falls back to the Decimal.
    """
    parts = _STEPS.get(step)
    if parts is None:
        parts = _STEPS[step] = _step_parts(step)
    c, den, n_max = parts
    if -n_max <= n <= n_max:
        return n * c / den
    return float(_decimal(step) * n)


class Instrument(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A tradable thing at one venue, with the filters an order must pass there."""

    symbol: str
    venue: str
    asset_class: AssetClass = AssetClass.CRYPTO
    quote_currency: str = "USD"
    base_currency: str = ""
    tick_size: float = 0.01
    lot_size: float = 1.0
    min_qty: float = 0.0
    min_notional: float = 0.0
    multiplier: float = 1.0
    calendar: TradingCalendar = CRYPTO_24_7

    @property
    def id(self) -> str:
        """``SYMBOL.VENUE``: the key every event and order uses."""
        return f"{self.symbol}.{self.venue}"

    def round_price(self, price: float, side: Side = Side.NONE) -> float:
        """Round to the tick: buys round down, sells round up (never worse than asked), else nearest."""
        tick = self.tick_size
        if tick <= 0:
            return price
        steps = price / tick
        if side is Side.BUY:
            n = math.floor(steps + 1e-9)
        elif side is Side.SELL:
            n = math.ceil(steps - 1e-9)
        else:
            n = round(steps)
        return _step_multiple(tick, n)

    def round_qty(self, qty: float) -> float:
        """Round a quantity down to the lot size (never more than asked)."""
        lot = self.lot_size
        if lot <= 0:
            return qty
        n = math.floor(abs(qty) / lot + 1e-9)
        return math.copysign(_step_multiple(lot, n), qty) if n else 0.0

    def format_price(self, price: float) -> str:
        """The price as an exact decimal string with the tick's number of places."""
        return _format(price, self.tick_size)

    def format_qty(self, qty: float) -> str:
        """The quantity as an exact decimal string with the lot's number of places."""
        return _format(qty, self.lot_size, rounding=ROUND_DOWN)


def _format(value: float, step: float, rounding: str = ROUND_HALF_EVEN) -> str:
    quantum = _decimal(step).normalize() if step > 0 else Decimal("1E-8")
    if quantum.as_tuple().exponent > 0:  # type: ignore[operator]
        quantum = Decimal(1)
    return format(_decimal(value).quantize(quantum, rounding=rounding), "f")


# --------------------------------------------------------------------------------------------------
# Market data


class Trade(msgspec.Struct, gc=False):
    """One trade print. ``side`` is the aggressor when the venue says."""

    instrument_id: str
    price: float
    size: float
    side: Side
    ts_event: int
    ts_init: int
    trade_id: str = ""


class Quote(msgspec.Struct, gc=False):
    """Top of book."""

    instrument_id: str
    bid: float
    ask: float
    bid_size: float
    ask_size: float
    ts_event: int
    ts_init: int

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) * 0.5


class BookLevel(msgspec.Struct, gc=False):
    price: float
    size: float


class BookSnapshot(msgspec.Struct):
    """A full view of the book's top levels, best first on each side."""

    instrument_id: str
    bids: list[BookLevel]
    asks: list[BookLevel]
    ts_event: int
    ts_init: int
    update_id: int = 0


class BookDelta(msgspec.Struct):
    """The level changes of one venue update. A level with ``size == 0`` is removed.

    ``first_update_id``/``update_id`` let a book detect gaps (Binance ``U``/``u``).
    """

    instrument_id: str
    bids: list[BookLevel]
    asks: list[BookLevel]
    ts_event: int
    ts_init: int
    first_update_id: int = 0
    update_id: int = 0


class Bar(msgspec.Struct, gc=False):
    """OHLCV over ``[ts_open, ts_open + interval_ns)``; ``ts_event`` is the bar's close time."""

    instrument_id: str
    interval_ns: int
    ts_open: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    ts_event: int
    ts_init: int


MarketEvent = Trade | Quote | BookSnapshot | BookDelta | Bar


# --------------------------------------------------------------------------------------------------
# Intents, orders, fills


class OrderIntent(msgspec.Struct, kw_only=True):
    """What a strategy wants, and why. The risk gate sizes, checks and turns it into an order.

    ``qty == 0`` asks the risk gate to size the position by its configured sizing rule.
    ``reason`` is a sentence for a human; ``numbers`` are the values behind it (for example
    ``{"price": 101.2, "vwap": 100.8, "rsi_14": 57.1}``).
    """

    strategy_id: str
    instrument_id: str
    side: Side
    qty: float = 0.0
    order_type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    stop_price: float | None = None
    tif: TimeInForce = TimeInForce.GTC
    action: IntentAction = IntentAction.OPEN
    stop_loss: float | None = None
    take_profit: float | None = None
    reason: str = ""
    numbers: dict[str, float] = msgspec.field(default_factory=dict)
    ts_event: int = 0
    #: Set by the risk gate (``[risk.sizing] at_fill``), not by strategies: ``qty`` is the all-in
    #: estimate at the decision, and the venue sizes the order again at its fill (see Order).
    all_in: bool = False


class Order(msgspec.Struct, kw_only=True):
    """An order and its life. Change its status only through :meth:`transition`/:meth:`apply_fill`."""

    client_order_id: str
    instrument_id: str
    strategy_id: str
    side: Side
    qty: float
    order_type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    stop_price: float | None = None
    tif: TimeInForce = TimeInForce.GTC
    action: IntentAction = IntentAction.OPEN
    status: OrderStatus = OrderStatus.NEW
    filled_qty: float = 0.0
    avg_fill_price: float = 0.0
    venue_order_id: str = ""
    reason: str = ""
    reject_reason: str = ""
    ts_created: int = 0
    ts_last: int = 0
    #: An "all in" market order sized at its fill: the paper broker replaces ``qty`` (the estimate
    #: made at the decision) with the most lots the account's free funds cover at the fill price
    #: plus commission, as backtesting.py sizes, and the order manager takes that size on the first
    #: fill. A venue that cannot size at the fill sends ``qty`` as it is.
    all_in: bool = False

    transitions: ClassVar[dict[OrderStatus, frozenset[OrderStatus]]] = ORDER_TRANSITIONS

    @property
    def leaves_qty(self) -> float:
        return max(self.qty - self.filled_qty, 0.0)

    @property
    def is_open(self) -> bool:
        return self.status not in _TERMINAL

    def transition(self, status: OrderStatus, ts: int, *, reason: str = "") -> None:
        """Move to ``status``; raise :class:`IllegalTransition` if the state machine forbids it."""
        if status not in ORDER_TRANSITIONS[self.status]:
            raise IllegalTransition(
                f"order {self.client_order_id}: cannot go from {self.status.value} to {status.value}",
                client_order_id=self.client_order_id,
                current=self.status.value,
                requested=status.value,
            )
        self.status = status
        self.ts_last = ts
        if status is _REJECTED and reason:  # module alias: cheaper than OrderStatus.REJECTED
            self.reject_reason = reason

    def apply_fill(self, qty: float, price: float, ts: int) -> None:
        """Book a fill: update filled quantity, average price and status (partial or full)."""
        if qty <= 0 or not math.isfinite(price):
            raise IllegalTransition(
                f"order {self.client_order_id}: fill of {qty} @ {price} is not a valid fill",
                client_order_id=self.client_order_id,
            )
        if self.filled_qty + qty > self.qty * (1 + 1e-9):
            raise IllegalTransition(
                f"order {self.client_order_id}: fill of {qty} overfills {self.filled_qty}/{self.qty}",
                client_order_id=self.client_order_id,
            )
        total = self.filled_qty + qty
        self.avg_fill_price = (self.avg_fill_price * self.filled_qty + price * qty) / total
        self.filled_qty = total
        done = total >= self.qty * (1 - 1e-12)
        status = self.status
        if status is _ACCEPTED or status is _PARTIALLY_FILLED or status is _SUBMITTED:
            # Replaces self.transition: these three may go to FILLED or PARTIALLY_FILLED.
            self.status = _FILLED if done else _PARTIALLY_FILLED
            self.ts_last = ts
        else:
            self.transition(_FILLED if done else _PARTIALLY_FILLED, ts)


class Fill(msgspec.Struct, kw_only=True):
    """One execution against an order. ``commission`` is in ``commission_currency``."""

    fill_id: str
    client_order_id: str
    instrument_id: str
    strategy_id: str
    side: Side
    qty: float
    price: float
    commission: float = 0.0
    commission_currency: str = ""
    liquidity: Liquidity = Liquidity.TAKER
    venue_order_id: str = ""
    ts_event: int = 0


class Position(msgspec.Struct, kw_only=True):
    """A net position in one instrument: ``qty`` > 0 long, < 0 short, 0 flat."""

    instrument_id: str
    qty: float = 0.0
    avg_price: float = 0.0
    realised_pnl: float = 0.0
    commissions: float = 0.0
    last_price: float = 0.0
    ts_opened: int = 0
    ts_last: int = 0

    @property
    def unrealised_pnl(self) -> float:
        if self.qty == 0.0 or self.last_price == 0.0:
            return 0.0
        return (self.last_price - self.avg_price) * self.qty

    @property
    def is_flat(self) -> bool:
        return self.qty == 0.0


class AccountState(msgspec.Struct, kw_only=True):
    """Cash and equity of one account at one moment."""

    account_id: str
    currency: str
    cash: float
    equity: float
    realised_pnl: float = 0.0
    unrealised_pnl: float = 0.0
    commissions: float = 0.0
    balances: dict[str, float] = msgspec.field(default_factory=dict)
    ts_event: int = 0
