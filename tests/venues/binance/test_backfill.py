"""Kline backfill from the peer into the SQLite store, paged; and the command's argument checks."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from omnid.cli import app
from omnid.commands.binance import parse_when
from omnid.model import Bar
from omnid.storage.config import SqliteConfig, StorageConfig
from omnid.storage.history import HistoryReader
from omnid.venues.binance.backfill import backfill
from typer.testing import CliRunner

from tests.peers.binance_peer import BinancePeer
from tests.venues.binance.conftest import peer_config


async def test_backfill_pages_into_sqlite_once(
    peer: BinancePeer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    now = peer.now_ms()
    start = (now // 60_000 - 2500) * 60_000
    peer.add_klines("BTCUSDT", start, 2501)  # the newest is still open: not stored
    storage = StorageConfig(sqlite=SqliteConfig(path=str(tmp_path / "omnid.sqlite")))
    cfg = peer_config(peer)
    r = await backfill(cfg, "btcusdt", "1m", start, now, storage=storage, data_dir=tmp_path, session=session)
    assert (r.bars, r.pages, r.sink) == (2500, 3, "sqlite")
    assert [p[2]["startTime"] for p in peer.requests if p[1] == "klines"] == [
        str(start), str(start + 1000 * 60_000), str(start + 2000 * 60_000)]
    again = await backfill(cfg, "BTCUSDT", "1m", start, now, storage=storage, data_dir=tmp_path, session=session)
    assert again.bars == 2500
    async with HistoryReader.open(storage, tmp_path) as h:
        bars = await h.stored_bars("BTCUSDT.BINANCE", 60 * 10**9, 0, 2**62)
    assert len(bars) == 2500 and bars[0].ts_open == start * 1_000_000
    assert (bars[5].open, bars[5].close, bars[5].volume) == (105.0, 106.0, 10.0)


async def test_backfill_to_a_callback(peer: BinancePeer, session: aiohttp.ClientSession) -> None:
    peer.add_klines("ETHUSDT", 0, 10)
    got: list[Bar] = []
    r = await backfill(peer_config(peer), "ETHUSDT", "1m", 0, 5 * 60_000, write=got.extend, session=session)
    assert r.bars == 6 and [b.ts_open for b in got] == [i * 60 * 10**9 for i in range(6)]


def test_when_parsing() -> None:
    assert parse_when("2026-11-01", option="--from") == 1_793_491_200_000
    assert parse_when("2026-11-01T00:01", option="--from") == 1_793_491_260_000
    assert parse_when("1700000000000", option="--from") == 1_700_000_000_000


def test_command_rejects_bad_ranges() -> None:
    r = CliRunner().invoke(app, ["binance", "backfill", "BTCUSDT", "--from", "2026-11-02", "--to", "2026-11-01"])
    assert r.exit_code == 2 and "before" in r.output
    r = CliRunner().invoke(app, ["binance", "backfill", "BTCUSDT", "--from", "yesterday", "--to", "2026-11-01"])
    assert r.exit_code == 2


@pytest.fixture
def threaded_peer() -> Iterator[BinancePeer]:
    """The peer on its own loop in a thread, for commands that run their own event loop."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    peer = BinancePeer()
    asyncio.run_coroutine_threadsafe(peer.start(), loop).result(5)
    yield peer
    asyncio.run_coroutine_threadsafe(peer.stop(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def test_data_backfill_binance_command(threaded_peer: BinancePeer, tmp_path: Path) -> None:
    peer = threaded_peer
    peer.add_klines("BTCUSDT", 1_700_000_000_000, 1500)
    config = tmp_path / "omnid.toml"
    config.write_text(f"""
[omnid]
data_dir = "{tmp_path / 'var'}"

[binance]
rest_url = "{peer.rest_url}"
""")
    args = ["data", "backfill", "binance", "BTCUSDT", "--interval", "1m", "--from", "1700000000000",
            "--to", "2023-11-16", "--config", str(config)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "BTCUSDT 1m: 1500 bars in 2 page(s) → sqlite" in r.output
    db = sqlite3.connect(tmp_path / "var" / "omnid.sqlite")
    table = next(n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'") if "bars" in n)
    assert db.execute(f'SELECT count(*) FROM "{table}"').fetchone() == (1500,)
