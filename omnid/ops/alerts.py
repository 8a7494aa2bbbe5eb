"""Alerts: rules decide, a bounded queue holds, a background task sends (Telegram, webhooks).

The trading path only ever calls :meth:`AlertManager.emit`, which is synchronous, never waits and
never raises: when the queue is full the alert is dropped and counted. One sender task delivers
each alert to every channel with retries (exponential backoff; a peer's ``retry_after`` wins).

Telegram Bot API facts relied on (core.telegram.org/bots/api, "Making requests", "sendMessage"):
- ``POST https://api.telegram.org/bot<token>/sendMessage`` with a JSON body
  ``{"chat_id": ..., "text": ...}``; text is 1-4096 characters.
- The reply is JSON: ``{"ok": true, "result": Message}`` on success, else
  ``{"ok": false, "error_code": N, "description": "..."}`` and optionally
  ``"parameters": {"retry_after": seconds}`` (ResponseParameters) when flood control hits, with
  HTTP status and ``error_code`` 429.
Webhooks: Slack incoming webhooks take ``{"text": ...}``, Discord's ``{"content": ...}``; both
answer 429 with a ``Retry-After`` header when rate limited.

Every alert's fate is recorded (:class:`AlertOutcome`, into ``exec.alerts``) once per channel when
it was delivered, refused or given up after retries, and once when the full queue dropped it: the
store answers "was I told?" without the log files.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any, Protocol

import aiohttp
import msgspec
import structlog

from omnid.errors import RateLimitedError, RejectedError, TransientError
from omnid.model import Fill
from omnid.ops.config import AlertRules, AlertsConfig, TelegramConfig, WebhookConfig
from omnid.ops.logging import redact, register_secret
from omnid.ops.protocol import AlertStatus
from omnid.ports import NullRecorder, Recorder

log = structlog.get_logger("omnid.alerts")

TELEGRAM_MAX_TEXT = 4096

#: Lost trade ranges alerted one by one per feed and window; more in the same window are summed up
#: in one alert when it ends, so a flapping connection cannot flood the channels.
TRADE_GAP_ALERTS_PER_WINDOW = 5
TRADE_GAP_WINDOW_S = 600.0
_TRADE_GAP_REASONS = {
    "cap": "more than trade_gap_max_pages could fetch",
    "timeout": "the fetch ran out of trade_gap_timeout_s",
    "banned": "the venue rate-limited or banned the fetch (429/418)",
    "rest_failed": "the REST fetch kept failing",
    "bad_answer": "the venue's answer did not decode",
}


class LostTrades(Protocol):
    """A trade id range a feed will never deliver (the Binance feed's ``TradeGap``)."""

    @property
    def feed(self) -> str: ...
    @property
    def symbol(self) -> str: ...
    @property
    def stream(self) -> str: ...
    @property
    def first_id(self) -> int: ...
    @property
    def last_id(self) -> int: ...
    @property
    def reason(self) -> str: ...
    @property
    def detail(self) -> str: ...
    @property
    def cause(self) -> str: ...


class _GapWindow:
    """One feed's trade-gap alerts in the current window."""

    __slots__ = ("sent", "start", "suppressed", "symbols", "trades")

    def __init__(self, start: float) -> None:
        self.start = start
        self.sent = 0
        self.suppressed = 0
        self.trades = 0
        self.symbols: set[str] = set()


class Alert(msgspec.Struct, kw_only=True):
    kind: str
    text: str
    context: dict[str, Any] = msgspec.field(default_factory=dict)
    ts_ns: int = 0


class AlertOutcome(msgspec.Struct, kw_only=True, frozen=True):
    """What became of one alert on one channel: ``sent``, ``refused`` (the peer said no; not
    retried), ``gave_up`` (still failing after the retries) or ``dropped`` (the queue was full; no
    channel tried, ``channel`` is empty). ``ts_event`` is when the alert was raised, ``ts_done``
    when its fate was known. ``context`` is redacted as for webhooks."""

    ts_event: int
    kind: str
    text: str
    channel: str
    outcome: str
    attempts: int
    error: str = ""
    context: dict[str, Any] = msgspec.field(default_factory=dict)
    ts_done: int = 0


class Channel(Protocol):
    name: str

    async def send(self, session: aiohttp.ClientSession, alert: Alert) -> None:
        """Deliver or raise TransientError / RateLimitedError / RejectedError."""
        ...


def _retry_after_header(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


class TelegramChannel:
    """``sendMessage`` to one chat."""

    name = "telegram"

    def __init__(self, cfg: TelegramConfig, instance: str) -> None:
        self.url = f"{cfg.api_url.rstrip('/')}/bot{cfg.bot_token}/sendMessage"
        self.chat_id = cfg.chat_id
        self.instance = instance
        register_secret(cfg.bot_token)

    async def send(self, session: aiohttp.ClientSession, alert: Alert) -> None:
        text = f"[{self.instance}] {alert.text}"[:TELEGRAM_MAX_TEXT]
        try:
            async with session.post(self.url, json={"chat_id": self.chat_id, "text": text}) as resp:
                try:
                    body = await resp.json(content_type=None)
                except (ValueError, aiohttp.ContentTypeError):
                    body = None
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientError(f"telegram unreachable: {exc}", channel=self.name) from None
        if isinstance(body, dict) and body.get("ok") is True:
            return
        code = body.get("error_code", status) if isinstance(body, dict) else status
        desc = body.get("description", "") if isinstance(body, dict) else f"HTTP {status}"
        if code == 429 or status == 429:
            params = body.get("parameters") if isinstance(body, dict) else None
            retry = params.get("retry_after") if isinstance(params, dict) else None
            raise RateLimitedError(
                f"telegram rate limited: {desc}",
                retry_after=float(retry) if isinstance(retry, int | float) else None,
                channel=self.name,
            )
        if status >= 500 or (isinstance(code, int) and code >= 500):
            raise TransientError(f"telegram error {code}: {desc}", channel=self.name)
        raise RejectedError(f"telegram refused the message ({code}): {desc}", channel=self.name)


class WebhookChannel:
    """A generic JSON webhook (Slack, Discord, or our own JSON shape)."""

    def __init__(self, cfg: WebhookConfig, instance: str) -> None:
        self.url = cfg.url
        self.format = cfg.format
        self.instance = instance
        self.name = f"webhook:{cfg.name or cfg.format}"

    def payload(self, alert: Alert) -> dict[str, Any]:
        text = f"[{self.instance}] {alert.text}"
        if self.format == "slack":
            return {"text": text}
        if self.format == "discord":
            return {"content": text[:2000]}
        return {
            "instance": self.instance,
            "kind": alert.kind,
            "text": alert.text,
            "context": redact(alert.context),
            "ts_ns": alert.ts_ns,
        }

    async def send(self, session: aiohttp.ClientSession, alert: Alert) -> None:
        try:
            async with session.post(self.url, json=self.payload(alert)) as resp:
                status = resp.status
                retry = _retry_after_header(resp.headers.get("Retry-After"))
                await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientError(f"{self.name} unreachable: {exc}", channel=self.name) from None
        if 200 <= status < 300:
            return
        if status == 429:
            raise RateLimitedError(f"{self.name} rate limited", retry_after=retry, channel=self.name)
        if status >= 500:
            raise TransientError(f"{self.name} answered HTTP {status}", channel=self.name)
        raise RejectedError(f"{self.name} refused the alert: HTTP {status}", channel=self.name)


def build_channels(cfg: AlertsConfig, instance: str) -> list[Channel]:
    channels: list[Channel] = []
    if cfg.telegram.enabled:
        channels.append(TelegramChannel(cfg.telegram, instance))
    channels.extend(WebhookChannel(w, instance) for w in cfg.webhooks)
    return channels


class AlertManager:
    """The bounded queue and the background sender."""

    def __init__(
        self,
        cfg: AlertsConfig,
        *,
        instance: str = "omnid",
        channels: list[Channel] | None = None,
        now_ns: Callable[[], int] = time.time_ns,
        sleep: Callable[[float], Any] = asyncio.sleep,
        recorder: Recorder | None = None,
    ) -> None:
        self.cfg = cfg
        #: Where :class:`AlertOutcome` records go; the trading core sets it once storage exists.
        self.recorder: Recorder = recorder if recorder is not None else NullRecorder()
        self.instance = instance
        self.channels = build_channels(cfg, instance) if channels is None else channels
        self._now_ns = now_ns
        self._sleep = sleep
        self._queue: asyncio.Queue[Alert] = asyncio.Queue(maxsize=cfg.queue_size)
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self.emitted = 0
        self._busy = False

    def reconfigure(self, cfg: AlertsConfig) -> None:
        """Apply reloaded rules and channels (queue size stays; it is fixed at start)."""
        self.cfg = cfg
        self.channels = build_channels(cfg, self.instance)

    def emit(self, kind: str, text: str, **context: Any) -> bool:
        """Queue an alert; never blocks, never raises. False if it was dropped."""
        try:
            alert = Alert(kind=kind, text=text, context=context, ts_ns=self._now_ns())
            log.info("alert", kind=kind, text=text, **context)
            if not self.cfg.enabled or not self.channels:
                return True
            self._queue.put_nowait(alert)
            self.emitted += 1
            return True
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped <= 3 or self.dropped % 100 == 0:
                log.warning("alert dropped: queue full", kind=kind, dropped=self.dropped)
            self._record(alert, "", "dropped", 0, "queue full")
            return False
        except Exception:
            self.dropped += 1
            log.exception("alert could not be queued", kind=kind)
            return False

    def status(self) -> AlertStatus:
        return AlertStatus(
            queued=self._queue.qsize() + (1 if self._busy else 0),
            sent=self.sent,
            failed=self.failed,
            dropped=self.dropped,
            channels=[c.name for c in self.channels],
        )

    async def run(self) -> None:
        """Send queued alerts until cancelled."""
        timeout = aiohttp.ClientTimeout(total=self.cfg.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                alert = await self._queue.get()
                self._busy = True
                try:
                    for ch in list(self.channels):
                        await self._deliver(session, ch, alert)
                except Exception:
                    log.exception("alert sender failed on one alert", kind=alert.kind)
                finally:
                    self._busy = False
                    self._queue.task_done()

    async def _deliver(self, session: aiohttp.ClientSession, ch: Channel, alert: Alert) -> None:
        delay = self.cfg.retry_backoff_s
        error = ""
        for attempt in range(self.cfg.max_retries + 1):
            try:
                await ch.send(session, alert)
            except RateLimitedError as exc:
                wait = exc.retry_after if exc.retry_after is not None else delay
                error = str(exc)
                log.warning("alert rate limited", channel=ch.name, retry_after=wait, attempt=attempt)
            except TransientError as exc:
                wait = delay
                error = str(exc)
                log.warning("alert send failed; will retry", channel=ch.name, error=str(exc), attempt=attempt)
            except RejectedError as exc:
                self.failed += 1
                log.error("alert refused", channel=ch.name, error=str(exc), kind=alert.kind)
                self._record(alert, ch.name, "refused", attempt + 1, str(exc))
                return
            else:
                self.sent += 1
                self._record(alert, ch.name, "sent", attempt + 1, "")
                return
            if attempt < self.cfg.max_retries:
                await self._sleep(wait)
                delay *= 2
        self.failed += 1
        log.error("alert given up after retries", channel=ch.name, kind=alert.kind)
        self._record(alert, ch.name, "gave_up", self.cfg.max_retries + 1, error)

    def _record(self, alert: Alert, channel: str, outcome: str, attempts: int, error: str) -> None:
        """Record one alert's fate; never raises (a record must not cost the alert or the caller)."""
        try:
            self.recorder.record(AlertOutcome(
                ts_event=alert.ts_ns, kind=alert.kind, text=redact(alert.text), channel=channel,
                outcome=outcome, attempts=attempts, error=redact(error), context=redact(alert.context),
                ts_done=self._now_ns()))
        except Exception:
            log.exception("alert outcome could not be recorded", kind=alert.kind)

    async def drain(self, timeout_s: float) -> bool:
        """Wait (bounded) until the queue is empty; True if it emptied."""
        try:
            await asyncio.wait_for(self._queue.join(), timeout_s)
        except TimeoutError:
            return False
        return True


class AlertWatcher:
    """Turns what happens in the daemon into alerts, following ``[alerts.rules]``.

    Called from the trading path (fills, denials, prices), so every method is cheap and never
    raises into its caller.
    """

    def __init__(self, alerts: AlertManager, rules: AlertRules, *,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.alerts = alerts
        self.rules = rules
        self._monotonic = monotonic
        self._gap_windows: dict[str, _GapWindow] = {}
        self._gaps_seen: dict[tuple[str, str, str, int, int], None] = {}  # insertion-ordered, bounded
        self._levels: dict[str, list[float]] = {}
        self._last_px: dict[str, float] = {}
        self._silent: set[str] = set()
        self._pnl_fired: dict[str, str] = {}
        self.set_rules(rules)

    def set_rules(self, rules: AlertRules) -> None:
        self.rules = rules
        levels: dict[str, list[float]] = {}
        for pl in rules.price_levels:
            levels.setdefault(pl.instrument_id, []).append(pl.level)
        self._levels = levels

    def on_fill(self, fill: Fill) -> None:
        if self.rules.fills:
            self.alerts.emit(
                "fill",
                f"fill {fill.side.value} {fill.qty:g} {fill.instrument_id} @ {fill.price:g}"
                f" ({fill.strategy_id})",
                instrument_id=fill.instrument_id,
                strategy_id=fill.strategy_id,
                client_order_id=fill.client_order_id,
                side=fill.side.value,
                qty=fill.qty,
                price=fill.price,
            )

    def on_denial(self, strategy_id: str, instrument_id: str, rule: str, reason: str) -> None:
        if self.rules.risk_denials:
            self.alerts.emit(
                "risk_denial",
                f"risk denied {strategy_id} on {instrument_id}: {rule}: {reason}",
                strategy_id=strategy_id,
                instrument_id=instrument_id,
                rule=rule,
            )

    def on_halt(self, reason: str) -> None:
        if self.rules.halts:
            self.alerts.emit("halt", f"trading halted: {reason}", reason=reason)

    def on_strategy_error(self, strategy_id: str, error: str) -> None:
        if self.rules.strategy_errors:
            self.alerts.emit(
                "strategy_error", f"strategy {strategy_id} failed: {error}", strategy_id=strategy_id
            )

    def on_lifecycle(self, event: str, text: str) -> None:
        if self.rules.daemon_lifecycle:
            self.alerts.emit(f"daemon_{event}", text)

    def on_price(self, instrument_id: str, price: float) -> None:
        levels = self._levels.get(instrument_id)
        if not levels:
            return
        prev = self._last_px.get(instrument_id)
        self._last_px[instrument_id] = price
        if prev is None:
            return
        for level in levels:
            if (prev < level <= price) or (prev > level >= price):
                direction = "above" if price >= level else "below"
                self.alerts.emit(
                    "price",
                    f"{instrument_id} crossed {direction} {level:g} (now {price:g})",
                    instrument_id=instrument_id,
                    level=level,
                    price=price,
                )

    def check_feeds(self, ages: dict[str, float | None]) -> None:
        """``ages``: feed name → seconds since its last message."""
        limit = self.rules.feed_silent_s
        if limit <= 0:
            return
        for name, age in ages.items():
            silent = age is not None and age > limit
            if silent and name not in self._silent:
                self._silent.add(name)
                self.alerts.emit("feed_silent", f"feed {name} silent for {age:.0f}s", feed=name, age_s=age)
            elif not silent and name in self._silent:
                self._silent.discard(name)
                self.alerts.emit("feed_resumed", f"feed {name} is receiving again", feed=name)

    def on_trade_gap(self, gap: LostTrades) -> None:
        """A feed lost a trade range: one alert per range, at most TRADE_GAP_ALERTS_PER_WINDOW per
        feed per window (the rest are summed up by :meth:`check_trade_gaps`); never raises."""
        if not self.rules.trade_gaps:  # still logged by the feed and counted in omnid status
            return
        try:
            key = (gap.feed, gap.symbol, gap.stream, gap.first_id, gap.last_id)
            if key in self._gaps_seen:
                return  # the same range told twice
            self._gaps_seen[key] = None
            if len(self._gaps_seen) > 1000:
                del self._gaps_seen[next(iter(self._gaps_seen))]
            now = self._monotonic()
            w = self._gap_windows.get(gap.feed)
            if w is None or now - w.start >= TRADE_GAP_WINDOW_S:
                if w is not None:
                    self._gap_summary(gap.feed, w)
                w = self._gap_windows[gap.feed] = _GapWindow(now)
            n = gap.last_id - gap.first_id + 1
            if w.sent >= TRADE_GAP_ALERTS_PER_WINDOW:
                w.suppressed += 1
                w.trades += n
                w.symbols.add(gap.symbol)
                return
            w.sent += 1
            when = "while omnid was down" if gap.cause == "restart" else "after a reconnect"
            why = _TRADE_GAP_REASONS.get(gap.reason, gap.reason or "not fetched")
            self.alerts.emit(
                "trade_gap",
                f"TRADE GAP {gap.feed}: {gap.symbol} {gap.stream}s {gap.first_id}-{gap.last_id} "
                f"({n:,} trades) missed {when} and not fetched: {why} ({gap.detail})",
                feed=gap.feed, symbol=gap.symbol, stream=gap.stream, first_id=gap.first_id,
                last_id=gap.last_id, trades=n, reason=gap.reason, cause=gap.cause,
            )
        except Exception:
            log.exception("trade gap alert failed")

    def check_trade_gaps(self) -> None:
        """From the daemon's monitor: close windows that ended, summing up the ranges not alerted."""
        now = self._monotonic()
        for feed, w in list(self._gap_windows.items()):
            if now - w.start >= TRADE_GAP_WINDOW_S:
                del self._gap_windows[feed]
                self._gap_summary(feed, w)

    def _gap_summary(self, feed: str, w: _GapWindow) -> None:
        if not w.suppressed:
            return
        self.alerts.emit(
            "trade_gap",
            f"TRADE GAP {feed}: {w.suppressed} more lost trade range(s) ({w.trades:,} trades; "
            f"{', '.join(sorted(w.symbols))}) within {TRADE_GAP_WINDOW_S:.0f}s, not alerted one by one; "
            "see omnid status and the log",
            feed=feed, ranges=w.suppressed, trades=w.trades, symbols=sorted(w.symbols),
        )

    def check_pnl(self, day: str, pnl: float) -> None:
        """Fire each daily P&L threshold at most once per ``day``."""
        below, above = self.rules.daily_pnl_below, self.rules.daily_pnl_above
        if below is not None and pnl <= below and self._pnl_fired.get("below") != day:
            self._pnl_fired["below"] = day
            self.alerts.emit("daily_pnl", f"daily P&L {pnl:,.2f} at/below {below:,.2f}", pnl=pnl, day=day)
        if above is not None and pnl >= above and self._pnl_fired.get("above") != day:
            self._pnl_fired["above"] = day
            self.alerts.emit("daily_pnl", f"daily P&L {pnl:,.2f} at/above {above:,.2f}", pnl=pnl, day=day)


async def cancel_task(task: asyncio.Task[Any] | None) -> None:
    """Cancel and await a task, swallowing its cancellation."""
    if task is None or task.done():
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
