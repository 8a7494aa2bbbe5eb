"""Trades missed while omnid was down, against the local peer: the feed is stopped (or dies), trades
happen, a new feed on the same last-trade-id file fetches them before the live ones; a missing,
corrupt, foreign or too-old file gives a log line and a normal start."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import msgspec
import pytest
from omnid.model import MarketEvent, Trade
from omnid.venues.binance import feed as feed_module
from omnid.venues.binance import lastids
from omnid.venues.binance.config import BinanceConfig
from omnid.venues.binance.feed import BinanceFeed, TradeGap

from tests.peers.binance_peer import BinancePeer
from tests.venues.binance.conftest import peer_config, peer_rest, until
from tests.venues.binance.test_feed import Running


async def start(peer: BinancePeer, session: aiohttp.ClientSession, path: Path, *,
                wall_ns: Callable[[], int] = time.time_ns, gaps: list[TradeGap] | None = None,
                **kw: object) -> Running:
    events: list[MarketEvent] = []
    feed = BinanceFeed(peer_config(peer, streams=["trade"], **kw), events.append, session=session,
                       rest=peer_rest(peer, session), last_ids=path, wall_ns=wall_ns,
                       on_trade_gap=None if gaps is None else gaps.append)
    task = asyncio.create_task(feed.run())
    await asyncio.wait_for(feed.subscribed.wait(), 5)
    return Running(feed, task, events)


async def stop(r: Running) -> None:
    r.feed.stop()
    await asyncio.wait_for(r.task, 5)


def ids(r: Running) -> list[int]:
    return [int(t.trade_id) for t in r.of(Trade)]


def pages(peer: BinancePeer) -> list[str]:
    return [p["fromId"] for _, n, p in peer.requests if n == "historicalTrades"]


async def first_run(peer: BinancePeer, session: aiohttp.ClientSession, path: Path, n: int = 5) -> None:
    """A run that sees ``n`` live trades and stops cleanly."""
    r = await start(peer, session, path)
    for _ in range(n):
        await peer.trade("BTCUSDT", "50000.00", "0.01000")
    await until(lambda: len(r.of(Trade)) == n)
    await stop(r)


async def test_trades_missed_while_down_are_fetched_on_start(peer: BinancePeer, session: aiohttp.ClientSession,
                                                             tmp_path: Path) -> None:
    path = tmp_path / lastids.FILE_NAME
    await first_run(peer, session, path)
    saved = json.loads(path.read_text())
    assert saved["trade"] == {"BTCUSDT": 5} and saved["source"] == peer.rest_url
    assert abs(saved["saved_ns"] - time.time_ns()) < 5e9  # live at the stop: the ids were the newest
    peer.add_trades("BTCUSDT", 1500)  # while omnid is down: ids 6 .. 1505, two pages
    r = await start(peer, session, path)
    try:
        await until(lambda: r.feed.stats.trade_gaps_refetched == 1)
        await peer.trade("BTCUSDT", "1.00", "1")
        await until(lambda: len(r.of(Trade)) == 1501)
        assert ids(r) == list(range(6, 1507))
        assert pages(peer) == ["6", "1006"]
        st = r.feed.status()
        assert (st.trade_gaps_lost, st.trade_gaps_refetched, st.lost_trade_ranges) == (0, 1, [])
    finally:
        await stop(r)
    assert json.loads(path.read_text())["trade"] == {"BTCUSDT": 1506}


async def test_a_gap_too_wide_to_fetch_on_start_is_lost_and_told(peer: BinancePeer,
                                                                 session: aiohttp.ClientSession,
                                                                 tmp_path: Path) -> None:
    """The same bounds and accounting as a reconnect: one page allowed, the rest is a lost range
    whose cause is the restart."""
    path = tmp_path / lastids.FILE_NAME
    await first_run(peer, session, path)
    peer.add_trades("BTCUSDT", 2500)  # ids 6 .. 2505
    gaps: list[TradeGap] = []
    r = await start(peer, session, path, gaps=gaps, trade_gap_max_pages=1)
    try:
        await until(lambda: r.feed.stats.recovered_trades == 1000)
        await peer.trade("BTCUSDT", "1.00", "1")  # 2506: names the end of the lost range
        await until(lambda: len(r.of(Trade)) == 1001)
        assert ids(r)[-1] == 2506
        assert gaps == [TradeGap(feed="binance", symbol="BTCUSDT", stream="trade", first_id=1006, last_id=2505,
                                 reason="cap", cause="restart", detail=gaps[0].detail)]
        assert "trade_gap_max_pages = 1" in gaps[0].detail
        assert r.feed.status().lost_trade_ranges == ["BTCUSDT trades 1006-2505"]
    finally:
        await stop(r)


async def test_ids_older_than_recover_max_age_are_not_fetched(peer: BinancePeer, session: aiohttp.ClientSession,
                                                              tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / lastids.FILE_NAME
    await first_run(peer, session, path)
    peer.add_trades("BTCUSDT", 50)
    later = lambda: time.time_ns() + 121 * 10**9  # noqa: E731 - the wall two minutes on
    with caplog.at_level(logging.INFO, "omnid.venues.binance"):
        r = await start(peer, session, path, wall_ns=later, recover_max_age_s=120.0)
    try:
        await peer.trade("BTCUSDT", "1.00", "1")
        await until(lambda: len(r.of(Trade)) == 1)
        assert ids(r) == [56] and pages(peer) == []
        assert r.feed.stats.trade_gaps_lost == 0  # skipped on purpose: logged, not a gap
        assert any("more than recover_max_age_s = 120" in m and "not fetching" in m for m in caplog.messages)
    finally:
        await stop(r)


async def test_recovery_can_be_turned_off(peer: BinancePeer, session: aiohttp.ClientSession, tmp_path: Path) -> None:
    path = tmp_path / lastids.FILE_NAME
    await first_run(peer, session, path)
    peer.add_trades("BTCUSDT", 10)
    r = await start(peer, session, path, recover_on_start=False)
    try:
        await peer.trade("BTCUSDT", "1.00", "1")
        await until(lambda: len(r.of(Trade)) == 1)
        assert ids(r) == [16] and pages(peer) == []
    finally:
        await stop(r)


@pytest.mark.parametrize(("content", "said"), [
    (None, "no last-trade-id file"),
    (b"{not json", "is corrupt"),
    (b'{"v": 1, "source": "x", "saved_ns": 1, "trade": {"BTCUSDT": "five"}}', "is corrupt"),
    (b'{"v": 1, "source": "x", "saved_ns": 1, "trade": {"BTCUSDT": -3}}', "is corrupt"),
    (b'{"v": 99, "source": "x", "saved_ns": 1}', "version 99"),
    (b"[]", "is corrupt"),
])
async def test_a_missing_or_corrupt_file_gives_a_log_line_and_a_normal_start(
        peer: BinancePeer, session: aiohttp.ClientSession, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        content: bytes | None, said: str) -> None:
    path = tmp_path / lastids.FILE_NAME
    if content is not None:
        path.write_bytes(content)
    peer.add_trades("BTCUSDT", 10)
    with caplog.at_level(logging.INFO, "omnid.venues.binance"):
        r = await start(peer, session, path)
    try:
        await peer.trade("BTCUSDT", "1.00", "1")
        await until(lambda: len(r.of(Trade)) == 1)
        assert ids(r) == [11] and pages(peer) == [] and r.feed.state == "connected"
        assert any(said in m and str(path) in m for m in caplog.messages), caplog.messages
    finally:
        await stop(r)
    assert json.loads(path.read_text())["trade"] == {"BTCUSDT": 11}  # replaced by a good one


async def test_ids_of_another_venue_are_ignored(peer: BinancePeer, session: aiohttp.ClientSession, tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """A data dir moved from spot to testnet (another REST URL): its ids mean nothing here."""
    path = tmp_path / lastids.FILE_NAME
    other = lastids.LastIds(v=1, source="https://api.binance.com", saved_ns=time.time_ns(), trade={"BTCUSDT": 3})
    path.write_bytes(msgspec.json.encode(other))
    peer.add_trades("BTCUSDT", 10)
    with caplog.at_level(logging.INFO, "omnid.venues.binance"):
        r = await start(peer, session, path)
    try:
        await peer.trade("BTCUSDT", "1.00", "1")
        await until(lambda: len(r.of(Trade)) == 1)
        assert pages(peer) == [] and any("is for https://api.binance.com" in m for m in caplog.messages)
    finally:
        await stop(r)


async def test_saved_ids_ahead_of_the_venue_do_not_hold_back_live_trades(
        peer: BinancePeer, session: aiohttp.ClientSession, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The venue's ids are below the saved ones (a reset test network): live trades are delivered."""
    path = tmp_path / lastids.FILE_NAME
    ahead = lastids.LastIds(v=1, source=peer.rest_url, saved_ns=time.time_ns(), trade={"BTCUSDT": 10_000})
    path.write_bytes(msgspec.json.encode(ahead))
    peer.subscribe_reply_delay = 0.3  # live trades are held before the catch-up asks
    with caplog.at_level(logging.WARNING, "omnid.venues.binance"):
        r = await start(peer, session, path)
        try:
            for _ in range(3):
                await peer.trade("BTCUSDT", "1.00", "1")
            await until(lambda: len(r.of(Trade)) == 3)
            assert ids(r) == [1, 2, 3] and r.feed.stats.trade_gaps_lost == 0
            assert any("below the last delivered id 10000" in m for m in caplog.messages)
        finally:
            await stop(r)


async def test_ids_are_saved_periodically_so_a_crash_loses_little(
        peer: BinancePeer, session: aiohttp.ClientSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No clean stop (the task is cancelled as a crash would end it): the periodic save is what the
    next start recovers from."""
    monkeypatch.setattr(feed_module, "_SAVE_EVERY_S", 0.05)
    path = tmp_path / lastids.FILE_NAME
    r = await start(peer, session, path)
    for _ in range(4):
        await peer.trade("BTCUSDT", "1.00", "1")
    await until(lambda: path.exists() and json.loads(path.read_text())["trade"] == {"BTCUSDT": 4})
    r.task.cancel()  # no stop(): nothing is written at the end
    with pytest.raises(asyncio.CancelledError):
        await r.task
    for t in list(r.feed._tasks):
        t.cancel()
    peer.add_trades("BTCUSDT", 20)
    r2 = await start(peer, session, path)
    try:
        await until(lambda: r2.feed.stats.trade_gaps_refetched == 1)
        assert ids(r2) == list(range(5, 25)) and pages(peer) == ["5"]
    finally:
        await stop(r2)


async def test_stopped_while_disconnected_keeps_exact_ids_and_the_time_it_was_live(
        peer: BinancePeer, session: aiohttp.ClientSession, tmp_path: Path) -> None:
    """Stopped during a reconnect: the ids written are the last delivered (nothing is fetched twice
    next time) and saved_ns stays when the feed was last live (its age is not understated)."""
    path = tmp_path / lastids.FILE_NAME
    wall = [time.time_ns()]
    r = await start(peer, session, path, wall_ns=lambda: wall[0], reconnect_initial_s=30.0, reconnect_max_s=30.0)
    for _ in range(3):
        await peer.trade("BTCUSDT", "1.00", "1")
    await until(lambda: len(r.of(Trade)) == 3)
    r.feed._save_last_ids(r.feed._is_live(), in_thread=False)  # what the periodic save does
    live_at = wall[0]
    await peer.drop_streams()
    await until(lambda: r.feed.state == "reconnecting")
    wall[0] += 50 * 10**9
    await stop(r)
    saved = json.loads(path.read_text())
    assert saved["trade"] == {"BTCUSDT": 3} and saved["saved_ns"] == live_at


async def test_a_feed_that_gives_up_saves_its_ids(peer: BinancePeer, session: aiohttp.ClientSession,
                                                  tmp_path: Path) -> None:
    """The retry policy gives up (the venue is gone): the ids are written before run() raises, and
    the periodic saver ends with it."""
    path = tmp_path / lastids.FILE_NAME
    r = await start(peer, session, path, reconnect_max_attempts=1)
    for _ in range(2):
        await peer.trade("BTCUSDT", "1.00", "1")
    await until(lambda: len(r.of(Trade)) == 2)
    assert not path.exists()  # no periodic save yet
    await peer.stop()
    with pytest.raises(Exception):  # noqa: B017 - whichever connection error the policy gave up on
        await asyncio.wait_for(r.task, 5)
    assert r.feed.state == "failed" and json.loads(path.read_text())["trade"] == {"BTCUSDT": 2}
    await until(lambda: not r.feed._tasks)


async def test_a_file_that_cannot_be_written_is_logged_and_the_feed_goes_on(
        peer: BinancePeer, session: aiohttp.ClientSession, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    path = blocker / lastids.FILE_NAME  # its parent is a file
    with caplog.at_level(logging.INFO, "omnid.venues.binance"):
        r = await start(peer, session, path)
        await peer.trade("BTCUSDT", "1.00", "1")
        await until(lambda: len(r.of(Trade)) == 1)
        await stop(r)
    assert r.feed.last_ids_file is not None and r.feed.last_ids_file.errors == 1
    assert any("cannot write the last-trade-id file" in m for m in caplog.messages)
    assert any("cannot read the last-trade-id file" in m for m in caplog.messages)


def test_recover_max_age_is_checked() -> None:
    assert BinanceConfig().recover_on_start is True and BinanceConfig().recover_max_age_s == 900.0
    with pytest.raises(ValueError, match="recover_max_age_s"):
        BinanceConfig(recover_max_age_s=0)


def test_an_older_snapshot_never_replaces_a_newer_one(tmp_path: Path) -> None:
    """The periodic write runs in a thread; the stop's write may overtake it."""
    f = lastids.LastIdsFile(tmp_path / "ids.json", "src")
    old = f.snapshot({"BTCUSDT": 1}, {}, 10)
    new = f.snapshot({"BTCUSDT": 2}, {}, 20)
    assert f.write(*new) and not f.write(*old)
    got = lastids.load(tmp_path / "ids.json", source="src", now_ns=20, max_age_s=1.0)
    assert got is not None and got.trade == {"BTCUSDT": 2}
