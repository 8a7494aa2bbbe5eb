"""Fixtures for storage tests: sample structs and a fresh PostgreSQL schema prefix per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from omnid.model import Bar, Fill, Order, OrderIntent, Side, Trade

PG_DSN = os.environ.get("OMNID_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
GROUPS = ("md", "derived", "strategy", "exec")
T0 = 1_795_000_000_000_000_000  # 2026-11-18T09:46:40Z


def trades(n: int, *, start: int = T0, step: int = 1_000_000, sym: str = "BTCUSDT.SIM") -> list[Trade]:
    return [
        Trade(sym, 100.0 + (i % 50) * 0.01, 1.0 + i % 7, Side.BUY if i % 2 else Side.SELL,
              start + i * step, start + i * step + 5, str(i))
        for i in range(n)
    ]


def sample_records() -> list[object]:
    intent = OrderIntent(strategy_id="s1", instrument_id="BTCUSDT.SIM", side=Side.BUY, qty=1.0,
                         reason="cross", numbers={"ema": 101.5}, ts_event=T0)
    order = Order(client_order_id="s1-1", instrument_id="BTCUSDT.SIM", strategy_id="s1",
                  side=Side.BUY, qty=1.0, ts_created=T0, ts_last=T0)
    fill = Fill(fill_id="f1", client_order_id="s1-1", instrument_id="BTCUSDT.SIM", strategy_id="s1",
                side=Side.BUY, qty=1.0, price=101.0, ts_event=T0 + 2)
    bar = Bar("BTCUSDT.SIM", 60_000_000_000, T0, 1.0, 2.0, 0.5, 1.5, 10.0, T0 + 60_000_000_000, T0)
    return [intent, order, fill, bar]


@pytest.fixture
async def pg_prefix() -> AsyncIterator[str]:
    """A schema prefix unique to this test; its schemas are dropped afterwards."""
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    yield prefix
    conn = await asyncpg.connect(PG_DSN)
    try:
        for g in GROUPS:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{prefix}{g}" CASCADE')
        await conn.execute(f'DROP SCHEMA IF EXISTS "{prefix}meta" CASCADE')
    finally:
        await conn.close()
