"""The Storage facade wired from a real config: recorder → SQLite, journal, restore after restart."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from omnid.config import build_config
from omnid.errors import ConfigError
from omnid.model import Fill, Order, Side
from omnid.storage.service import Storage

from tests.storage.conftest import T0, trades


async def test_record_journal_stop_and_restore(tmp_path: Path) -> None:
    """Rows reach the SQLite file under data_dir; a second Storage restores orders and the id sequence."""
    cfg = build_config({"omnid": {"data_dir": str(tmp_path / "var")}, "storage": {"flush_ms": 10}})
    st = Storage.from_config(cfg)
    await st.start()
    for t in trades(100):
        st.recorder.record(t)
    order = Order(client_order_id="D-s1-7", instrument_id="X.SIM", strategy_id="s1", side=Side.BUY,
                  qty=1.0, ts_created=T0, ts_last=T0)
    st.journal.append(order)
    st.journal.append(Fill(fill_id="f1", client_order_id="D-s1-7", instrument_id="X.SIM",
                           strategy_id="s1", side=Side.BUY, qty=0.5, price=10.0, ts_event=T0))
    st.recorder.record(order)
    await st.stop()
    with sqlite3.connect(tmp_path / "var" / "omnid.sqlite") as c:
        assert c.execute("SELECT count(*) FROM md_trades").fetchone()[0] == 100
        assert c.execute("SELECT count(*) FROM exec_orders").fetchone()[0] == 1
    again = Storage.from_config(cfg)
    state = again.restore()
    assert state.last_seq == 7 and [o.client_order_id for o in state.open_orders] == ["D-s1-7"]
    assert state.orders["D-s1-7"].filled_qty == 0.5
    again.checkpoint(None, state.open_orders, state.last_seq)
    again.journal.close()
    third = Storage.from_config(cfg)
    after = third.restore()
    assert after.last_seq == 7 and list(after.orders) == ["D-s1-7"] and after.fills == []
    third.journal.close()


async def test_equity_curve_from_recorded_account_states(tmp_path: Path) -> None:
    """Account snapshots recorded through the flusher read back as the equity curve, in order."""
    from omnid.model import AccountState
    from omnid.storage.history import HistoryReader

    cfg = build_config({"omnid": {"data_dir": str(tmp_path)}, "storage": {"flush_ms": 10}})
    st = Storage.from_config(cfg)
    await st.start()
    for i, eq in enumerate([1000.0, 1010.0, 990.5]):
        st.recorder.record(AccountState(account_id="paper", currency="USD", cash=500.0, equity=eq,
                                        ts_event=T0 + i))
    await st.stop()
    async with HistoryReader.open(cfg.storage, cfg.data_dir, table="exec.accounts") as h:
        curve = await h.equity_curve("paper", T0, T0 + 10)
    assert curve == [(T0, 1000.0, 500.0), (T0 + 1, 1010.0, 500.0), (T0 + 2, 990.5, 500.0)]


def test_config_names_bad_storage_keys() -> None:
    """Unknown sinks, a postgres route without a DSN and bad numbers are config errors naming the key."""
    with pytest.raises(ConfigError) as err:
        build_config({"storage": {"default_sink": "mongo"}})
    assert "storage.default_sink" in str(err.value)
    with pytest.raises(ConfigError) as err:
        build_config({"storage": {"routes": {"md": "postgres"}}})
    assert "postgres.dsn is empty" in str(err.value)
    with pytest.raises(ConfigError) as err:
        build_config({"storage": {"routes": {"mdd.trades": "sqlite"}}})
    assert "route 'mdd.trades'" in str(err.value)
    with pytest.raises(ConfigError) as err:
        build_config({"storage": {"journal": {"fsync": "sometimes"}}})
    assert "storage.journal.fsync" in str(err.value)
