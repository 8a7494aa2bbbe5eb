"""Routing by venue: one :class:`Router` in front of every execution client.

Clients are keyed by their ``venue``; an order goes to the client of its instrument's venue (the
part after the last dot of ``SYMBOL.VENUE``), or to the default client when there is none (paper
trading: the paper broker stands in for every venue). Clients report back to the router, which is
their :class:`~omnid.ports.ExecutionEvents`; it forwards to whoever bound it (the order manager).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from omnid.errors import ConfigError, RejectedError
from omnid.model import Fill, Order
from omnid.ports import ExecutionClient, ExecutionEvents, OrderUpdate


def venue_of(instrument_id: str) -> str:
    """``BTCUSDT.BINANCE`` → ``BINANCE`` (symbols may contain dots: ``BRK.B.SIM`` → ``SIM``)."""
    return instrument_id.rpartition(".")[2]


class Router:
    """Implements :class:`~omnid.ports.ExecutionEvents` for the clients it routes to."""

    def __init__(
        self, clients: Iterable[ExecutionClient] = (), *, default: ExecutionClient | None = None
    ) -> None:
        self._clients: dict[str, ExecutionClient] = {}
        self._routes: dict[str, ExecutionClient] = {}  # instrument id -> client, as looked up
        #: The same dict, for reading: the order manager tries it before :meth:`client_for` (a call
        #: per order saved); a miss still goes through :meth:`client_for`, which fills it.
        self.cached_routes: Mapping[str, ExecutionClient] = self._routes
        self._handler: ExecutionEvents | None = None
        self.default = default
        if default is not None:
            default.bind(self)
        for client in clients:
            self.add(client)

    def add(self, client: ExecutionClient) -> None:
        """Route ``client.venue`` to ``client``; one client per venue."""
        if client.venue in self._clients and self._clients[client.venue] is not client:
            raise ConfigError("execution", [("venues", f"two clients for venue {client.venue!r}")])
        self._clients[client.venue] = client
        self._routes.clear()
        client.bind(self._handler if self._handler is not None else self)

    def bind(self, handler: ExecutionEvents) -> None:
        """Where the clients' order updates and fills go. Once bound, each client reports to
        ``handler`` directly: the router has nothing to add to a report, and a pass-through call
        per update and fill is measurable in a backtest. Until then they report to the router,
        which refuses them (no one would hear them)."""
        self._handler = handler
        for client in self._clients.values():
            client.bind(handler)
        if self.default is not None:
            client = self.default
            client.bind(handler)

    @property
    def venues(self) -> list[str]:
        return sorted(self._clients)

    def client_for(self, instrument_id: str) -> ExecutionClient:
        """The client for an instrument; :class:`RejectedError` when no client can take it."""
        client = self._routes.get(instrument_id)
        if client is not None:
            return client
        client = self._clients.get(venue_of(instrument_id), self.default)
        if client is None:
            raise RejectedError(
                f"no execution client for {instrument_id} (venues: {self.venues}, no default)",
                instrument_id=instrument_id,
            )
        self._routes[instrument_id] = client  # forgotten when a client is added
        return client

    def submit(self, order: Order) -> None:
        self.client_for(order.instrument_id).submit(order)

    def cancel(self, order: Order) -> None:
        self.client_for(order.instrument_id).cancel(order.client_order_id)

    # ExecutionEvents: forward to the bound handler.

    def on_order_update(self, update: OrderUpdate) -> None:
        if self._handler is None:
            raise RejectedError(
                "router is not bound to an order manager", client_order_id=update.client_order_id
            )
        self._handler.on_order_update(update)

    def on_fill(self, fill: Fill) -> None:
        if self._handler is None:
            raise RejectedError(
                "router is not bound to an order manager", client_order_id=fill.client_order_id
            )
        self._handler.on_fill(fill)
