"""The daemon end to end against the Binance peer: ticks in through the daemon's Binance feed, a
strategy's order out through the risk gate to the Binance broker (the daemon routes BINANCE to it
when ``[binance] trading``), partial fills back through ``executionReport``, and all of it
recorded in the store.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from omnid.config import load_config
from omnid.daemon import Daemon
from omnid.model import Side
from omnid.ops.engine_core import EngineCore, engine_core_factory
from omnid.venues.binance.broker import BinanceBroker
from omnid.venues.binance.feed import BinanceFeed

from tests.peers.binance_peer import API_KEY, SECRET, BinancePeer
from tests.venues.binance.conftest import until

ENV = {"BINANCE_API_KEY": API_KEY, "BINANCE_API_SECRET": SECRET}


def write_config(tmp_path: Path, peer: BinancePeer) -> Path:
    config = tmp_path / "omnid.toml"
    config.write_text(f"""
[omnid]
data_dir = "{tmp_path / 'var'}"

[[instruments]]
symbol = "BTCUSDT"
venue = "BINANCE"
quote_currency = "USDT"
base_currency = "BTC"
tick_size = 0.01
lot_size = 0.00001
min_qty = 0.00001
min_notional = 5.0

[sim_market]
enabled = false

[http]
enabled = false

[[strategies]]
name = "mom"
kind = "momentum"
instruments = ["BTCUSDT.BINANCE"]
params = {{ qty = 0.001 }}

[binance]
enabled = true
trading = true
rest_url = "{peer.rest_url}"
ws_url = "{peer.ws_url}"
ws_api_url = "{peer.ws_api_url}"
symbols = ["BTCUSDT"]
streams = ["trade"]
reconnect_initial_s = 0.05
""")
    return config


async def test_ticks_in_order_out_fills_back_all_recorded(
    peer: BinancePeer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in ENV.items():  # the daemon reads the keys from the environment
        monkeypatch.setenv(k, v)
    config = write_config(tmp_path, peer)
    cfg = load_config(config)
    cores: list[EngineCore] = []

    def factory(d: Daemon) -> EngineCore:
        cores.append(engine_core_factory(d))
        return cores[0]

    daemon = Daemon(cfg, config, core_factory=factory)
    run = asyncio.create_task(daemon.run())
    try:
        await until(lambda: daemon.ready, 20)
        feed = next(f for f in daemon.feeds if isinstance(f, BinanceFeed))
        await asyncio.wait_for(feed.subscribed.wait(), 10)
        assert peer.subscribed_accounts() == 1  # the broker's user data stream
        assert isinstance(cores[0].engine.manager.router.client_for("BTCUSDT.BINANCE"), BinanceBroker)

        for i in range(40):  # a steady climb, buyers lifting offers: momentum wants in
            await peer.trade("BTCUSDT", f"{50000 + 2 * i:.2f}", "0.01000", buyer_maker=False)
        await until(lambda: len(peer.orders) == 1, 10)
        (cid, sent), = peer.orders.items()
        assert (sent.side, sent.type, str(sent.qty)) == ("BUY", "MARKET", "0.00100")

        peer.fill(cid, "0.0004", "50080.00")
        peer.fill(cid, "0.0006", "50081.00")
        portfolio = cores[0].engine.portfolio
        await until(lambda: (p := portfolio.position("BTCUSDT.BINANCE")) is not None and p.qty > 0.00099, 10)
        pos = portfolio.position("BTCUSDT.BINANCE")
        assert pos is not None and abs(pos.avg_price - (0.0004 * 50080 + 0.0006 * 50081) / 0.001) < 1e-6
    finally:
        daemon.request_stop("test over")
        code = await asyncio.wait_for(run, 30)
    assert code == 0

    db = sqlite3.connect(tmp_path / "var" / cfg.storage.sqlite.path)
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def rows(word: str) -> list[tuple[Any, ...]]:
        table = next(t for t in tables if word in t)
        return list(db.execute(f'SELECT * FROM "{table}"'))

    fills = rows("fills")
    assert len(fills) == 2 and {f[0] for f in fills} == {cid}
    assert any(cid in r for r in rows("orders"))
    assert len(rows("trades")) >= 40
    assert any(Side.BUY.value in r for r in rows("intents"))
