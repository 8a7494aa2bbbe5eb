"""Alerts against a local Telegram-Bot-API-shaped peer and a webhook peer: retries, 429, drops, rules."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from omnid.model import Fill, Side
from omnid.ops.alerts import AlertManager, AlertWatcher
from omnid.ops.config import AlertRules, AlertsConfig, PriceLevel, TelegramConfig, WebhookConfig

from tests.peers.telegram_peer import TelegramPeer, WebhookPeer


@pytest.fixture
async def tg() -> AsyncIterator[TelegramPeer]:
    peer = TelegramPeer()
    await peer.start()
    yield peer
    await peer.close()


@pytest.fixture
async def hook() -> AsyncIterator[WebhookPeer]:
    peer = WebhookPeer()
    await peer.start()
    yield peer
    await peer.close()


def _cfg(tg: TelegramPeer | None = None, hook: WebhookPeer | None = None, **kw: object) -> AlertsConfig:
    telegram = (
        TelegramConfig(enabled=True, bot_token=tg.token, chat_id=tg.chat_id, api_url=tg.url)
        if tg
        else TelegramConfig()
    )
    webhooks = [WebhookConfig(url=hook.url, format="json", name="ops")] if hook else []
    opts: dict[str, object] = {"retry_backoff_s": 0.05, "timeout_s": 2.0}
    opts.update(kw)
    return AlertsConfig(telegram=telegram, webhooks=webhooks, **opts)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def running(mgr: AlertManager) -> AsyncIterator[AlertManager]:
    task = asyncio.create_task(mgr.run())
    try:
        yield mgr
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_telegram_send_message(tg: TelegramPeer) -> None:
    mgr = AlertManager(_cfg(tg), instance="box1")
    async with running(mgr):
        assert mgr.emit("fill", "bought 1 BTC")
        assert await mgr.drain(5)
    assert [m["text"] for m in tg.messages] == ["[box1] bought 1 BTC"]
    assert str(tg.messages[0]["chat_id"]) == "42"
    assert mgr.status().sent == 1 and mgr.status().failed == 0


async def test_telegram_429_retry_after_is_honoured(tg: TelegramPeer) -> None:
    tg.fail_next(429, retry_after=1)
    mgr = AlertManager(_cfg(tg, retry_backoff_s=0.01))
    async with running(mgr):
        mgr.emit("halt", "trading halted")
        assert await mgr.drain(5)
    assert len(tg.requests) == 2
    gap = tg.requests[1][0] - tg.requests[0][0]
    assert gap >= 0.95, f"retried after {gap:.3f}s, not after retry_after=1"
    assert len(tg.messages) == 1 and mgr.sent == 1


async def test_telegram_5xx_retries_then_gives_up(tg: TelegramPeer) -> None:
    tg.fail_next(502, times=10)
    mgr = AlertManager(_cfg(tg, max_retries=2, retry_backoff_s=0.01))
    async with running(mgr):
        mgr.emit("x", "never arrives")
        assert await mgr.drain(5)
    assert len(tg.requests) == 3  # first try + 2 retries
    assert mgr.failed == 1 and mgr.sent == 0


async def test_telegram_wrong_token_is_refused_not_retried(tg: TelegramPeer) -> None:
    cfg = AlertsConfig(
        telegram=TelegramConfig(enabled=True, bot_token="999:wrong-secret-token", chat_id="42", api_url=tg.url),
        retry_backoff_s=0.01,
    )
    mgr = AlertManager(cfg)
    async with running(mgr):
        mgr.emit("x", "hello")
        assert await mgr.drain(5)
    assert len(tg.requests) == 1 and mgr.failed == 1


async def test_webhook_json_and_retry_after_header(hook: WebhookPeer) -> None:
    hook.fail_next(429, retry_after=0.3)
    mgr = AlertManager(_cfg(hook=hook), instance="box1")
    async with running(mgr):
        mgr.emit("fill", "sold", instrument_id="ETHUSDT.SIM", api_key="abc123456")
        assert await mgr.drain(5)
    assert len(hook.payloads) == 1
    p = hook.payloads[0]
    assert p["kind"] == "fill" and p["text"] == "sold" and p["instance"] == "box1"
    assert p["context"]["instrument_id"] == "ETHUSDT.SIM"
    assert p["context"]["api_key"] == "***"


async def test_full_queue_drops_and_counts_without_blocking() -> None:
    mgr = AlertManager(AlertsConfig(queue_size=3, webhooks=[WebhookConfig(url="http://127.0.0.1:9/x")]))
    results = [mgr.emit("x", f"a{i}") for i in range(10)]  # no sender running: nothing drains
    assert results == [True] * 3 + [False] * 7
    st = mgr.status()
    assert st.dropped == 7 and st.queued == 3


async def test_unreachable_channel_never_raises_into_emit() -> None:
    mgr = AlertManager(
        AlertsConfig(webhooks=[WebhookConfig(url="http://127.0.0.1:9/x")], max_retries=1, retry_backoff_s=0.01)
    )
    async with running(mgr):
        assert mgr.emit("x", "to nowhere")
        assert await mgr.drain(5)
    assert mgr.failed == 1


def _fill(price: float = 101.0) -> Fill:
    return Fill(
        fill_id="f1", client_order_id="o1", instrument_id="BTCUSDT.SIM", strategy_id="mom",
        side=Side.BUY, qty=0.5, price=price,
    )


def test_rules_fill_denial_halt_strategy_error_lifecycle() -> None:
    mgr = AlertManager(AlertsConfig(webhooks=[WebhookConfig(url="http://127.0.0.1:9/x")]))
    w = AlertWatcher(mgr, AlertRules(risk_denials=False))
    w.on_fill(_fill())
    w.on_denial("mom", "BTCUSDT.SIM", "max_orders", "too many")
    w.on_halt("daily loss")
    w.on_strategy_error("mom", "ZeroDivisionError")
    w.on_lifecycle("start", "started")
    kinds = [mgr._queue.get_nowait().kind for _ in range(mgr._queue.qsize())]
    assert kinds == ["fill", "halt", "strategy_error", "daemon_start"]


def test_price_level_crossing_fires_once_per_cross() -> None:
    mgr = AlertManager(AlertsConfig(webhooks=[WebhookConfig(url="http://127.0.0.1:9/x")]))
    rules = AlertRules(price_levels=[PriceLevel(instrument_id="BTCUSDT.SIM", level=100.0)])
    w = AlertWatcher(mgr, rules)
    for px in (99.0, 99.5, 100.5, 101.0, 99.9, 99.0):
        w.on_price("BTCUSDT.SIM", px)
    w.on_price("ETHUSDT.SIM", 100.5)
    texts = [mgr._queue.get_nowait().text for _ in range(mgr._queue.qsize())]
    assert texts == ["BTCUSDT.SIM crossed above 100 (now 100.5)", "BTCUSDT.SIM crossed below 100 (now 99.9)"]


def test_feed_silence_and_daily_pnl_fire_once() -> None:
    mgr = AlertManager(AlertsConfig(webhooks=[WebhookConfig(url="http://127.0.0.1:9/x")]))
    w = AlertWatcher(mgr, AlertRules(feed_silent_s=10, daily_pnl_below=-100.0, daily_pnl_above=200.0))
    w.check_feeds({"sim": 2.0})
    w.check_feeds({"sim": 11.0})
    w.check_feeds({"sim": 12.0})
    w.check_feeds({"sim": 0.1})
    w.check_pnl("2026-11-22", -150.0)
    w.check_pnl("2026-11-22", -180.0)
    w.check_pnl("2026-11-22", 250.0)
    w.check_pnl("2026-11-23", -101.0)
    kinds = [mgr._queue.get_nowait().kind for _ in range(mgr._queue.qsize())]
    assert kinds == ["feed_silent", "feed_resumed", "daily_pnl", "daily_pnl", "daily_pnl"]
