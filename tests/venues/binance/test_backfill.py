"""Kline backfill from the peer into the SQLite store, paged; and the command's argument checks."""

from __future__ import annotations

from pathlib import Path

import aiohttp
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
