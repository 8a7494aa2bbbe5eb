"""Binance spot market data: one combined-stream WebSocket → omnid events, handed to a sync callback.

What it guarantees (facts from binance-spot-api-docs web-socket-streams.md):
- Subscribes with ``SUBSCRIBE`` on ``/stream`` and again after every reconnect.
- Answers the server's pings (every 20 s; no pong within a minute → disconnected) through aiohttp's
  autoping, which echoes the ping's payload as the doc requires.
- A connection lives at most 24 h: before ``max_connection_age_s``, and at once on
  ``serverShutdown``, a new socket subscribes while the old one still streams and the old one is
  closed only then (trades both deliver meanwhile are de-duplicated), so a planned cut loses nothing.
- Reconnects with exponential backoff and jitter; whether to retry at all is one replaceable
  function (:data:`RetryPolicy`), as in websockets' client.
- A stream with no data for ``silence_timeout_s`` counts as dead and is reconnected (server pings
  do not count as data).
- After any reconnect the books resync from a REST snapshot and closed klines missed while away are
  fetched over REST and emitted in order, so the engine sees no hole.
- Trades, after an unplanned reconnect: the feed knows the last id it delivered per symbol and
  stream (``t`` of ``@trade``, ``a`` of ``@aggTrade``). Once the new socket's SUBSCRIBE is answered,
  it pages through ``/api/v3/historicalTrades`` (trade ids) or ``/api/v3/aggTrades`` (aggregate ids)
  with ``fromId`` = last + 1, 1000 a page, oldest first, while that symbol's live trades wait in a
  buffer; fetched ones go to ``on_event`` in id order, then the buffer, each id once (ids already
  delivered are dropped), until the fetch reaches the live stream or the venue's present. It is
  bounded by ``trade_gap_max_pages`` and ``trade_gap_timeout_s``: when live trades already show the
  gap to be wider than the pages allow, its oldest part is skipped (features want the newest);
  otherwise pages go oldest first until the cap. When the REST calls still fail after three tries (a
  429/418 waits its ``Retry-After`` only if the budget allows), or time runs out, live trades are
  released. Every id range not delivered is logged as a "TRADE GAP" warning naming the symbol and
  the ids, counted in ``stats.trade_gaps_lost`` and listed in ``stats.lost_trade_ranges`` (and in
  :meth:`BinanceFeed.status`, so ``omnid status`` shows it), and handed to ``on_trade_gap`` (the
  daemon raises an alert); the feed never stops for it.
- Trades missed while omnid was down: with a ``last_ids`` file (:mod:`.lastids`) and
  ``recover_on_start``, the first connection catches up from the last ids the previous run
  delivered, exactly as after a reconnect, unless they are older than ``recover_max_age_s``. The
  file is written every few seconds (in a worker thread) and on :meth:`stop`, never per trade. A
  symbol with no trade yet is not recovered. A live id below the last delivered one (a reset test
  network) is logged and followed, so held live trades are never dropped as repeats.
- A malformed message is counted per kind, logged once per kind, and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from omnid.errors import DataError, FatalError, OmnidError, RateLimitedError, TransientError
from omnid.model import Bar, BookDelta, MarketEvent, Trade
from omnid.ops.protocol import FeedStatus
from omnid.venues.binance import lastids, wire
from omnid.venues.binance.book import DiffResult, LocalBook, SnapshotResult, SyncState
from omnid.venues.binance.config import BinanceConfig
from omnid.venues.binance.rest import BinanceRest

log = logging.getLogger("omnid.venues.binance.feed")

#: ``(attempt, error) -> seconds to wait, or None to give up``. ``attempt`` counts from 1.
RetryPolicy = Callable[[int, BaseException | None], float | None]


def backoff_policy(
    initial_s: float, max_s: float, *, max_attempts: int = 0, rng: Callable[[], float] = random.random
) -> RetryPolicy:
    """Exponential backoff with "equal jitter" (half fixed, half random); gives up on FatalError or
    after ``max_attempts`` consecutive failures (0 = never)."""

    def policy(attempt: int, error: BaseException | None) -> float | None:
        if isinstance(error, FatalError) or (max_attempts and attempt > max_attempts):
            return None
        base = min(max_s, initial_s * 2.0 ** max(attempt - 1, 0))
        return base * (0.5 + 0.5 * rng())

    return policy


class TradeGap(msgspec.Struct, frozen=True, kw_only=True):
    """Trades ``first_id..last_id`` of ``symbol``'s ``stream`` that will never be delivered.

    ``reason`` is one of ``cap`` (trade_gap_max_pages), ``timeout`` (trade_gap_timeout_s),
    ``banned`` (429/418), ``rest_failed`` (still failing after retries), ``bad_answer`` (a page that
    did not decode); ``detail`` says it in words. ``cause`` is ``reconnect`` or ``restart`` (missed
    while omnid was down)."""

    feed: str
    symbol: str
    stream: str
    first_id: int
    last_id: int
    reason: str
    detail: str
    cause: str

    @property
    def text(self) -> str:
        """``"BTCUSDT trades 1001-1050"`` (``aggTrades`` for aggregate ids)."""
        return f"{self.symbol} {self.stream}s {self.first_id}-{self.last_id}"


class FeedStats:
    """Counters a health check or a test can read."""

    __slots__ = ("callback_errors", "connections", "gaps", "lost_trade_ranges", "malformed", "messages",
                 "planned_reconnects", "recovered_bars", "recovered_trades", "resyncs", "server_shutdowns",
                 "silent", "stale", "trade_gaps_lost", "trade_gaps_refetched")

    def __init__(self) -> None:
        self.messages = 0
        self.connections = 0
        self.resyncs = 0
        self.gaps = 0
        self.stale = 0
        self.silent = 0
        self.server_shutdowns = 0
        self.planned_reconnects = 0
        self.recovered_bars = 0
        self.callback_errors = 0
        self.recovered_trades = 0  # trades delivered from REST after a reconnect
        self.trade_gaps_refetched = 0  # catch-ups that closed their gap completely
        self.trade_gaps_lost = 0  # id ranges that could not be fetched (each one logged)
        #: the latest lost ranges, oldest first: (symbol, "trade" | "aggTrade", first id, last id)
        self.lost_trade_ranges: list[tuple[str, str, int, int]] = []
        self.malformed: dict[str, int] = {}

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


# Stream kinds, resolved once per stream name (_TRADE and _AGG index the per-kind last-id dicts).
_TRADE, _AGG, _BT, _DEPTH, _KLINE, _SHUTDOWN, _UNKNOWN = range(7)
_SHUTDOWN_REASON = "serverShutdown"
_KIND_NAMES = {_TRADE: "trade", _AGG: "aggTrade"}
PAGE = 1000  # historicalTrades / aggTrades: limit max 1000
_PAGE_ATTEMPTS = 3  # tries per REST page before the range is reported lost
_LOST_KEPT = 100  # lost ranges kept in the stats
_LOST_SHOWN = 10  # of which status() shows the latest
_SAVE_EVERY_S = 5.0  # last-trade-id file: how often it is rewritten (when an id changed)
_REFRESH_EVERY_S = 60.0  # ... and when none did but the feed is live, to keep its saved_ns fresh


class _TradeCatchUp:
    """One symbol's trades after an unplanned reconnect: live ones wait in ``buffer`` while those
    missed meanwhile are fetched; then both go out in id order, each id once."""

    __slots__ = ("buffer", "cause", "deadline", "kind", "lost", "lost_from", "pages", "reason", "symbol",
                 "task", "why")

    def __init__(self, kind: int, symbol: str, deadline: float, cause: str) -> None:
        self.kind = kind
        self.symbol = symbol
        self.deadline = deadline  # loop time by which live trades flow again
        self.cause = cause  # "reconnect" | "restart"
        self.buffer: list[tuple[int, Trade]] = []
        self.pages = 0
        self.lost = 0
        self.lost_from = 0  # gave up before a live trade came: ids from here to the first live one are lost
        self.why = ""
        self.reason = ""  # TradeGap.reason for lost_from
        self.task: asyncio.Task[None] | None = None


class _Conn:
    """One socket's bookkeeping: when it opened, when data last came, why it is ending."""

    __slots__ = ("end_reason", "handover", "handover_at", "last_rx", "opened", "watch", "ws")

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.opened = self.last_rx = time.monotonic()
        self.end_reason = ""
        self.handover = ""  # why a replacement is being opened ("max_age", "serverShutdown")
        self.handover_at = 0.0
        self.watch: asyncio.TimerHandle | None = None

    def end(self, reason: str) -> None:
        if not self.end_reason:
            self.end_reason = reason
        if self.watch is not None:
            self.watch.cancel()
            self.watch = None


class BinanceFeed:
    """The market-data task. ``await run()`` until :meth:`stop`; events go to ``on_event``."""

    def __init__(
        self,
        cfg: BinanceConfig,
        on_event: Callable[[MarketEvent], None],
        *,
        session: aiohttp.ClientSession,
        rest: BinanceRest,
        retry: RetryPolicy | None = None,
        wall_ns: Callable[[], int] = time.time_ns,
        last_ids: Path | None = None,
        on_trade_gap: Callable[[TradeGap], None] | None = None,
    ) -> None:
        """``last_ids``: the file that carries the last delivered trade ids across restarts (None:
        they live in memory only); ``on_trade_gap``: told of each lost id range, must not block."""
        self.cfg = cfg
        self.on_event = on_event
        self.on_trade_gap = on_trade_gap
        self.last_ids_file = lastids.LastIdsFile(last_ids, cfg.urls[0]) if last_ids is not None else None
        self._live_ns = 0  # wall time the ids were last known newest (subscribed, nothing held)
        self._saved_ids: tuple[dict[str, int], dict[str, int]] = ({}, {})
        self._saved_at = 0.0  # monotonic time of the last write
        self._session = session
        self.rest = rest
        self.retry = retry or backoff_policy(cfg.reconnect_initial_s, cfg.reconnect_max_s,
                                             max_attempts=cfg.reconnect_max_attempts)
        self._wall_ns = wall_ns
        self.symbols = [s.upper() for s in cfg.symbols]
        self.streams = [f"{s.lower()}@{k}" for s in self.symbols for k in cfg.streams]
        self.books = {s: LocalBook(wire.instrument_id(s)) for s in self.symbols
                      if any(k.startswith("depth") for k in cfg.streams)}
        self._kinds: dict[str, tuple[int, str]] = {}
        self._last_bar_open: dict[tuple[str, str], int] = {}  # (symbol, interval) → open ms
        self._snapshot_tasks: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._stopped = asyncio.Event()
        self._logged: set[str] = set()
        self._req_id = 0
        self.stats = FeedStats()
        self.name = "binance"
        self.state = "connecting"  # connecting | connected | reconnecting | stopped | failed
        self._last_rx = 0.0
        self._url = cfg.urls[1].rstrip("/") + "/stream"
        self._conns: set[_Conn] = set()
        self._successor: asyncio.Task[str] | None = None
        self._overlap = False  # two sockets stream during a planned handover: drop repeats
        self._seen: set[tuple[int, str, str]] = set()
        # The last trade id delivered, per symbol, for @trade (t) and @aggTrade (a).
        self._last_trade_ids: dict[str, int] = {}
        self._last_agg_ids: dict[str, int] = {}
        self._last_ids = (self._last_trade_ids, self._last_agg_ids)  # indexed by _TRADE / _AGG
        self._holds: dict[tuple[int, str], _TradeCatchUp] = {}  # symbols whose live trades wait
        self._rate_mark = (time.monotonic(), 0)
        self.subscribed = asyncio.Event()
        self.failed: BaseException | None = None

    def __repr__(self) -> str:
        return f"BinanceFeed(streams={len(self.streams)}, connections={self.stats.connections})"

    # ---------------------------------------------------------------------------------------------
    # Lifecycle

    async def run(self) -> None:
        """Connect, stream, reconnect; returns after :meth:`stop`, raises when the policy gives up."""
        attempt = 0
        first = True
        restart = self._load_last_ids()
        if self.last_ids_file is not None:
            self._spawn(self._save_loop())
        while not self._is_stopping():
            error: BaseException | None = None
            reason = ""
            successor, self._successor = self._successor, None
            try:
                if successor is not None:
                    try:
                        reason = await successor
                    except asyncio.CancelledError:
                        me = asyncio.current_task()
                        if me is not None and me.cancelling():
                            raise  # run() itself is being cancelled
                        reason = "stopped"  # stop() cancelled a replacement still connecting
                else:
                    reason = await self._connection(catch_up=not first or restart,
                                                    cause="reconnect" if not first else "restart")
                first = False
            except (aiohttp.ClientError, OSError, TimeoutError, OmnidError) as exc:
                error = exc
                log.warning("binance feed: connection failed: %s: %s", type(exc).__name__, exc)
            self._overlap = False
            self._seen.clear()
            if self._has_successor() and not self._is_stopping():
                continue  # handed over: the new connection already streams; books and bars carry on
            self._cancel_snapshots()
            self.subscribed.clear()
            if self._is_stopping():
                break
            if reason in (_SHUTDOWN_REASON, "max_age"):
                attempt = 0
                continue  # the server asked, or the 24h cut is near: reconnect at once
            if reason:  # a session that streamed and then died: start the backoff afresh
                attempt = 0
            attempt += 1
            delay = self.retry(attempt, error)
            if delay is None:
                self.state = "failed"
                self.failed = error or ConnectionError(f"binance feed gave up after {attempt} attempts")
                log.error("binance feed: giving up after %d attempts", attempt)
                for t in list(self._tasks):  # the saver and any catch-up: nothing more will come
                    t.cancel()
                self._save_last_ids(False, in_thread=False)
                raise self.failed
            self.state = "reconnecting"
            with contextlib.suppress(TimeoutError):  # stop() ends the wait
                await asyncio.wait_for(self._stopped.wait(), delay)

    def _is_stopping(self) -> bool:
        return self._stopping  # a method, so the loop re-reads it after each await

    def _has_successor(self) -> bool:
        return self._successor is not None  # set by the watch timer while run() awaits

    def stop(self) -> None:
        """Ask :meth:`run` to return (closes the sockets; never blocks)."""
        live = self._is_live()
        self._stopping = True
        self._stopped.set()
        self.state = "stopped"
        self._save_last_ids(live, in_thread=False)
        self._cancel_snapshots()
        for t in list(self._tasks):
            t.cancel()
        if self._successor is not None:
            self._successor.cancel()
        for conn in list(self._conns):
            conn.end("stopped")
            if not conn.ws.closed:
                self._spawn(conn.ws.close())

    def status(self) -> FeedStatus:
        """What ``omnid status`` and the health check show for this feed."""
        now = time.monotonic()
        n, (t0, n0) = self.stats.messages, self._rate_mark
        rate = (n - n0) / (now - t0) if now > t0 else 0.0
        if now - t0 >= 5.0:
            self._rate_mark = (now, n)
        return FeedStatus(
            name=self.name, state=self.state, messages=n, rate=rate,
            last_age_s=now - self._last_rx if self._last_rx else None,
            reconnects=max(self.stats.connections - 1, 0),
            instruments=[wire.instrument_id(s) for s in self.symbols],
            trade_gaps_lost=self.stats.trade_gaps_lost,
            trade_gaps_refetched=self.stats.trade_gaps_refetched,
            lost_trade_ranges=[f"{s} {k}s {a}-{b}"
                               for s, k, a, b in self.stats.lost_trade_ranges[-_LOST_SHOWN:]],
        )

    # ---------------------------------------------------------------------------------------------
    # Last ids across restarts

    def _load_last_ids(self) -> bool:
        """Seed the last ids from the previous run's file; True when there is something to fetch."""
        f = self.last_ids_file
        if f is None or not self.cfg.recover_on_start:
            return False
        got = lastids.load(f.path, source=f.source, now_ns=self._wall_ns(),
                           max_age_s=self.cfg.recover_max_age_s)
        if got is None:
            return False
        streams = set(self.cfg.streams)
        seeded = 0
        for kind, name, table in ((_TRADE, "trade", got.trade), (_AGG, "aggTrade", got.aggTrade)):
            if name not in streams:
                continue
            for symbol, tid in table.items():
                if symbol in self.symbols:
                    self._last_ids[kind][symbol] = tid
                    seeded += 1
        self._saved_ids = (dict(self._last_trade_ids), dict(self._last_agg_ids))
        self._live_ns = got.saved_ns
        if seeded:
            log.info("binance feed: fetching trades missed while omnid was down (%.0fs ago) for %d stream(s) "
                     "from %s", (self._wall_ns() - got.saved_ns) / 1e9, seeded, f.path)
        return seeded > 0

    def _is_live(self) -> bool:
        """Are the last ids the newest the venue has, as far as the feed can know?"""
        return self.state == "connected" and self.subscribed.is_set() and not self._holds

    def _save_last_ids(self, live: bool, *, in_thread: bool) -> None:
        """Write the ids if they changed (or the feed was live since); never raises."""
        f = self.last_ids_file
        if f is None:
            return
        if live:
            self._live_ns = self._wall_ns()
        ids = (self._last_trade_ids, self._last_agg_ids)
        if not self._live_ns or not (ids[0] or ids[1]):
            return  # nothing known yet: keep what the previous run wrote
        now = time.monotonic()
        if ids == self._saved_ids and ((in_thread and now - self._saved_at < _REFRESH_EVERY_S) or not live):
            return  # unchanged: only refresh saved_ns now and then, and always on stop when live
        seq, body = f.snapshot(ids[0], ids[1], self._live_ns)
        self._saved_ids = (dict(ids[0]), dict(ids[1]))
        self._saved_at = now
        if in_thread:
            self._spawn(asyncio.to_thread(f.write, seq, body))
        else:
            f.write(seq, body)

    async def _save_loop(self) -> None:
        while True:
            await asyncio.sleep(_SAVE_EVERY_S)
            self._save_last_ids(self._is_live(), in_thread=True)

    def _cancel_snapshots(self) -> None:
        for t in self._snapshot_tasks.values():
            t.cancel()
        self._snapshot_tasks.clear()

    async def _connection(self, *, catch_up: bool, cause: str = "reconnect", predecessor: _Conn | None = None
                          ) -> str:
        """One connection's life; returns why it ended ("" if it never got going).

        With a ``predecessor`` this is a planned replacement: it subscribes while the old socket
        still streams, and retires the old one on its first frame, so nothing is missed at the cut;
        the events both deliver meanwhile are de-duplicated.
        """
        async with self._session.ws_connect(self._url, autoping=True, max_msg_size=0) as ws:
            conn = _Conn(ws)
            self._conns.add(conn)
            if self._stopping:  # stop() came while this socket was connecting
                self._conns.discard(conn)
                return "stopped"
            self.stats.connections += 1
            self.state = "connected"
            if predecessor is None:
                for book in self.books.values():
                    book.reset()
            self._req_id += 1
            await ws.send_str(msgspec.json.encode({"method": "SUBSCRIBE", "params": self.streams,
                                                   "id": self._req_id}).decode())
            if catch_up:
                self._spawn(self._recover_bars())
                self._hold_trades(cause)
            # Silence and age are watched by a timer, not a receive timeout: aiohttp answers the
            # server's pings inside receive() and restarts its timeout on each, so a stream whose
            # data stopped while pings still flow would never time out.
            self._watch(conn)
            on_frame = self.on_frame
            try:
                while True:
                    msg = await ws.receive()
                    if msg.type is aiohttp.WSMsgType.TEXT or msg.type is aiohttp.WSMsgType.BINARY:
                        conn.last_rx = self._last_rx = time.monotonic()
                        if predecessor is not None:  # subscribed: the old socket may go
                            predecessor.end("handover")
                            self._spawn(predecessor.ws.close())
                            predecessor = None
                        if on_frame(msg.data) is _SHUTDOWN_REASON:
                            self.stats.server_shutdowns += 1
                            log.info("binance feed: serverShutdown received, moving to a new socket")
                            self._hand_over(conn, _SHUTDOWN_REASON)
                    elif conn.end_reason:
                        return conn.end_reason
                    else:
                        log.warning("binance feed: connection closed (%s, code %s)", msg.type.name,
                                    ws.close_code)
                        return "closed"
            finally:
                if self._is_live():  # the ids were the newest until this moment
                    self._live_ns = self._wall_ns()
                conn.end(conn.end_reason or "closed")
                self._conns.discard(conn)

    def _hand_over(self, conn: _Conn, reason: str) -> None:
        """Open the replacement socket; ``conn`` streams on until the new one is subscribed."""
        if conn.handover or self._successor is not None or self._stopping:
            return
        conn.handover, conn.handover_at = reason, time.monotonic()
        self._overlap = True
        self._seen.clear()
        self._successor = asyncio.get_running_loop().create_task(
            self._connection(catch_up=False, predecessor=conn))

    def _watch(self, conn: _Conn) -> None:
        """Every fraction of a second or so: end a silent connection, replace one near the 24h cut."""
        if conn.end_reason:
            return
        now = time.monotonic()
        silence, max_age = self.cfg.silence_timeout_s, self.cfg.max_connection_age_s
        age = now - conn.opened
        if now - conn.last_rx >= silence:
            conn.end("silent")
            self.stats.silent += 1
            log.warning("binance feed: no data for %.1fs (pings do not count), treating the stream as dead",
                        silence)
            self._spawn(conn.ws.close())
            return
        if conn.handover:
            successor = self._successor
            if successor is None or successor.done() or now - conn.handover_at >= max(silence, 5.0):
                conn.end(conn.handover)  # the replacement failed or is late: close; run() reconnects
                self._spawn(conn.ws.close())
                return
        elif age >= max_age:
            self.stats.planned_reconnects += 1
            log.info("binance feed: planned reconnect before the 24h cut (new socket first)")
            self._hand_over(conn, "max_age")
        wait = min(silence / 4, max_age / 4, 1.0)
        conn.watch = asyncio.get_running_loop().call_later(wait, self._watch, conn)

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---------------------------------------------------------------------------------------------
    # Frames → events (synchronous: this is the hot path)

    def on_frame(self, data: str | bytes) -> str | None:
        """Decode one frame and hand its event on; returns "serverShutdown" when the server says so.

        Binance writes ``{"stream":"<name>","data":...}`` with the stream first, so the name is read
        off the text and the whole frame decoded in one pass with the payload's own type.
        """
        self.stats.messages += 1
        ts = self._wall_ns()
        if type(data) is str and data.startswith('{"stream":"'):
            stream = data[11 : data.find('"', 11)]
            kind = self._kinds.get(stream)
            if kind is None:
                kind = self._kinds[stream] = _classify(stream)
            k = kind[0]
            try:
                if k == _DEPTH:
                    self._on_depth(wire.delta_from(wire.depth_frame_dec.decode(data).data, ts))
                    return None
                if k == _TRADE:
                    w = wire.trade_frame_dec.decode(data).data
                    if self._overlap or self._holds:
                        self._trade(k, w.s, w.t, wire.trade_from(w, ts))
                    else:
                        self._last_trade_ids[w.s] = w.t
                        self._emit(wire.trade_from(w, ts))
                    return None
                if k == _BT:
                    self._emit(wire.quote_from(wire.book_ticker_frame_dec.decode(data).data, ts))
                    return None
                if k == _AGG:
                    a = wire.agg_frame_dec.decode(data).data
                    if self._overlap or self._holds:
                        self._trade(k, a.s, a.a, wire.agg_trade_from(a, ts))
                    else:
                        self._last_agg_ids[a.s] = a.a
                        self._emit(wire.agg_trade_from(a, ts))
                    return None
                if k == _KLINE:
                    bar, closed = wire.bar_from(wire.kline_frame_dec.decode(data).data, ts)
                    if closed:
                        self._on_closed_bar(kind[1], bar)
                    return None
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                self._malformed(stream.partition("@")[2] or stream, exc)
                return None
        return self._frame(data, ts)

    def _frame(self, data: str | bytes, ts: int) -> str | None:
        """The general path: control replies, serverShutdown, odd layouts, unknown streams."""
        try:
            env = wire.envelope_decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self._malformed("envelope", exc)
            return None
        stream = env.stream
        if not stream:
            if env.code is not None:
                self._malformed("control", OmnidError(f"code {env.code}: {env.msg}"))
            elif env.id is not None:
                self.subscribed.set()
            elif wire.decode_event_type(data) == "serverShutdown":  # a raw (un-enveloped) event
                return _SHUTDOWN_REASON
            return None
        kind = self._kinds.get(stream)
        if kind is None:
            kind = self._kinds[stream] = _classify(stream)
        try:
            k = kind[0]
            if k == _DEPTH:
                self._on_depth(wire.decode_depth(env.data, ts))
            elif k in (_TRADE, _AGG):
                t = wire.decode_trade(env.data, ts) if k == _TRADE else wire.decode_agg_trade(env.data, ts)
                self._trade(k, t.instrument_id.partition(".")[0], int(t.trade_id), t)
            elif k == _BT:
                self._emit(wire.decode_book_ticker(env.data, ts))
            elif k == _KLINE:
                bar, closed = wire.decode_kline(env.data, ts)
                if closed:
                    self._on_closed_bar(kind[1], bar)
            elif k == _SHUTDOWN:
                if wire.decode_event_type(env.data) == "serverShutdown":
                    return _SHUTDOWN_REASON
            else:
                self._malformed(f"unknown stream {stream}", None)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self._malformed(stream.partition("@")[2] or stream, exc)
        return None

    def _repeat(self, kind: int, t: Trade) -> bool:
        """During a handover: has the other socket already delivered this trade?"""
        key = (kind, t.instrument_id, t.trade_id)
        if key in self._seen:
            return True
        self._seen.add(key)
        return False

    def _trade(self, kind: int, symbol: str, tid: int, t: Trade) -> None:
        """A live trade off the fast path: during a handover overlap, or while a catch-up holds trades."""
        if self._overlap and self._repeat(kind, t):
            return
        hold = self._holds.get((kind, symbol)) if self._holds else None
        if hold is not None:
            hold.buffer.append((tid, t))
            if hold.task is None and hold.lost_from:  # gave up before any live trade: name the hole, go live
                first = hold.buffer[0][0]
                if first > hold.lost_from:
                    self._lost(hold, hold.lost_from, first - 1)
                self._release(hold)
            return
        last = self._last_ids[kind]
        if tid > last.get(symbol, -1):
            last[symbol] = tid
        self._emit(t)

    def _emit(self, event: MarketEvent) -> None:
        try:
            self.on_event(event)
        except Exception as exc:  # the engine's problem must not kill the feed
            self.stats.callback_errors += 1
            key = f"callback {type(exc).__name__}"
            if key not in self._logged:
                self._logged.add(key)
                log.exception("binance feed: on_event raised; counting and carrying on")

    def _malformed(self, kind: str, exc: BaseException | None) -> None:
        n = self.stats.malformed.get(kind, 0) + 1
        self.stats.malformed[kind] = n
        if n == 1:
            log.warning("binance feed: malformed %s message skipped (%s); further ones are only counted",
                        kind, exc)

    def _on_depth(self, d: BookDelta) -> None:
        symbol = d.instrument_id.partition(".")[0]
        book = self.books.get(symbol)
        if book is None:
            return
        r = book.on_diff(d)
        if r is DiffResult.APPLIED:
            self._emit(d)
        elif r is DiffResult.STALE:
            self.stats.stale += 1
        else:
            if r is DiffResult.GAP:
                self.stats.gaps += 1
                log.warning("binance feed: %s depth gap (U=%d after book id); resyncing", symbol,
                            d.first_update_id)
                book.on_diff(d)  # buffer it: it is newer than anything the book had
            if symbol not in self._snapshot_tasks:
                self._snapshot_tasks[symbol] = asyncio.get_running_loop().create_task(self._resync(symbol))

    def _on_closed_bar(self, interval: str, bar: Bar) -> None:
        symbol = bar.instrument_id.partition(".")[0]
        key = (symbol, interval)
        open_ms = bar.ts_open // wire.MS
        if open_ms <= self._last_bar_open.get(key, -1):
            return  # already emitted (a replay after recovery)
        self._last_bar_open[key] = open_ms
        self._emit(bar)

    # ---------------------------------------------------------------------------------------------
    # Recovery over REST

    async def _resync(self, symbol: str) -> None:
        book = self.books[symbol]
        attempt = 0
        try:
            while book.state is SyncState.BUFFERING:
                attempt += 1
                try:
                    snap = await self.rest.depth(symbol, self.cfg.snapshot_limit, self._wall_ns())
                except OmnidError as exc:
                    delay = self.retry(attempt, exc)
                    log.warning("binance feed: %s depth snapshot failed (%s)", symbol, exc)
                    if delay is None:
                        return
                    await asyncio.sleep(delay)
                    continue
                result, _ = book.on_snapshot(snap)
                if result is SnapshotResult.SYNCED:
                    self.stats.resyncs += 1
                    now = self._wall_ns()
                    self._emit(book.snapshot(self.cfg.book_levels, now, now))
                    return
                await asyncio.sleep(min(0.05 * attempt, 1.0))  # the stream must catch up first
        finally:
            if self._snapshot_tasks.get(symbol) is asyncio.current_task():
                del self._snapshot_tasks[symbol]

    async def _recover_bars(self) -> None:
        """Fetch closed klines that ended while the connection was down, oldest first."""
        for (symbol, interval), last_open in list(self._last_bar_open.items()):
            step = wire.INTERVAL_MS[interval]
            start = last_open + step
            now_ms = self.rest.server_ms()
            while start + step <= now_ms:
                try:
                    bars = await self.rest.klines(symbol, interval, start_ms=start, end_ms=now_ms, limit=1000,
                                                  ts_init=self._wall_ns())
                except OmnidError as exc:
                    log.warning("binance feed: missed %s %s klines not fetched: %s", symbol, interval, exc)
                    break
                closed = [b for b in bars if b.ts_event // wire.MS <= now_ms]
                for bar in closed:
                    before = self._last_bar_open.get((symbol, interval), -1)
                    self._on_closed_bar(interval, bar)
                    if self._last_bar_open[(symbol, interval)] != before:
                        self.stats.recovered_bars += 1
                if len(bars) < 1000 or not closed:
                    break
                start = closed[-1].ts_open // wire.MS + step


    # ---------------------------------------------------------------------------------------------
    # Trades missed while disconnected

    def _hold_trades(self, cause: str) -> None:
        """After an unplanned reconnect or a restart: hold each known symbol's live trades until the
        missed ones are fetched (a catch-up still running from an earlier socket starts over)."""
        for old in self._holds.values():
            if old.task is not None:
                old.task.cancel()
        self._holds.clear()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.trade_gap_timeout_s
        for kind in (_TRADE, _AGG):
            for symbol, last in self._last_ids[kind].items():
                hold = self._holds[(kind, symbol)] = _TradeCatchUp(kind, symbol, deadline, cause)
                if self.cfg.trade_gap_max_pages <= 0:
                    hold.lost_from, hold.why = last + 1, "trade_gap_max_pages = 0 (no fetching)"
                    hold.reason = "cap"
                    continue
                task = hold.task = loop.create_task(self._catch_up(hold))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _catch_up(self, hold: _TradeCatchUp) -> None:
        """Fetch ``hold.symbol``'s trades from the last delivered id on, deliver them, then its live ones."""
        last = self._last_ids[hold.kind]
        cursor = start = last[hold.symbol] + 1
        max_pages = self.cfg.trade_gap_max_pages
        fetched = 0
        why = reason = ""
        try:
            async with asyncio.timeout_at(hold.deadline):
                # Fetch only once subscribed: then every trade after the REST answer is on the socket.
                await self.subscribed.wait()
                while True:
                    live = hold.buffer[0][0] if hold.buffer else None
                    if live is not None and cursor >= live:
                        break  # met the live stream
                    room = (max_pages - hold.pages) * PAGE
                    if live is not None and live - cursor > room:
                        self._lost(hold, cursor, live - room - 1,
                                   f"wider than trade_gap_max_pages = {max_pages}", "cap")
                        cursor = live - room
                    if room <= 0:
                        why = f"trade_gap_max_pages = {max_pages} used up before the live stream was reached"
                        reason = "cap"
                        break
                    page = await self._trade_page(hold, cursor)
                    hold.pages += 1
                    for tid, t in page:  # ascending ids
                        if tid >= cursor:
                            cursor = tid + 1
                            last[hold.symbol] = tid
                            fetched += 1
                            self._emit(t)
                    if len(page) < PAGE:
                        if not hold.buffer or cursor >= hold.buffer[0][0]:
                            break  # at the venue's present (nothing live yet), or met the live stream
                        await asyncio.sleep(0.05)  # the venue's REST view lags its stream a moment
        except TimeoutError:
            why = f"not done within trade_gap_timeout_s = {self.cfg.trade_gap_timeout_s:g}"
            reason = "timeout"
        except OmnidError as exc:
            why = f"{type(exc).__name__}: {exc}"
            reason = ("banned" if isinstance(exc, RateLimitedError)
                      else "bad_answer" if isinstance(exc, DataError) else "rest_failed")
        finally:
            hold.task = None
            self.stats.recovered_trades += fetched
        if self._holds.get((hold.kind, hold.symbol)) is not hold:
            return  # replaced by a newer reconnect's catch-up
        if hold.buffer and hold.buffer[0][0] < start:  # a new subscription never repeats a delivered trade
            log.warning("binance feed: %s %s live id %d is below the last delivered id %d: the venue's ids "
                        "started over (or the saved ids were another venue's); following the live stream",
                        hold.symbol, _KIND_NAMES[hold.kind], hold.buffer[0][0], start - 1)
            last[hold.symbol] = hold.buffer[0][0] - 1
            why = ""
        if why:
            hold.why, hold.reason = why, reason
            if not hold.buffer:  # nothing live yet: the range ends before the next live trade
                hold.lost_from = cursor
                log.warning("binance feed: %s %s trades from id %d on not fetched (%s); the lost range "
                            "ends before the next live trade", hold.symbol, _KIND_NAMES[hold.kind], cursor,
                            why)
                return
            if hold.buffer[0][0] > cursor:
                self._lost(hold, cursor, hold.buffer[0][0] - 1)
        elif fetched and not hold.lost:
            self.stats.trade_gaps_refetched += 1
            log.info("binance feed: %s %d %s trades missed while %s fetched over REST", hold.symbol, fetched,
                     _KIND_NAMES[hold.kind], "omnid was down" if hold.cause == "restart" else "disconnected")
        self._release(hold)

    async def _trade_page(self, hold: _TradeCatchUp, from_id: int) -> list[tuple[int, Trade]]:
        """One page from ``from_id`` on; a transient failure (5xx, timeout, 429/418) is tried again."""
        fetch = self.rest.historical_trades if hold.kind == _TRADE else self.rest.agg_trades
        attempt = 0
        while True:
            attempt += 1
            try:
                return await fetch(hold.symbol, from_id, limit=PAGE, ts_init=self._wall_ns())
            except TransientError as exc:
                delay = exc.retry_after if isinstance(exc, RateLimitedError) else self.retry(attempt, exc)
                left = hold.deadline - asyncio.get_running_loop().time()
                if attempt >= _PAGE_ATTEMPTS or delay is None or delay >= left:
                    raise
                log.warning("binance feed: %s %s page from id %d failed (%s); retrying in %.2fs", hold.symbol,
                            _KIND_NAMES[hold.kind], from_id, exc, delay)
                await asyncio.sleep(delay)

    def _release(self, hold: _TradeCatchUp) -> None:
        """Live again: the held trades go out in order, minus ids already delivered."""
        if self._holds.get((hold.kind, hold.symbol)) is hold:
            del self._holds[(hold.kind, hold.symbol)]
        last = self._last_ids[hold.kind]
        held, hold.buffer = hold.buffer, []
        for tid, t in held:
            if tid > last.get(hold.symbol, -1):
                last[hold.symbol] = tid
                self._emit(t)

    def _lost(self, hold: _TradeCatchUp, first: int, last: int, why: str = "", reason: str = "") -> None:
        """Trades ``first..last`` will never be delivered: say so loudly, once per range."""
        hold.lost += 1
        self.stats.trade_gaps_lost += 1
        kind = _KIND_NAMES[hold.kind]
        ranges = self.stats.lost_trade_ranges
        ranges.append((hold.symbol, kind, first, last))
        del ranges[:-_LOST_KEPT]
        why = why or hold.why
        when = "while omnid was down" if hold.cause == "restart" else "after a reconnect"
        log.warning("binance feed: TRADE GAP %s %s ids %d..%d (%d trades) lost %s: %s",
                    hold.symbol, kind, first, last, last - first + 1, when, why)
        if self.on_trade_gap is not None:
            gap = TradeGap(feed=self.name, symbol=hold.symbol, stream=kind, first_id=first, last_id=last,
                           reason=reason or hold.reason, detail=why, cause=hold.cause)
            try:
                self.on_trade_gap(gap)
            except Exception:  # the alert path's problem must not cost the feed its trades
                log.exception("binance feed: on_trade_gap raised; the gap is still counted and logged")


def _classify(stream: str) -> tuple[int, str]:
    if stream == "!serverShutdown":
        return _SHUTDOWN, ""
    _, _, kind = stream.partition("@")
    if kind == "trade":
        return _TRADE, ""
    if kind == "aggTrade":
        return _AGG, ""
    if kind == "bookTicker":
        return _BT, ""
    if kind.startswith("depth"):
        return _DEPTH, ""
    if kind.startswith("kline_"):
        return _KLINE, kind[6:]
    return _UNKNOWN, ""
