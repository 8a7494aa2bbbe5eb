"""Import, candles, bars from trades and export, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omnid.datafiles import load_bars, write_table
from omnid.errors import DataError
from omnid.storage.config import PostgresConfig, StorageConfig
from omnid.storage.history import (
    HistoryReader,
    bars_from_arrays,
    build_bars,
    import_file,
    parse_interval,
    resample_bars,
)

from tests.storage.conftest import PG_DSN

MIN = 60_000_000_000
T0 = 1_795_000_020 * 1_000_000_000 // (10 * MIN) * (10 * MIN)  # a 10-minute boundary


def _ticks(path: Path, n: int = 600) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ts = T0 + np.arange(n, dtype=np.int64) * 1_000_000_000  # one a second: 10 minutes
    price = 100 + np.sin(np.arange(n) / 7.0)
    qty = 1 + (np.arange(n) % 3).astype(np.float64)
    write_table(path, {"ts": ts, "price": price, "qty": qty, "side": ["buy", "sell"] * (n // 2),
                       "symbol": ["BTCUSDT"] * n})
    return ts, price, qty


def test_parse_interval() -> None:
    assert parse_interval("1m") == MIN and parse_interval("1d") == 1440 * MIN
    with pytest.raises(DataError):
        parse_interval("5 fortnights")


def test_bars_from_arrays_match_a_loop() -> None:
    """Vectorised OHLCV equals the obvious per-bucket computation, and resampling agrees."""
    rng = np.random.default_rng(3)
    ts = np.sort(T0 + rng.integers(0, 30 * MIN, 2000)).astype(np.int64)
    price = 100 + rng.normal(size=2000).cumsum()
    size = rng.random(2000)
    bars = bars_from_arrays("X.SIM", MIN, ts, price, size)
    for b in bars:
        m = (ts >= b.ts_open) & (ts < b.ts_open + MIN)
        assert (b.open, b.close) == (price[m][0], price[m][-1])
        assert (b.high, b.low) == (price[m].max(), price[m].min())
        assert b.volume == pytest.approx(size[m].sum())
    five = resample_bars(bars, 5 * MIN)
    direct = bars_from_arrays("X.SIM", 5 * MIN, ts, price, size)
    assert [(b.ts_open, b.open, b.high, b.low, b.close) for b in five] == [
        (b.ts_open, b.open, b.high, b.low, b.close) for b in direct]


async def _exercise(cfg: StorageConfig, tmp_path: Path) -> None:
    ticks = tmp_path / "ticks.csv"
    _ts, price, qty = _ticks(ticks)
    res = await import_file(ticks, cfg, tmp_path, venue="SIM")
    again = await import_file(ticks, cfg, tmp_path, venue="SIM")
    assert res.rows == again.rows == 600 and res.table == "md.trades"
    async with HistoryReader.open(cfg, tmp_path) as h:
        trades = await h.trades("BTCUSDT.SIM", T0, T0 + 3600 * 10**9)
        assert len(trades) == 600  # the second import stored nothing new
        candles = await h.candles("BTCUSDT.SIM", MIN, T0, T0 + 10 * MIN)
    assert len(candles) == 10
    assert candles[0].open == price[0] and candles[0].close == price[59]
    assert candles[0].volume == pytest.approx(qty[:60].sum())

    # Bars built from trades are stored in derived.bars and then answer the query.
    assert await build_bars(cfg, tmp_path, "BTCUSDT.SIM", 5 * MIN, T0, T0 + 10 * MIN) == 2
    async with HistoryReader.open(cfg, tmp_path) as h:
        from omnid.storage.catalog import DERIVED_BARS
        stored = await h.stored_bars("BTCUSDT.SIM", 5 * MIN, T0, T0 + 10 * MIN, spec=DERIVED_BARS)
        assert [b.high for b in stored] == [price[:300].max(), price[300:].max()]

    # A bar file: the interval is inferred; rolled up to 2m from the stored 1m bars.
    bars_csv = tmp_path / "bars.csv"
    write_table(bars_csv, {"ts": T0 + np.arange(4, dtype=np.int64) * MIN, "open": [1.0, 2, 3, 4],
                           "high": [2.0, 3, 4, 5], "low": [0.5, 1, 2, 3], "close": [2.0, 3, 4, 5],
                           "volume": [10.0, 10, 10, 10]})
    r = await import_file(bars_csv, cfg, tmp_path, venue="SIM", symbol="ETHUSDT")
    assert (r.rows, r.interval_ns, r.symbols) == (4, MIN, ["ETHUSDT.SIM"])
    async with HistoryReader.open(cfg, tmp_path) as h:
        two = await h.candles("ETHUSDT.SIM", 2 * MIN, T0, T0 + 4 * MIN)
        one = await h.candles("ETHUSDT.SIM", MIN, T0, T0 + 4 * MIN)
    assert [(b.open, b.high, b.low, b.close, b.volume) for b in two] == [(1, 3, 0.5, 3, 20), (3, 5, 2, 5, 20)]
    out = tmp_path / "out.parquet"
    write_table(out, {"ts": [b.ts_open for b in one], "open": [b.open for b in one],
                      "high": [b.high for b in one], "low": [b.low for b in one],
                      "close": [b.close for b in one], "volume": [b.volume for b in one]})
    assert load_bars(out).close.tolist() == [2.0, 3.0, 4.0, 5.0]


async def test_history_on_sqlite(tmp_path: Path) -> None:
    """Import (twice, idempotent), candles from trades, derived bars, bar import and roll-up."""
    await _exercise(StorageConfig(), tmp_path)


@pytest.mark.postgres
async def test_history_on_postgres(tmp_path: Path, pg_prefix: str) -> None:
    """The same on PostgreSQL (fresh schemas)."""
    cfg = StorageConfig(default_sink="postgres", postgres=PostgresConfig(dsn=PG_DSN, schema_prefix=pg_prefix))
    await _exercise(cfg, tmp_path)


def test_trade_ids_count_per_symbol_even_when_symbols_interleave(tmp_path: Path) -> None:
    """Two trades of A in the same nanosecond with a B between them get distinct ids (f0, f1)."""
    from omnid.storage.history import trade_rows

    f = tmp_path / "t.csv"
    write_table(f, {"ts": [T0, T0, T0, T0 + 1], "price": [1.0, 2.0, 3.0, 4.0], "qty": [1.0] * 4,
                    "symbol": ["A", "B", "A", "A"]})
    chunks, n, ids = trade_rows(f, venue="SIM")
    rows = [r for c in chunks for r in c]
    assert n == 4 and ids == ["A.SIM", "B.SIM"]
    assert [(r[0], r[6]) for r in rows] == [("A.SIM", "f0"), ("B.SIM", "f0"), ("A.SIM", "f1"), ("A.SIM", "f0")]
