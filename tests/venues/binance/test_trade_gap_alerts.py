"""A lost trade range is seen outside the log: in the feed's status (``omnid status --json``), as an
alert on a Telegram-Bot-API-shaped peer (at most a few per window, the rest summed up), and in the
store's alert records; through the real daemon, whose data dir also carries the last ids across a
restart."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from omnid.config import load_config
from omnid.daemon import Daemon
from omnid.model import MarketEvent, Trade
from omnid.ops.alerts import TRADE_GAP_ALERTS_PER_WINDOW, TRADE_GAP_WINDOW_S, AlertManager, AlertWatcher
from omnid.ops.config import AlertRules, AlertsConfig, TelegramConfig
from omnid.ops.engine_core import engine_core_factory
from omnid.venues.binance.feed import BinanceFeed, TradeGap
from omnid.venues.binance.lastids import FILE_NAME

from tests.ops.test_alerts import running
from tests.peers.binance_peer import BinancePeer
from tests.peers.telegram_peer import TelegramPeer
from tests.venues.binance.conftest import peer_config, peer_rest, until
from tests.venues.binance.test_feed import Running

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
async def tg() -> AsyncIterator[TelegramPeer]:
    p = TelegramPeer()
    await p.start()
    yield p
    await p.close()


def texts(tg: TelegramPeer) -> list[str]:
    return [str(m["text"]) for m in tg.messages]


async def lose_one(peer: BinancePeer, r: Running, n: int) -> None:
    """A trade, a cut, 3 trades nobody hears, a trade after the reconnect: one lost range."""
    seen = len(r.of(Trade))
    connections = peer.stream_connections
    await peer.trade("BTCUSDT", "1.00", "1")
    await until(lambda: len(r.of(Trade)) == seen + 1)
    await peer.drop_streams()
    peer.add_trades("BTCUSDT", 3)
    await until(lambda: peer.stream_connections == connections + 1 and r.feed.subscribed.is_set()
                and r.feed.stats.connections == connections + 1)
    await peer.trade("BTCUSDT", "1.00", "1")
    await until(lambda: r.feed.stats.trade_gaps_lost == n)


async def test_a_flapping_connection_alerts_a_few_gaps_then_one_summary(
        peer: BinancePeer, session: aiohttp.ClientSession, tg: TelegramPeer) -> None:
    """Twelve cuts, each losing a range (fetching off): five alerts name their range and why, the
    other seven are summed up in one alert when the window ends; status lists the latest ten."""
    clock = [1000.0]
    mgr = AlertManager(AlertsConfig(telegram=TelegramConfig(enabled=True, bot_token=tg.token, chat_id=tg.chat_id,
                                                            api_url=tg.url), retry_backoff_s=0.01),
                       instance="box")
    watcher = AlertWatcher(mgr, AlertRules(), monotonic=lambda: clock[0])
    events: list[MarketEvent] = []
    feed = BinanceFeed(peer_config(peer, streams=["trade"], trade_gap_max_pages=0), events.append,
                       session=session, rest=peer_rest(peer, session), on_trade_gap=watcher.on_trade_gap)
    r = Running(feed, asyncio.create_task(feed.run()), events)
    async with running(mgr):
        try:
            await asyncio.wait_for(feed.subscribed.wait(), 5)
            for n in range(1, 13):
                await lose_one(peer, r, n)
                clock[0] += 1.0
            assert await mgr.drain(5)
            got = texts(tg)
            assert len(got) == TRADE_GAP_ALERTS_PER_WINDOW
            assert got[0] == ("[box] TRADE GAP binance: BTCUSDT trades 2-4 (3 trades) missed after a reconnect and "
                              "not fetched: more than trade_gap_max_pages could fetch "
                              "(trade_gap_max_pages = 0 (no fetching))")
            assert [t.split()[6] for t in got] == ["2-4", "7-9", "12-14", "17-19", "22-24"]
            watcher.check_trade_gaps()  # the window has not ended: nothing more
            clock[0] += TRADE_GAP_WINDOW_S
            watcher.check_trade_gaps()
            watcher.check_trade_gaps()  # summed up once
            assert await mgr.drain(5)
            assert texts(tg)[5:] == ["[box] TRADE GAP binance: 7 more lost trade range(s) (21 trades; BTCUSDT) within "
                                     "600s, not alerted one by one; see omnid status and the log"]
            st = feed.status()
            assert (st.trade_gaps_lost, st.trade_gaps_refetched) == (12, 0)
            assert st.lost_trade_ranges == [f"BTCUSDT trades {5 * k + 2}-{5 * k + 4}" for k in range(2, 12)]
        finally:
            feed.stop()
            await asyncio.wait_for(r.task, 5)


async def test_each_range_is_alerted_once_and_a_new_window_alerts_again(tg: TelegramPeer) -> None:
    clock = [0.0]
    mgr = AlertManager(AlertsConfig(telegram=TelegramConfig(enabled=True, bot_token=tg.token, chat_id=tg.chat_id,
                                                            api_url=tg.url), retry_backoff_s=0.01))
    watcher = AlertWatcher(mgr, AlertRules(), monotonic=lambda: clock[0])

    def gap(first: int, reason: str, cause: str = "reconnect") -> TradeGap:
        return TradeGap(feed="binance", symbol="ETHUSDT", stream="aggTrade", first_id=first, last_id=first + 9,
                        reason=reason, detail="RateLimitedError: 429", cause=cause)

    async with running(mgr):
        watcher.on_trade_gap(gap(1, "banned"))
        watcher.on_trade_gap(gap(1, "banned"))  # the same range again
        for i in range(2, 2 + TRADE_GAP_ALERTS_PER_WINDOW):
            watcher.on_trade_gap(gap(i * 100, "timeout"))  # the last one is over the window's budget
        clock[0] += TRADE_GAP_WINDOW_S
        watcher.on_trade_gap(gap(5000, "rest_failed", "restart"))  # a new window: summary, then this one
        assert await mgr.drain(5)
    got = texts(tg)
    assert len(got) == TRADE_GAP_ALERTS_PER_WINDOW + 2
    assert "ETHUSDT aggTrades 1-10 (10 trades) missed after a reconnect" in got[0]
    assert "rate-limited or banned" in got[0] and "ran out of trade_gap_timeout_s" in got[1]
    assert "1 more lost trade range(s) (10 trades; ETHUSDT)" in got[-2]
    assert "ETHUSDT aggTrades 5000-5009 (10 trades) missed while omnid was down" in got[-1]
    assert "REST fetch kept failing" in got[-1]


def write_config(tmp_path: Path, peer: BinancePeer, tg: TelegramPeer) -> Path:
    config = tmp_path / "omnid.toml"
    config.write_text(f"""
[omnid]
data_dir = "{tmp_path / 'var'}"

[[instruments]]
symbol = "BTCUSDT"
venue = "BINANCE"
tick_size = 0.01
lot_size = 0.00001

[sim_market]
enabled = false

[http]
enabled = false

[alerts]
retry_backoff_s = 0.05

[alerts.telegram]
enabled = true
bot_token = "{tg.token}"
chat_id = "{tg.chat_id}"
api_url = "{tg.url}"

[binance]
enabled = true
rest_url = "{peer.rest_url}"
ws_url = "{peer.ws_url}"
ws_api_url = "{peer.ws_api_url}"
symbols = ["BTCUSDT"]
streams = ["trade"]
reconnect_initial_s = 0.05
reconnect_max_s = 0.2
trade_gap_max_pages = 0
""")
    return config


async def run_daemon(config: Path) -> tuple[Daemon, asyncio.Task[int], BinanceFeed]:
    daemon = Daemon(load_config(config), config, core_factory=engine_core_factory)
    task = asyncio.create_task(daemon.run())
    await until(lambda: daemon.ready, 20)
    feed = next(f for f in daemon.feeds if isinstance(f, BinanceFeed))
    await asyncio.wait_for(feed.subscribed.wait(), 10)
    return daemon, task, feed


async def test_daemon_status_alert_record_and_restart_recovery(
        peer: BinancePeer, tg: TelegramPeer, tmp_path: Path) -> None:
    """Through the real daemon: a lost range is in ``omnid status --json``, reaches Telegram and the
    store's alert records; after a stop, trades made while it was down are fetched by the next run
    (trade_gap_max_pages = 0 would only report them: the second run allows pages)."""
    config = write_config(tmp_path, peer, tg)
    daemon, task, feed = await run_daemon(config)
    try:
        for _ in range(5):
            await peer.trade("BTCUSDT", "50000.00", "0.01000")
        await until(lambda: feed.stats.messages >= 5)
        await peer.drop_streams()
        peer.add_trades("BTCUSDT", 100)  # ids 6 .. 105
        await until(lambda: feed.stats.connections == 2 and feed.subscribed.is_set())
        await peer.trade("BTCUSDT", "50001.00", "0.01000")  # 106
        await until(lambda: feed.stats.trade_gaps_lost == 1)
        await until(lambda: any("TRADE GAP" in t for t in texts(tg)), 10)
        alert = next(t for t in texts(tg) if "TRADE GAP" in t)
        assert "binance: BTCUSDT trades 6-105 (100 trades) missed after a reconnect" in alert
        await until(lambda: daemon.alerts.sent >= 2, 10)  # start + gap: their fates are recorded
        cli = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "omnid.cli", "status", "--json", "--config", str(config)],
            capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert cli.returncode == 0, cli.stderr
        (st,) = json.loads(cli.stdout)["feeds"]
        assert (st["name"], st["trade_gaps_lost"], st["trade_gaps_refetched"]) == ("binance", 1, 0)
        assert st["lost_trade_ranges"] == ["BTCUSDT trades 6-105"]
    finally:
        daemon.request_stop("test over")
        assert await asyncio.wait_for(task, 30) == 0
    assert json.loads((tmp_path / "var" / FILE_NAME).read_text())["trade"] == {"BTCUSDT": 106}
    with sqlite3.connect(tmp_path / "var" / "omnid.sqlite") as db:
        rows = db.execute("SELECT kind, outcome, text FROM exec_alerts").fetchall()
    assert any(k == "trade_gap" and o == "sent" and "BTCUSDT trades 6-105" in t for k, o, t in rows), rows

    peer.add_trades("BTCUSDT", 30)  # while the daemon is down: 107 .. 136
    config.write_text(config.read_text().replace("trade_gap_max_pages = 0", "trade_gap_max_pages = 2"))
    daemon, task, feed = await run_daemon(config)
    try:
        await until(lambda: feed.stats.trade_gaps_refetched == 1, 10)
        assert feed.stats.recovered_trades == 30 and feed.stats.trade_gaps_lost == 0
        assert [p["fromId"] for _, n, p in peer.requests if n == "historicalTrades"] == ["107"]
    finally:
        daemon.request_stop("test over")
        assert await asyncio.wait_for(task, 30) == 0


async def test_the_trade_gaps_rule_turns_the_alerts_off(tg: TelegramPeer) -> None:
    mgr = AlertManager(AlertsConfig(telegram=TelegramConfig(enabled=True, bot_token=tg.token, chat_id=tg.chat_id,
                                                            api_url=tg.url), retry_backoff_s=0.01))
    off = AlertWatcher(mgr, AlertRules(trade_gaps=False))
    on = AlertWatcher(mgr, AlertRules())
    gap = TradeGap(feed="binance", symbol="BTCUSDT", stream="trade", first_id=1, last_id=5, reason="cap",
                   detail="", cause="reconnect")
    async with running(mgr):
        off.on_trade_gap(gap)
        assert await mgr.drain(5)
        assert texts(tg) == []
        on.on_trade_gap(gap)
        assert await mgr.drain(5)
    assert len(texts(tg)) == 1 and "BTCUSDT trades 1-5" in texts(tg)[0]
