"""The human tables of `omnid status/positions/orders`: every section present, None shown as '-'."""

from __future__ import annotations

from omnid.commands.daemon import render_orders, render_positions, render_status, table


def test_table_aligns_and_marks_missing() -> None:
    out = table([["a", 1.5, None], ["long-name", 1234567.891, "x"]], ["K", "V", "W"]).splitlines()
    assert out[0].split() == ["K", "V", "W"]
    assert out[1].split() == ["a", "1.5", "-"] and out[2].split() == ["long-name", "1,234,567.89", "x"]
    assert len({line.index(line.split()[1]) for line in out}) == 1  # second column aligned


def test_status_has_every_section() -> None:
    s = {
        "name": "box", "version": "0.1.0", "pid": 42, "uptime_s": 3725.0, "ready": True, "config": "/c.toml",
        "trading": "enabled",
        "feeds": [{"name": "sim", "state": "connected", "rate": 25.0, "last_age_s": 0.1, "messages": 99,
                   "reconnects": 0}],
        "prices": {"BTCUSDT.SIM": 60000.0},
        "strategies": [{"name": "mom", "kind": "momentum", "state": "paused", "reason": "by operator"}],
        "positions": [{"instrument_id": "BTCUSDT.SIM", "qty": 0.5, "avg_price": 59000.0, "last_price": 60000.0,
                       "unrealised_pnl": 500.0, "realised_pnl": 0.0}],
        "pnl": {"daily": 12.5, "equity": 100012.5},
        "risk": {"halted": False, "denials": 3, "halts": {}},
        "storage": {"backlog": 7},
        "alerts": {"queued": 1, "sent": 2, "failed": 0, "dropped": 0, "channels": ["telegram"]},
        "admin": {"socket": "/var/omnid.sock"}, "http": {"port": 8377},
        "loop_lag_ms": {"last": 0.4, "max": 3.2},
    }
    text = render_status(s)
    for needle in ("pid 42", "up 1h 2m 5s", "ready", "trading: enabled", "sim", "connected", "mom", "paused",
                   "BTCUSDT.SIM", "daily 12.5", "denials=3", "backlog=7", "queued 1", "telegram",
                   "port 8377", "3.2 ms max"):
        assert needle in text, needle
    assert "halts" not in text  # nested risk detail stays out of the one-line summary


def test_empty_positions_and_orders() -> None:
    assert render_positions([]).strip() == "(flat)"
    assert render_orders([]).strip() == "(no open orders)"
    o = render_orders([{"client_order_id": "D-x-1", "strategy_id": "x", "instrument_id": "SPY.SIM", "side": "buy",
                        "qty": 1.0, "order_type": "limit", "limit_price": 550.0, "status": "accepted",
                        "filled_qty": 0.0}])
    assert "D-x-1" in o and "accepted" in o and "550" in o


def test_trade_gaps_show_only_once_there_were_any() -> None:
    feed = {"name": "binance", "state": "connected", "rate": 5.0, "last_age_s": 0.2, "messages": 10,
            "reconnects": 2, "trade_gaps_lost": 0, "trade_gaps_refetched": 0, "lost_trade_ranges": []}
    quiet = render_status({"feeds": [feed]})
    assert "TRADE GAPS" not in quiet and "lost" not in quiet
    feed.update(trade_gaps_lost=1, trade_gaps_refetched=3, lost_trade_ranges=["BTCUSDT trades 6-105"])
    text = render_status({"feeds": [feed, {"name": "sim", "state": "connected", "rate": 1.0, "last_age_s": 0.1,
                                           "messages": 4}]})
    header, row, other = text.split("feeds:\n")[1].splitlines()[:3]
    assert header.split()[-1] == "LOST/REFETCHED" and row.split()[-1] == "1/3" and other.split()[-1] == "0/0"
    assert "binance: trades lost (not fetched): BTCUSDT trades 6-105" in text
    assert "stale" not in text
    assert "7 trades arrived older than [admin] stale_trade_s" in render_status({"feeds": [], "stale_trades": 7})


def test_reconcile_at_start_and_holdings_omnid_does_not_manage() -> None:
    s = {"restored": {"venues": {"BINANCE": {"fills_booked": 1, "positions_adjusted": 0,
                                              "unmanaged_holdings": {"BTC": 0.3}}}}}
    line = next(x for x in render_status(s).splitlines() if x.startswith("reconciled with BINANCE"))
    assert "1 fills booked" in line and "0 positions" in line and "not omnid's: BTC 0.3" in line
    assert "reconciled" not in render_status({"restored": {"venues": {}}})
