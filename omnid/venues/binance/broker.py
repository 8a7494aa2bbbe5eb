"""Binance spot execution: orders over signed REST, order events over the WebSocket API user stream.

``submit``/``cancel`` never block: they check the order, schedule the request on the loop and
return; outcomes arrive through :class:`~omnid.ports.ExecutionEvents` as :class:`OrderUpdate` and
:class:`Fill`. Fills come from ``executionReport`` events (user-data-stream.md); every order keeps
its cumulative filled quantity and quote, and a report is booked only for the part beyond what is
already booked, so a fill seen both in a reconcile and in the stream is never counted twice.

Failure rules (errors.md, http-return-codes.md):
- a filter failure (-1013), a rejection (-2010) or a local check failure → REJECTED, never retried;
- 429/418 → the REST client stops sending until ``Retry-After``; the order was not taken → REJECTED;
- 5XX, -1007 or a lost connection → the order may exist: it is *queried by client order id*
  (never resent), and its real state is reported; only if the venue still has no record after
  ``status_query_attempts`` queries is it reported REJECTED;
- -1021 → the REST client resyncs its server-time offset and retries once.
On every (re)connection of the user stream the broker reconciles over REST: balances, open orders,
and any order it tracks that changed while the stream was away.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import msgspec

from omnid.errors import (
    FatalError,
    OmnidError,
    RateLimitedError,
    RejectedError,
    StatusUnknownError,
    TransientError,
)
from omnid.model import Fill, Instrument, Liquidity, Order, OrderStatus
from omnid.ports import ExecutionEvents, OrderUpdate, VenueCapabilities
from omnid.venues.binance import wire
from omnid.venues.binance.config import VENUE, BinanceConfig, Credentials
from omnid.venues.binance.feed import RetryPolicy, backoff_policy
from omnid.venues.binance.orders import order_params
from omnid.venues.binance.rest import BinanceRest, sign

log = logging.getLogger("omnid.venues.binance.broker")

CAPABILITIES = VenueCapabilities(
    order_types=frozenset({"market", "limit", "limit_maker", "stop", "stop_limit"}),
    time_in_force=frozenset({"gtc", "ioc", "fok"}),
    supports_short=False,
    supports_cancel_replace=False,
    fractional_qty=True,
)

#: Binance order status (enums.md) → omnid status. PARTIALLY_FILLED/FILLED travel as fills.
_STATUS = {
    "NEW": OrderStatus.ACCEPTED,
    "PENDING_NEW": OrderStatus.ACCEPTED,
    "CANCELED": OrderStatus.CANCELLED,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,
}
_EPS = 1e-12


class WireExecutionReport(msgspec.Struct):
    """``executionReport`` (user-data-stream.md); only the fields omnid uses."""

    E: int
    s: str
    c: str
    S: str
    x: str
    X: str
    i: int
    z: float
    Z: float
    l: float  # noqa: E741 - Binance's key
    L: float
    T: int
    t: int
    m: bool
    n: float = 0.0
    N: str | None = None
    r: str = "NONE"
    C: str = ""


class UserFrame(msgspec.Struct):
    """A WebSocket API frame: a response (``id``/``status``) or an event (``event``)."""

    id: str | int | None = None
    status: int = 0
    result: Any = None
    error: dict[str, Any] | None = None
    subscriptionId: int | None = None
    event: msgspec.Raw = msgspec.Raw(b"")  # empty when the frame is a response


_frame_dec = msgspec.json.Decoder(UserFrame)
_report_dec = msgspec.json.Decoder(WireExecutionReport, strict=False)


class _Tracked:
    __slots__ = ("filled", "order", "quote", "status", "symbol", "venue_order_id")

    def __init__(self, order: Order, symbol: str) -> None:
        self.order = order
        self.symbol = symbol
        self.status = OrderStatus.SUBMITTED
        self.filled = order.filled_qty
        self.quote = order.filled_qty * order.avg_fill_price
        self.venue_order_id = order.venue_order_id


class BrokerStats:
    __slots__ = ("callback_errors", "foreign_reports", "malformed", "reconciles", "status_queries",
                 "user_connections")

    def __init__(self) -> None:
        self.user_connections = 0
        self.reconciles = 0
        self.status_queries = 0
        self.foreign_reports = 0
        self.malformed = 0
        self.callback_errors = 0


class BinanceBroker:
    """An :class:`~omnid.ports.ExecutionClient` for Binance spot."""

    venue = VENUE
    capabilities = CAPABILITIES

    def __init__(
        self,
        cfg: BinanceConfig,
        rest: BinanceRest,
        credentials: Credentials,
        *,
        session: aiohttp.ClientSession,
        instruments: dict[str, Instrument] | None = None,
        last_price: Callable[[str], float | None] | None = None,
        retry: RetryPolicy | None = None,
        wall_ns: Callable[[], int] = time.time_ns,
        query_delays: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0),
    ) -> None:
        self.cfg = cfg
        self.rest = rest
        self._creds = credentials
        self._session = session
        self.instruments: dict[str, Instrument] = dict(instruments or {})
        self.tradable: set[str] = set(self.instruments)
        self._last_price = last_price
        self.retry = retry or backoff_policy(cfg.reconnect_initial_s, cfg.reconnect_max_s)
        self._wall_ns = wall_ns
        self._query_delays = query_delays[: max(cfg.status_query_attempts, 1)]
        self._events: ExecutionEvents | None = None
        self._orders: dict[str, _Tracked] = {}
        self._adopted: set[str] = set()  # from the journal: no submit of this run will resolve them
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self.balances: dict[str, tuple[float, float]] = {}  # asset → (free, locked)
        #: Per asset, what reconcile leaves out of omnid's books ([binance] hold_back).
        self.hold_back: dict[str, float] = dict(cfg.hold_back)
        self.stats = BrokerStats()
        self.user_stream_ready = asyncio.Event()
        self.failed: BaseException | None = None

    def __repr__(self) -> str:
        return f"BinanceBroker(orders={len(self._orders)}, credentials={self._creds!r})"

    # ---------------------------------------------------------------------------------------------
    # ExecutionClient

    def bind(self, events: ExecutionEvents) -> None:
        self._events = events

    def adopt(self, order: Order) -> None:
        """Track an order sent before a restart (from the journal) so its events are routed."""
        tr = _Tracked(order, order.instrument_id.partition(".")[0])
        if order.status is not OrderStatus.NEW:
            tr.status = order.status
        self._orders[order.client_order_id] = tr
        self._adopted.add(order.client_order_id)

    def submit(self, order: Order) -> None:
        cid = order.client_order_id
        if cid in self._orders:
            log.warning("binance: order %s submitted twice; ignoring the repeat", cid)
            return
        symbol = order.instrument_id.partition(".")[0]
        tr = _Tracked(order, symbol)
        self._orders[cid] = tr
        inst = self.instruments.get(symbol)
        try:
            if inst is None:
                raise RejectedError(f"binance order {cid}: unknown symbol {symbol}", client_order_id=cid)
            if symbol not in self.tradable:
                raise RejectedError(f"binance order {cid}: {symbol} is not trading now", client_order_id=cid)
            last = self._last_price(symbol) if self._last_price else None
            params = order_params(order, inst, last_price=last)
        except RejectedError as exc:
            asyncio.get_running_loop().call_soon(self._set_status, tr, OrderStatus.REJECTED, exc.message)
            return
        self._spawn(self._send_new(tr, params))

    def cancel(self, client_order_id: str) -> None:
        tr = self._orders.get(client_order_id)
        if tr is None or tr.status.is_terminal:
            log.warning("binance: cancel of %s ignored (unknown or already %s)", client_order_id,
                        tr.status.value if tr else "unknown")
            return
        self._spawn(self._send_cancel(tr))

    # ---------------------------------------------------------------------------------------------
    # Lifecycle

    async def start(self, *, timeout_s: float | None = None) -> None:
        """Sync time, load instruments, open the user stream; returns once it is subscribed and
        reconciled. Raises rather than trade blind: :class:`FatalError` when the keys are refused,
        :class:`TransientError` when the stream is not up within ``timeout_s``."""
        await self.rest.sync_time()
        if not self.instruments:
            await self.load_instruments()
        self._spawn(self._user_stream())
        self._spawn(self._time_sync())
        wait = timeout_s if timeout_s is not None else 3 * self.cfg.request_timeout_s
        try:
            await asyncio.wait_for(self.user_stream_ready.wait(), wait)
        except TimeoutError:
            raise TransientError(f"binance user data stream not subscribed within {wait:.0f}s",
                                 url=self.cfg.urls[2]) from None
        if isinstance(self.failed, FatalError):
            raise self.failed

    async def load_instruments(self, symbols: list[str] | None = None) -> None:
        info = await self.rest.exchange_info(symbols or self.cfg.symbols or None)
        self.instruments.update({s: i.instrument for s, i in info.items()})
        self.tradable = {s for s, i in info.items() if i.trading}

    def _is_stopping(self) -> bool:
        return self._stopping  # a method, so the loop re-reads it after each await

    async def stop(self) -> None:
        self._stopping = True
        if self._ws is not None:
            await self._ws.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("binance broker task failed: %r", task.exception())

    async def _time_sync(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.time_sync_interval_s)
            try:
                await self.rest.sync_time()
            except OmnidError as exc:
                log.warning("binance: time sync failed: %s", exc)

    # ---------------------------------------------------------------------------------------------
    # Requests

    async def _send_new(self, tr: _Tracked, params: dict[str, str]) -> None:
        cid = tr.order.client_order_id
        try:
            resp = await self.rest.new_order(params)
        except StatusUnknownError as exc:
            log.warning("binance: new order %s status unknown (%s); querying, not resending", cid, exc)
            await self._resolve(tr)
            return
        except RateLimitedError as exc:
            self._set_status(tr, OrderStatus.REJECTED, f"not sent: rate limited for {exc.retry_after:.0f}s")
            return
        except FatalError as exc:
            log.error("binance: %s", exc)
            self._set_status(tr, OrderStatus.REJECTED, exc.message)
            return
        except OmnidError as exc:  # RejectedError, and a -1021 that survived a resync
            self._set_status(tr, OrderStatus.REJECTED, exc.message)
            return
        self._apply_order(tr, resp)

    async def _send_cancel(self, tr: _Tracked) -> None:
        try:
            resp = await self.rest.cancel_order(tr.symbol, tr.order.client_order_id)
        except (StatusUnknownError, RejectedError) as exc:
            # Unknown: it may have been cancelled. -2011: it may have filled meanwhile. Ask.
            log.info("binance: cancel of %s answered %s; querying", tr.order.client_order_id, exc)
            await self._resolve(tr)
            return
        except OmnidError as exc:
            log.warning("binance: cancel of %s failed: %s", tr.order.client_order_id, exc)
            return
        self._apply_order(tr, resp)

    async def _resolve(self, tr: _Tracked) -> None:
        """Query an order whose fate is unknown until the venue says, without ever resending it."""
        cid = tr.order.client_order_id
        for delay in self._query_delays:
            if delay:
                await asyncio.sleep(delay)
            if tr.status.is_terminal:
                return  # the user stream told us meanwhile
            self.stats.status_queries += 1
            try:
                resp = await self.rest.query_order(tr.symbol, cid)
            except OmnidError as exc:
                if isinstance(exc, FatalError):
                    break
                continue  # -2013 (not visible yet), 5xx, rate limit: ask again later
            self._apply_order(tr, resp, book_fills=True)
            return
        if tr.status is OrderStatus.SUBMITTED:
            log.error("binance: order %s status unknown and the venue has no record after %d queries",
                      cid, len(self._query_delays))
            self._set_status(tr, OrderStatus.REJECTED, "status unknown; the venue has no record of the order")

    # ---------------------------------------------------------------------------------------------
    # State → events

    def _apply_order(self, tr: _Tracked, resp: Any, *, book_fills: bool = False) -> None:
        """Apply an order as REST reports it (new/cancel/query answers)."""
        try:
            status = str(resp["status"])
            executed = float(resp["executedQty"])
            quote = float(resp["cummulativeQuoteQty"])
            tr.venue_order_id = str(resp["orderId"])
        except (KeyError, TypeError, ValueError) as exc:
            self.stats.malformed += 1
            log.warning("binance: malformed order answer for %s: %r", tr.order.client_order_id, exc)
            return
        mapped = _STATUS.get(status)
        if executed > tr.filled + _EPS and (book_fills or (mapped is not None and mapped.is_terminal)):
            # A fill the stream has not delivered (yet): book it before a terminal status, or the
            # order manager would see a fill on a closed order.
            self._book_fill(tr, executed, quote, fill_id=f"{tr.symbol}-{tr.venue_order_id}-z{executed:.8f}",
                            commission=0.0, commission_ccy="", maker=False, ts=self._wall_ns())
        if mapped is not None:
            self._set_status(tr, mapped, "" if mapped is not OrderStatus.REJECTED else f"venue: {status}")

    def _set_status(self, tr: _Tracked, status: OrderStatus, reason: str = "") -> None:
        if tr.status.is_terminal or status is tr.status:
            return
        if status is OrderStatus.ACCEPTED and tr.status is not OrderStatus.SUBMITTED:
            return  # already past acknowledgement
        tr.status = status
        if self._events is None:
            return
        update = OrderUpdate(client_order_id=tr.order.client_order_id, status=status,
                             ts_event=self._wall_ns(), venue_order_id=tr.venue_order_id, reason=reason)
        try:
            self._events.on_order_update(update)
        except Exception:
            self.stats.callback_errors += 1
            log.exception("binance: on_order_update raised")

    def _book_fill(self, tr: _Tracked, cum_qty: float, cum_quote: float, *, fill_id: str, commission: float,
                   commission_ccy: str, maker: bool, ts: int) -> None:
        qty = cum_qty - tr.filled
        if qty <= _EPS:
            return
        price = (cum_quote - tr.quote) / qty if cum_quote > tr.quote else cum_quote / cum_qty
        tr.filled, tr.quote = cum_qty, cum_quote
        if tr.status is OrderStatus.SUBMITTED or tr.status is OrderStatus.ACCEPTED:
            tr.status = OrderStatus.PARTIALLY_FILLED
        if cum_qty >= tr.order.qty - _EPS:
            tr.status = OrderStatus.FILLED
        if self._events is None:
            return
        o = tr.order
        fill = Fill(fill_id=fill_id, client_order_id=o.client_order_id, instrument_id=o.instrument_id,
                    strategy_id=o.strategy_id, side=o.side, qty=qty, price=price, commission=commission,
                    commission_currency=commission_ccy, venue_order_id=tr.venue_order_id, ts_event=ts,
                    liquidity=Liquidity.MAKER if maker else Liquidity.TAKER)
        try:
            self._events.on_fill(fill)
        except Exception:
            self.stats.callback_errors += 1
            log.exception("binance: on_fill raised")

    # ---------------------------------------------------------------------------------------------
    # User data stream (websocket-api/user-data-stream-requests.md)

    async def _user_stream(self) -> None:
        attempt = 0
        while not self._stopping:
            error: BaseException | None = None
            streamed = False
            try:
                async with self._session.ws_connect(self.cfg.urls[2], autoping=True, max_msg_size=0) as ws:
                    self._ws = ws
                    await self._subscribe(ws)
                    self.stats.user_connections += 1
                    streamed = True
                    await self.reconcile()
                    self.user_stream_ready.set()
                    try:  # connections are cut at 24h: leave before, and reconcile on the new one
                        await asyncio.wait_for(self._read_user(ws), self.cfg.max_connection_age_s)
                    except TimeoutError:
                        log.info("binance user stream: planned reconnect before the 24h cut")
            except FatalError as exc:
                self.failed = exc
                log.error("binance user stream: %s; not retrying", exc)
                self.user_stream_ready.set()
                return
            except (aiohttp.ClientError, OSError, TimeoutError, OmnidError) as exc:
                error = exc
                log.warning("binance user stream: %s: %s", type(exc).__name__, exc)
            self._ws = None
            if self._is_stopping():
                return
            attempt = 1 if streamed else attempt + 1
            delay = self.retry(attempt, error)
            if delay is None:
                self.failed = error
                return
            await asyncio.sleep(delay)

    async def _subscribe(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        for attempt in (0, 1):
            params: dict[str, str | int] = {"apiKey": self._creds.api_key, "timestamp": self.rest.server_ms()}
            payload = "&".join(f"{k}={params[k]}" for k in sorted(params))
            params["signature"] = sign(self._creds.secret, payload)
            request = {"id": f"omnid-sub-{attempt}", "method": "userDataStream.subscribe.signature",
                       "params": params}
            await ws.send_str(msgspec.json.encode(request).decode())
            # wait_for, not receive(timeout): aiohttp restarts that timeout on every server ping.
            frame = await asyncio.wait_for(self._response(ws), self.cfg.request_timeout_s)
            if frame.status == 200:
                return
            code = (frame.error or {}).get("code")
            text = f"binance userDataStream.subscribe.signature: {frame.error}"
            if code == -1021 and attempt == 0:
                await self.rest.sync_time()
                continue
            if code in (-2014, -2015, -1022, -1002):
                raise FatalError(text, code=code)
            raise ConnectionError(text)

    async def _response(self, ws: aiohttp.ClientWebSocketResponse) -> UserFrame:
        while True:
            msg = await ws.receive()
            if msg.type is not aiohttp.WSMsgType.TEXT and msg.type is not aiohttp.WSMsgType.BINARY:
                raise ConnectionError(f"user stream closed while subscribing ({msg.type.name})")
            frame = _frame_dec.decode(msg.data)
            if frame.id is not None:
                return frame
            self.on_user_frame(msg.data)  # an event racing the answer is still an event

    async def _read_user(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            msg = await ws.receive()
            if msg.type is not aiohttp.WSMsgType.TEXT and msg.type is not aiohttp.WSMsgType.BINARY:
                log.warning("binance user stream closed (%s)", msg.type.name)
                return
            if self.on_user_frame(msg.data) == "serverShutdown":
                log.info("binance user stream: serverShutdown, reconnecting")
                return

    def on_user_frame(self, data: str | bytes) -> str | None:
        try:
            frame = _frame_dec.decode(data)
            if not len(frame.event):
                return None
            etype = wire.decode_event_type(frame.event)
            if etype == "executionReport":
                self._on_report(_report_dec.decode(frame.event))
            elif etype == "serverShutdown":
                return "serverShutdown"
            elif etype == "outboundAccountPosition":
                self._on_position(msgspec.json.decode(frame.event))
        except (msgspec.DecodeError, msgspec.ValidationError, KeyError, TypeError, ValueError) as exc:
            self.stats.malformed += 1
            if self.stats.malformed == 1:
                log.warning("binance user stream: malformed event skipped: %s", exc)
        return None

    def _on_report(self, r: WireExecutionReport) -> None:
        cid = r.C if r.x == "CANCELED" and r.C else r.c
        tr = self._orders.get(cid)
        if tr is None:
            self.stats.foreign_reports += 1
            log.info("binance: executionReport for an order omnid did not place (%s %s)", r.s, cid)
            return
        tr.venue_order_id = str(r.i)
        if r.x == "TRADE":
            self._book_fill(tr, r.z, r.Z, fill_id=f"{r.s}-{r.t}", commission=r.n, commission_ccy=r.N or "",
                            maker=r.m, ts=r.T * wire.MS)
            return
        mapped = _STATUS.get(r.X)
        if mapped is not None:
            if r.z > tr.filled + _EPS and mapped.is_terminal:
                self._book_fill(tr, r.z, r.Z, fill_id=f"{r.s}-{r.i}-z{r.z:.8f}", commission=0.0,
                                commission_ccy="", maker=False, ts=r.T * wire.MS)
            self._set_status(tr, mapped, "" if r.r == "NONE" else f"venue: {r.r}")

    def _on_position(self, event: dict[str, Any]) -> None:
        for b in event.get("B", []):
            self.balances[str(b["a"])] = (float(b["f"]), float(b["l"]))

    # ---------------------------------------------------------------------------------------------
    # Reconciliation

    async def reconcile(self) -> dict[str, int]:
        """Balances, open orders, and every tracked open order re-read from the venue."""
        self.stats.reconciles += 1
        account = await self.rest.account()
        self.balances = {str(b["asset"]): (float(b["free"]), float(b["locked"])) for b in account["balances"]}
        open_orders = await self.rest.open_orders()
        seen: set[str] = set()
        for o in open_orders:
            tr = self._orders.get(str(o.get("clientOrderId", "")))
            if tr is not None:
                seen.add(tr.order.client_order_id)
                self._apply_order(tr, o, book_fills=True)
        queried = 0
        for cid, tr in list(self._orders.items()):
            if tr.status.is_terminal or cid in seen:
                continue
            queried += 1
            try:
                self._apply_order(tr, await self.rest.query_order(tr.symbol, cid), book_fills=True)
            except RejectedError:
                if cid in self._adopted and tr.status is OrderStatus.SUBMITTED:
                    # Journaled before a crash but maybe never sent: no submit of ours is pending
                    # to resolve it, so ask again a few times, then close it (never resend it).
                    self._adopted.discard(cid)
                    self._spawn(self._resolve(tr))
                continue  # not at the venue (yet); a pending submit resolves it
        return {"open": len(open_orders), "queried": queried, "balances": len(self.balances)}

    def balance(self, asset: str) -> float:
        free, locked = self.balances.get(asset, (0.0, 0.0))
        return free + locked

    def tracked_status(self, client_order_id: str) -> OrderStatus | None:
        tr = self._orders.get(client_order_id)
        return tr.status if tr else None
