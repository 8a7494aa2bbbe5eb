"""The QuestDB sink, through the official client, against the local line-protocol peer."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from omnid.errors import StorageError, TransientError
from omnid.storage.catalog import Catalog
from omnid.storage.flusher import Flusher
from omnid.storage.recorder import BatchRecorder
from omnid.storage.sinks.base import Batch
from omnid.storage.sinks.questdb import QuestdbSink, http_address
from omnid.storage.sinks.sqlite import SqliteSink

from tests.peers.questdb_peer import QuestDBPeer, parse_lines
from tests.storage.conftest import sample_records, trades


@pytest.fixture
async def peer() -> AsyncIterator[QuestDBPeer]:
    p = QuestDBPeer()
    await p.start()
    yield p
    await p.stop()


def conf(peer: QuestDBPeer, retry_ms: int = 500) -> str:
    return f"http::addr=127.0.0.1:{peer.port};retry_timeout={retry_ms};"


async def test_rows_arrive_typed_with_dedup_table(peer: QuestDBPeer) -> None:
    """Trades reach md_trades with symbols, doubles, longs and the ns designated timestamp."""
    cat = Catalog()
    spec = cat.table("md.trades")
    sink = QuestdbSink(conf(peer))
    await sink.start([spec])
    batch = trades(300)
    await sink.write(Batch(spec, batch))
    await sink.close()
    rows = sorted(peer.rows("md_trades"), key=lambda r: r["ts"])
    assert len(rows) == 300
    first = rows[1]
    assert first["instrument_id"] == "BTCUSDT.SIM" and first["side"] == "buy"
    assert first["price"] == batch[1].price and first["trade_id"] == "1"
    assert first["ts"] == batch[1].ts_event and first["ts_init"] == batch[1].ts_init
    assert "DEDUP UPSERT KEYS(ts, instrument_id, trade_id)" in peer.ddl[0]


async def test_5xx_is_retried_by_the_client(peer: QuestDBPeer) -> None:
    """Two 5xx answers are retried by the client itself; the rows are stored once."""
    cat = Catalog()
    spec = cat.table("md.trades")
    sink = QuestdbSink(conf(peer, 5000))
    await sink.start([spec])
    peer.fail_next = [500, 503]
    before = peer.requests
    batch = trades(50)
    await sink.write(Batch(spec, batch))
    await sink.close()
    assert peer.requests - before == 3
    assert len(peer.rows("md_trades")) == 50


async def test_replay_is_deduplicated(peer: QuestDBPeer) -> None:
    """The same batch written twice (a spool replay) leaves one row per natural key."""
    cat = Catalog()
    spec = cat.table("md.trades")
    sink = QuestdbSink(conf(peer))
    await sink.start([spec])
    batch = trades(100)
    rows = [spec.row(t) for t in batch]
    await sink.write(Batch(spec, batch))
    await sink.write(Batch(spec, rows, built=True, replay=True))
    await sink.close()
    assert len(peer.rows("md_trades")) == 100


async def test_400_becomes_storage_error_with_server_message(peer: QuestDBPeer) -> None:
    """A cast error (400 + JSON body) is not retried and surfaces QuestDB's message and line."""
    cat = Catalog()
    spec = cat.table("md.trades")
    sink = QuestdbSink(conf(peer))
    await sink.start([spec])
    peer.tables["md_trades"].columns["price"] = "LONG"
    batch = trades(5)
    with pytest.raises(StorageError) as err:
        await sink.write(Batch(spec, batch))
    await sink.close()
    assert not isinstance(err.value, TransientError)
    assert "cast error" in str(err.value) and "line: 1" in str(err.value)


async def test_persistent_5xx_and_refused_are_transient(peer: QuestDBPeer) -> None:
    """5xx past the retry budget, or a refused connection, are TransientError (spool and retry)."""
    cat = Catalog()
    spec = cat.table("md.trades")
    sink = QuestdbSink(conf(peer, 200))
    await sink.start([spec])
    batch = trades(5)
    peer.fail_next = [503] * 1000
    with pytest.raises(TransientError):
        await sink.write(Batch(spec, batch))
    await peer.stop()
    with pytest.raises(TransientError):
        await sink.write(Batch(spec, batch))
    with pytest.raises(TransientError):
        await sink.ping()
    await sink.close()


async def test_routing_and_outage_through_the_flusher(peer: QuestDBPeer, tmp_path: Path) -> None:
    """md.* goes to QuestDB, the rest to SQLite; while QuestDB is down its batches spool, and
    when it returns every trade is there exactly once."""
    cat = Catalog()
    rec = BatchRecorder(cat, flush_rows=500)
    db = tmp_path / "omnid.sqlite"
    fl = Flusher(rec, {"questdb": QuestdbSink(conf(peer, 100)), "sqlite": SqliteSink(db)},
                 default_sink="sqlite", routes={"md": "questdb"}, spool_dir=tmp_path / "spool",
                 catalog=cat, flush_ms=10, retry_s=0.05)
    await fl.start()
    everything = trades(6000)
    for t in everything[:2000]:
        rec.record(t)
    for r in sample_records():
        rec.record(r)  # type: ignore[arg-type]
    await fl.flush()
    port = peer.port
    await peer.stop()
    for t in everything[2000:4000]:
        rec.record(t)
    worker = fl.workers["questdb"]
    for _ in range(300):
        if worker.spooling and worker.spool.size():
            break
        await asyncio.sleep(0.01)
    assert worker.spooling
    peer.port = port
    await peer.start()
    for t in everything[4000:]:
        rec.record(t)
    await fl.flush(timeout_s=30)
    await fl.stop()
    assert len(peer.rows("md_trades")) == 6000
    assert len(peer.rows("md_bars")) == 1
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT count(*) FROM exec_orders").fetchone()[0] == 1
        assert c.execute("SELECT count(*) FROM sqlite_master WHERE name='md_trades'").fetchone()[0] == 0


async def test_peer_rejects_malformed_lines_with_json(peer: QuestDBPeer) -> None:
    """The peer answers a malformed body as QuestDB does: 400, JSON with message, line, errorId."""
    async with aiohttp.ClientSession() as http:
        body = "t,a=1 x=1.5 100\nt,a=2 x=oops 200\n"
        async with http.post(f"http://127.0.0.1:{peer.port}/write?precision=n", data=body) as r:
            assert r.status == 400
            assert r.headers["Content-Type"] == "application/json"
            err = await r.json()
    assert err["line"] == 2 and err["code"] == "invalid" and err["errorId"]
    assert peer.rows("t") == []  # the whole request is one transaction


def test_peer_parser_handles_escapes() -> None:
    """Escaped spaces, commas and equals in names and symbols; quoted strings; i/t suffixes."""
    rows = parse_lines('my\\ table,sym=a\\,b\\=c s="he said \\"hi\\", ok",n=5i,f=1.5,b=t 42\n')
    assert rows == [("my table", {"sym": "a,b=c"},
                     {"s": ("STRING", 'he said "hi", ok'), "n": ("LONG", 5), "f": ("DOUBLE", 1.5),
                      "b": ("BOOLEAN", True)}, 42)]


def test_http_address() -> None:
    assert http_address("http::addr=10.0.0.1:9009;retry_timeout=5;") == "http://10.0.0.1:9009"
    assert http_address("https::addr=q:443;") == "https://q:443"
