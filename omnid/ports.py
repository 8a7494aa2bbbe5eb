"""The seams between the core's parts, as protocols.

Parts depend on these, not on each other's classes, so the risk gate can be tested without the
real portfolio, the engine can drive any broker (paper or live), and anything can record without
knowing which sink is configured. Every method here is synchronous and must not block: live venue
clients schedule their I/O on the loop and report back through :class:`ExecutionEvents`.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from omnid.model import Fill, Order, OrderStatus, Position


class OrderUpdate(msgspec.Struct, kw_only=True):
    """A broker's word on an order's state (acknowledged, cancelled, rejected, expired)."""

    client_order_id: str
    status: OrderStatus
    ts_event: int
    venue_order_id: str = ""
    reason: str = ""
    #: The order's quantity as the venue set it, when it did: an all-in order sized at its fill
    #: (see ``Order.all_in``). 0 = unchanged.
    qty: float = 0.0


class VenueCapabilities(msgspec.Struct, frozen=True, kw_only=True):
    """What a venue supports, as data rather than ``if venue == ...`` branches."""

    order_types: frozenset[str] = frozenset({"market", "limit"})
    time_in_force: frozenset[str] = frozenset({"gtc", "ioc"})
    supports_short: bool = False
    supports_cancel_replace: bool = False
    fractional_qty: bool = True
    intraday_square_off: bool = False


class ExecutionEvents(Protocol):
    """Where a broker reports what happened to orders (the engine's router implements it)."""

    def on_order_update(self, update: OrderUpdate) -> None: ...

    def on_fill(self, fill: Fill) -> None: ...


class ExecutionClient(Protocol):
    """A broker: the paper broker and every live venue's client look alike to the router."""

    venue: str
    capabilities: VenueCapabilities

    def bind(self, events: ExecutionEvents) -> None:
        """Tell the client where to send order updates and fills."""
        ...

    def submit(self, order: Order) -> None:
        """Send an order (already journaled). Never blocks; the outcome arrives as events."""
        ...

    def cancel(self, client_order_id: str) -> None:
        """Ask for a cancel. Never blocks; the outcome arrives as events."""
        ...


class PortfolioView(Protocol):
    """What the risk gate and strategies may read of the portfolio."""

    def equity(self) -> float: ...

    def cash(self) -> float: ...

    def position(self, instrument_id: str) -> Position | None: ...

    def position_qty(self, instrument_id: str) -> float: ...

    def open_position_count(self) -> int: ...

    def exposure(self, instrument_id: str) -> float:
        """Absolute notional of the position at the last price."""
        ...

    def gross_exposure(self) -> float:
        """Sum of absolute notionals of all positions."""
        ...

    def daily_pnl(self) -> float:
        """Equity now minus equity at the start of the trading day."""
        ...

    def peak_equity(self) -> float:
        """Highest equity seen (for the drawdown limit)."""
        ...


class Recorder(Protocol):
    """Append-only, never blocks: the storage flusher writes batches in the background."""

    def record(self, item: msgspec.Struct) -> None: ...


class NullRecorder:
    """Records nothing (backtests that only want metrics)."""

    def record(self, item: msgspec.Struct) -> None:
        return None


class ListRecorder:
    """Keeps everything in a list (tests, short backtests)."""

    def __init__(self) -> None:
        self.items: list[msgspec.Struct] = []

    def record(self, item: msgspec.Struct) -> None:
        self.items.append(item)
