"""The order manager: approved intents become orders, and broker reports move them along.

One path for every order, live or paper::

    intent (approved) → Order(NEW, deterministic id) → journal.append → SUBMITTED → router → client
    client → router → on_order_update / on_fill → Order state machine → portfolio → recorder

The journal is written *before* the client sees the order, so a crash can neither send an order
twice (the id is in the journal and the venue rejects a duplicate id) nor forget one (a restart
reads it back through :meth:`OrderManager.resume`). Every state change and every fill is recorded
(as a copy: the order keeps changing after the recorder got it).

Nothing a venue says can raise through here: an update the state machine forbids, a fill for an
unknown order, a duplicate fill are each recorded as an :class:`~omnid.execution.events.ExecutionIssue`
and logged. Bad intents (no quantity, a limit order without a price) become REJECTED orders, which
is what a venue would answer too.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Iterable
from typing import Protocol

import msgspec

from omnid.clock import Clock
from omnid.errors import IllegalTransition, OmnidError, RejectedError
from omnid.execution.events import ExecutionIssue, IssueKind
from omnid.execution.ids import ClientOrderIds
from omnid.execution.journal import Journal
from omnid.execution.router import Router
from omnid.model import Fill, Order, OrderIntent, OrderStatus, OrderType, Side
from omnid.ports import NullRecorder, OrderUpdate, Recorder

log = logging.getLogger(__name__)

OrderListener = Callable[[Order], None]
FillListener = Callable[[Fill, "Order | None"], None]

_NEEDS_LIMIT = frozenset({OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.LIMIT_MAKER})
_NEEDS_STOP = frozenset({OrderType.STOP, OrderType.STOP_LIMIT})
_FILL_DRIVEN = frozenset({OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED})
_IGNORED_UPDATES = frozenset({OrderStatus.NEW, OrderStatus.SUBMITTED})
# Enum members the per-order path reads, as module globals: reading one through its class
# (``OrderStatus.FILLED``) costs ~90 ns on Python 3.11.
_SUBMITTED = OrderStatus.SUBMITTED
_ACCEPTED = OrderStatus.ACCEPTED
_FILLED = OrderStatus.FILLED
_NO_SIDE = Side.NONE
_MARKET = OrderType.MARKET
_INF = math.inf
_TERMINAL = frozenset(s for s in OrderStatus if s.is_terminal)  # the property costs ~80 ns a read


class FillSink(Protocol):
    """What the manager needs of the portfolio."""

    def apply_fill(self, fill: Fill) -> None: ...


class OrderManager:
    """Owns the live orders of one session; implements :class:`~omnid.ports.ExecutionEvents`.

    ``session`` prefixes every client order id (1-8 letters/digits; use a new one per run of a
    backtest, the same one across restarts of a daemon so the sequence resumes). ``keep_closed``
    bounds how many finished orders stay queryable for late fills and status.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        router: Router,
        portfolio: FillSink | None = None,
        recorder: Recorder | None = None,
        journal: Journal | None = None,
        session: str = "S",
        keep_closed: int = 10_000,
        keep_fill_ids: int = 100_000,
    ) -> None:
        self._clock = clock
        self.router = router
        self.portfolio = portfolio
        self.recorder: Recorder = recorder if recorder is not None else NullRecorder()
        self._recording = not isinstance(self.recorder, NullRecorder)
        self.journal = journal
        self.ids = ClientOrderIds(session)
        self._orders: dict[str, Order] = {}
        self._open: dict[str, Order] = {}
        self._closed: deque[str] = deque()
        self._keep_closed = keep_closed
        self._fill_ids: set[str] = set()
        self._fill_order: deque[str] = deque()
        self._keep_fill_ids = keep_fill_ids
        self._cancel_sent: set[str] = set()
        self.order_listeners: list[OrderListener] = []
        self.fill_listeners: list[FillListener] = []
        self.issues = 0
        router.bind(self)

    # ---------------------------------------------------------------------------------------------
    # Orders out

    def submit(self, intent: OrderIntent) -> Order:
        """Turn an approved (sized, rounded) intent into an order, journal it, and send it.

        Always returns the order: SUBMITTED (or further, if the client answered at once), or
        REJECTED with ``reject_reason`` saying why it was never sent.
        """
        now = self._clock.now_ns()
        order = Order(
            client_order_id=self.ids.next(intent.strategy_id),
            instrument_id=intent.instrument_id,
            strategy_id=intent.strategy_id,
            side=intent.side,
            qty=intent.qty,
            order_type=intent.order_type,
            limit_price=intent.limit_price,
            stop_price=intent.stop_price,
            tif=intent.tif,
            action=intent.action,
            reason=intent.reason,
            ts_created=now,
            ts_last=now,
            all_in=intent.all_in,
        )
        self._orders[order.client_order_id] = order
        recording = self._recording
        if recording:  # tested here, not in _record_order: a call per state is measurable per order
            self._record_order(order)
        qty = order.qty
        # Replaces _validate for a market order with a side and a finite positive quantity (which
        # it passes); anything else goes through _validate.
        if order.order_type is not _MARKET or order.side is _NO_SIDE or not 0.0 < qty < _INF:
            problem = _validate(order)
            if problem:
                self._reject(order, now, problem, IssueKind.INVALID_ORDER)
                return order
        router = self.router
        client = router.cached_routes.get(order.instrument_id)  # client_for's own cache, read inline
        if client is None:
            try:
                client = router.client_for(order.instrument_id)
            except RejectedError as exc:
                self._reject(order, now, str(exc), IssueKind.NO_ROUTE)
                return order
        # Journaled as SUBMITTED: the state the venue's updates and fills then apply to on replay.
        # Replaces order.transition(_SUBMITTED, now): NEW -> SUBMITTED is legal, the order is new.
        order.status = _SUBMITTED
        order.ts_last = now
        if self.journal is not None:
            try:
                self.journal.append(order)
            except Exception as exc:  # any journal failure means: do not send
                log.error("journal append failed for %s: %s", order.client_order_id, exc)
                self._reject(order, now, f"journal failed: {exc}", IssueKind.JOURNAL_FAILED)
                return order
        self._open[order.client_order_id] = order
        if recording:
            self._record_order(order)
        for listener in self.order_listeners:  # replaces self._notify_order(order)
            try:
                listener(order)
            except Exception:
                log.exception("order listener failed on %s", order.client_order_id)
        try:
            client.submit(order)
        except Exception as exc:  # a client bug or a refused send must not stop the engine
            log.error("client %s refused %s: %s", client.venue, order.client_order_id, exc)
            if order.status is _SUBMITTED:
                self._reject(order, self._clock.now_ns(), f"client failed: {exc}", IssueKind.CLIENT_FAILED)
        return order

    def _reject(self, order: Order, ts: int, reason: str, kind: IssueKind) -> None:
        order.transition(OrderStatus.REJECTED, ts, reason=reason)
        self._issue(kind, order.client_order_id, reason, order.instrument_id)
        self._finish(order)
        self._record_order(order)
        self._notify_order(order)

    def cancel(self, client_order_id: str) -> bool:
        """Ask the order's venue to cancel it; False when it is not open (or a cancel is pending)."""
        order = self._open.get(client_order_id)
        if order is None or client_order_id in self._cancel_sent:
            return False
        self._cancel_sent.add(client_order_id)
        try:
            self.router.cancel(order)
        except Exception as exc:
            self._cancel_sent.discard(client_order_id)
            self._issue(
                IssueKind.CLIENT_FAILED, client_order_id, f"cancel failed: {exc}", order.instrument_id
            )
            return False
        return True

    def cancel_all(self, *, instrument_id: str | None = None, strategy_id: str | None = None) -> list[str]:
        """Cancel every open order (of one instrument and/or strategy); the ids a cancel went out for."""
        return [
            o.client_order_id
            for o in self.open_orders(instrument_id=instrument_id, strategy_id=strategy_id)
            if self.cancel(o.client_order_id)
        ]

    # ---------------------------------------------------------------------------------------------
    # Queries

    def open_orders(self, *, instrument_id: str | None = None, strategy_id: str | None = None) -> list[Order]:
        """Open orders in submission order, optionally of one instrument and/or strategy."""
        return [
            o
            for o in self._open.values()
            if (instrument_id is None or o.instrument_id == instrument_id)
            and (strategy_id is None or o.strategy_id == strategy_id)
        ]

    def has_open_orders(self, instrument_id: str) -> bool:
        return any(o.instrument_id == instrument_id for o in self._open.values())

    def get(self, client_order_id: str) -> Order | None:
        """An open or recently finished order."""
        return self._orders.get(client_order_id)

    # ---------------------------------------------------------------------------------------------
    # Restart

    def resume(self, orders: Iterable[Order], *, last_seq: int = 0) -> int:
        """Take back the orders of a journal (latest state of each): the id sequence continues past
        them (and past ``last_seq``, the journal's highest sequence) and the open ones are tracked
        again, so their fills and updates reconcile. Returns how many are open."""
        self.ids.skip_past(last_seq)
        for order in orders:
            self.ids.observe(order.client_order_id)
            self._orders[order.client_order_id] = order
            if order.is_open:
                self._open[order.client_order_id] = order
            else:
                self._open.pop(order.client_order_id, None)
        return len(self._open)

    # ---------------------------------------------------------------------------------------------
    # ExecutionEvents: reports in

    def on_order_update(self, update: OrderUpdate) -> None:
        if self._recording:
            self.recorder.record(update)
        if self.journal is not None:
            self._journal_after(update, update.client_order_id)
        order = self._orders.get(update.client_order_id)
        if order is None:
            self._issue(
                IssueKind.UNKNOWN_ORDER,
                update.client_order_id,
                f"update {update.status.value} for an unknown order",
            )
            return
        if update.venue_order_id and not order.venue_order_id:
            order.venue_order_id = update.venue_order_id
        if update.qty > 0.0 and order.all_in and order.filled_qty == 0.0 and order.status not in _TERMINAL:
            order.qty = update.qty  # the venue sized it at the fill (Order.all_in)
        status = update.status
        current = order.status
        if status is _ACCEPTED and current is _SUBMITTED:
            # Replaces order.transition for the venue's ack: SUBMITTED -> ACCEPTED is legal and
            # sets nothing but the status and time (ACCEPTED is not terminal: nothing to finish).
            order.status = status
            order.ts_last = update.ts_event
        else:
            if status is current or status in _FILL_DRIVEN or status in _IGNORED_UPDATES:
                return  # a repeated ack, or a status that fills (not updates) drive
            try:
                order.transition(status, update.ts_event, reason=update.reason)
            except IllegalTransition as exc:
                self._issue(
                    IssueKind.ILLEGAL_TRANSITION, order.client_order_id, str(exc), order.instrument_id
                )
                return
            if status in _TERMINAL:
                self._finish(order)
        if self._recording:
            self._record_order(order)
        for listener in self.order_listeners:  # replaces self._notify_order(order)
            try:
                listener(order)
            except Exception:
                log.exception("order listener failed on %s", order.client_order_id)

    def on_fill(self, fill: Fill) -> None:
        fid = fill.fill_id
        if fid in self._fill_ids:
            self._issue(
                IssueKind.DUPLICATE_FILL,
                fill.client_order_id,
                f"fill {fid} arrived twice",
                fill.instrument_id,
            )
            return
        order = self._orders.get(fill.client_order_id)
        if order is None:
            # The venue says it traded: the position changed whether or not we know the order.
            self._issue(
                IssueKind.UNKNOWN_ORDER,
                fill.client_order_id,
                f"fill {fid} for an unknown order",
                fill.instrument_id,
            )
        elif fill.side is not order.side or fill.instrument_id != order.instrument_id:
            self._issue(
                IssueKind.BAD_FILL,
                fill.client_order_id,
                f"fill {fid} ({fill.side.value} {fill.instrument_id}) does not match the order "
                f"({order.side.value} {order.instrument_id})",
                fill.instrument_id,
            )
            return
        if self.portfolio is not None:
            try:
                self.portfolio.apply_fill(fill)
            except OmnidError as exc:
                self._issue(IssueKind.BAD_FILL, fill.client_order_id, str(exc), fill.instrument_id)
                return
        # Remember the id for the duplicate check, the oldest forgotten past keep_fill_ids (inline).
        self._fill_ids.add(fid)
        fill_order = self._fill_order
        fill_order.append(fid)
        if len(fill_order) > self._keep_fill_ids:
            self._fill_ids.discard(fill_order.popleft())
        if self._recording:
            self.recorder.record(fill)
        if self.journal is not None:
            self._journal_after(fill, fill.client_order_id)
        if order is not None:
            try:
                order.apply_fill(fill.qty, fill.price, fill.ts_event)
            except IllegalTransition as exc:
                self._issue(
                    IssueKind.ILLEGAL_TRANSITION, order.client_order_id, str(exc), order.instrument_id
                )
            else:
                if not order.venue_order_id:
                    order.venue_order_id = fill.venue_order_id
                if order.status is _FILLED:
                    # Replaces self._finish(order) when the order was open (else _finish decides).
                    coid = order.client_order_id
                    if self._open.pop(coid, None) is not None:
                        self._cancel_sent.discard(coid)
                        closed = self._closed
                        closed.append(coid)
                        if len(closed) > self._keep_closed:
                            self._orders.pop(closed.popleft(), None)
                    else:
                        self._finish(order)
                if self._recording:
                    self._record_order(order)
                for notify in self.order_listeners:  # replaces self._notify_order(order)
                    try:
                        notify(order)
                    except Exception:
                        log.exception("order listener failed on %s", order.client_order_id)
        for listener in self.fill_listeners:
            try:
                listener(fill, order)
            except Exception:
                log.exception("fill listener failed on %s", fid)

    # ---------------------------------------------------------------------------------------------

    def _journal_after(self, item: OrderUpdate | Fill, client_order_id: str) -> None:
        """Journal what the venue said (after the fact: a failure is recorded, not fatal here,
        since the venue remains the second source of truth for its own reports)."""
        assert self.journal is not None
        try:
            self.journal.append(item)
        except Exception as exc:
            self._issue(IssueKind.JOURNAL_FAILED, client_order_id, f"journal failed: {exc}")

    def _finish(self, order: Order) -> None:
        coid = order.client_order_id
        if self._open.pop(coid, None) is None and coid not in self._orders:
            return
        self._cancel_sent.discard(coid)
        self._closed.append(coid)
        if len(self._closed) > self._keep_closed:
            self._orders.pop(self._closed.popleft(), None)

    def _record_order(self, order: Order) -> None:
        if self._recording:
            self.recorder.record(order_snapshot(order))

    def _notify_order(self, order: Order) -> None:
        for listener in self.order_listeners:
            try:
                listener(order)
            except Exception:
                log.exception("order listener failed on %s", order.client_order_id)

    def _issue(self, kind: IssueKind, client_order_id: str, message: str, instrument_id: str = "") -> None:
        self.issues += 1
        log.warning("execution issue %s on %s: %s", kind.value, client_order_id, message)
        self.recorder.record(
            ExecutionIssue(
                ts=self._clock.now_ns(),
                kind=kind,
                client_order_id=client_order_id,
                message=message,
                instrument_id=instrument_id,
            )
        )


def _validate(order: Order) -> str:
    """Why an order cannot be sent as it stands ('' when it can)."""
    if order.side is _NO_SIDE:
        return "side must be buy or sell"
    if not (math.isfinite(order.qty) and order.qty > 0):
        return f"quantity must be positive, got {order.qty!r} (the risk gate sizes qty=0 intents)"
    if order.order_type in _NEEDS_LIMIT and not _positive(order.limit_price):
        return f"a {order.order_type.value} order needs a positive limit_price, got {order.limit_price!r}"
    if order.order_type in _NEEDS_STOP and not _positive(order.stop_price):
        return f"a {order.order_type.value} order needs a positive stop_price, got {order.stop_price!r}"
    return ""


def _positive(x: float | None) -> bool:
    return x is not None and math.isfinite(x) and x > 0


def order_snapshot(order: Order) -> Order:
    """A copy of an order that later changes to it do not reach."""
    return msgspec.structs.replace(order)
