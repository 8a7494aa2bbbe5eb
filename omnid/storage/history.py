"""Historical data: import files into the store, read candles back, build bars from stored trades.

Files are read by :mod:`omnid.datafiles` (the one loader); their rows go to whichever sink the
``[storage]`` routes send ``md.bars`` / ``md.trades`` to, through the idempotent write path, so
importing the same file twice stores it once. Trades (a batch-keyed table, no unique index in
PostgreSQL) are written with unit ids derived from the file's content hash, the import options and
the chunk's index, so a re-import finds them in the ledger and stores nothing.
Reads (candles, trades, export) work against the SQLite and PostgreSQL stores.

The candles query answers from the best source it has: the venue's stored bars of exactly that
interval, else bars already built from trades (``derived.bars``), else finer stored bars rolled up,
else the stored trades themselves. Bar ``ts_open`` is the bucket start, ``ts_event`` its end.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import msgspec
import numpy as np
import numpy.typing as npt

from omnid.errors import DataError, StorageError
from omnid.model import AccountState, Bar, Side, Trade
from omnid.storage.catalog import CATALOG, DERIVED_BARS, Catalog, Row, TableSpec
from omnid.storage.config import StorageConfig, resolve_path
from omnid.storage.ddl import pg_schema, sqlite_name
from omnid.storage.sinks.base import Batch, Sink, make_units

NS = {"s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000, "d": 86_400_000_000_000}
_INTERVAL = re.compile(r"^(\d+)\s*([smhd])$")
CHUNK_ROWS = 50_000


def parse_interval(text: str) -> int:
    """``"1m"`` → nanoseconds. Units: s, m, h, d."""
    m = _INTERVAL.match(text.strip().lower())
    if not m or int(m.group(1)) == 0:
        raise DataError(f"interval {text!r}: expected a number and a unit s/m/h/d, like 1m or 1d")
    return int(m.group(1)) * NS[m.group(2)]


# --------------------------------------------------------------------------------------------------
# Building bars (vectorised: a million trades in well under a second)


def bars_from_arrays(
    instrument_id: str, interval_ns: int, ts: npt.NDArray[np.int64], price: npt.NDArray[np.float64],
    size: npt.NDArray[np.float64],
) -> list[Bar]:
    """OHLCV bars of ``interval_ns`` from time-ordered trades (buckets with no trade are absent)."""
    if len(ts) == 0:
        return []
    if np.any(np.diff(ts) < 0):
        raise DataError(f"{instrument_id}: trades are not in time order")
    bucket = (ts // interval_ns) * interval_ns
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], len(ts)] - 1
    high = np.maximum.reduceat(price, starts)
    low = np.minimum.reduceat(price, starts)
    vol = np.add.reduceat(size, starts)
    return [
        Bar(instrument_id, interval_ns, int(b), float(o), float(h), float(lo), float(c), float(v),
            int(b) + interval_ns, int(b) + interval_ns)
        for b, o, h, lo, c, v in zip(bucket[starts], price[starts], high, low, price[ends], vol, strict=True)
    ]


def resample_bars(bars: list[Bar], interval_ns: int) -> list[Bar]:
    """Roll finer bars (time-ordered, one instrument) up to ``interval_ns``."""
    if not bars:
        return []
    iid = bars[0].instrument_id
    ts = np.fromiter((b.ts_open for b in bars), dtype=np.int64, count=len(bars))
    bucket = (ts // interval_ns) * interval_ns
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], len(ts)] - 1
    high = np.maximum.reduceat(np.array([b.high for b in bars]), starts)
    low = np.minimum.reduceat(np.array([b.low for b in bars]), starts)
    vol = np.add.reduceat(np.array([b.volume for b in bars]), starts)
    return [
        Bar(iid, interval_ns, int(bucket[s]), bars[s].open, float(h), float(lo), bars[e].close, float(v),
            int(bucket[s]) + interval_ns, int(bucket[s]) + interval_ns)
        for s, e, h, lo, v in zip(starts, ends, high, low, vol, strict=True)
    ]


# --------------------------------------------------------------------------------------------------
# Import


class ImportResult(msgspec.Struct):
    path: str
    kind: str
    rows: int
    symbols: list[str]
    sink: str
    table: str
    interval_ns: int = 0


def _instrument_id(symbol: str, venue: str) -> str:
    return symbol if "." in symbol else f"{symbol}.{venue}"


def _infer_interval(ts: npt.NDArray[np.int64], codes: npt.NDArray[np.int32], path: str) -> int:
    diffs = []
    for c in np.unique(codes):
        t = ts[codes == c]
        if len(t) > 1:
            diffs.append(np.diff(t))
    if not diffs:
        raise DataError(f"{path}: one bar per symbol: give the interval (--interval 1m)", path=path)
    d = int(np.median(np.concatenate(diffs)))
    # Daily files skip weekends and holidays; anything between 20 h and 5 d is a daily bar.
    if 20 * NS["h"] <= d <= 5 * NS["d"]:
        return NS["d"]
    return d


def bar_rows(path: str | Path, *, venue: str, interval_ns: int = 0, default_symbol: str | None = None
             ) -> tuple[Iterator[list[Row]], int, int, list[str]]:
    """``md.bars`` rows from a bar file, as chunks built on demand (a big file never exists as
    Python tuples all at once), with the row count, the interval (inferred when not given) and the
    instrument ids."""
    from omnid.datafiles import load_bars

    data = load_bars(path, default_symbol=default_symbol)
    interval = interval_ns or _infer_interval(data.ts, data.symbol_codes, data.path)
    ids = [_instrument_id(s, venue) for s in data.symbols]

    def chunks() -> Iterator[list[Row]]:
        for i in range(0, len(data), CHUNK_ROWS):
            sl = slice(i, i + CHUNK_ROWS)
            yield [
                (ids[c], interval, t, o, h, lo, cl, v, t + interval, t + interval)
                for c, t, o, h, lo, cl, v in zip(
                    data.symbol_codes[sl].tolist(), data.ts[sl].tolist(), data.open[sl].tolist(),
                    data.high[sl].tolist(), data.low[sl].tolist(), data.close[sl].tolist(),
                    data.volume[sl].tolist(), strict=True)
            ]

    return chunks(), len(data), interval, ids


_SIDES = {1: Side.BUY.value, -1: Side.SELL.value, 0: Side.NONE.value}


def trade_rows(path: str | Path, *, venue: str, default_symbol: str | None = None
               ) -> tuple[Iterator[list[Row]], int, list[str]]:
    """``md.trades`` rows from a tick file, as chunks built on demand. Files carry no trade ids,
    so each trade's id is its position among the file's trades of the same symbol and nanosecond
    (``f0``, ``f1``, ...): deterministic, so importing the file again stores nothing new."""
    from omnid.datafiles import load_ticks

    data = load_ticks(path, default_symbol=default_symbol)
    ids = [_instrument_id(s, venue) for s in data.symbols]

    def chunks() -> Iterator[list[Row]]:
        last_ts: dict[int, int] = {}
        count: dict[int, int] = {}
        for i in range(0, len(data), CHUNK_ROWS):
            sl = slice(i, i + CHUNK_ROWS)
            rows: list[Row] = []
            for c, t, p, q, sd in zip(data.symbol_codes[sl].tolist(), data.ts[sl].tolist(),
                                      data.price[sl].tolist(), data.qty[sl].tolist(),
                                      data.side[sl].tolist(), strict=True):
                n = count[c] + 1 if last_ts.get(c) == t else 0
                last_ts[c], count[c] = t, n
                rows.append((ids[c], p, q, _SIDES[sd], t, t, f"f{n}"))
            yield rows

    return chunks(), len(data), ids


def route(cfg: StorageConfig, spec: TableSpec) -> str:
    return cfg.routes.get(spec.full_name) or cfg.routes.get(spec.group) or cfg.default_sink


async def write_rows(sink: Sink, spec: TableSpec, rows: list[Row], *, batch_id: str = "") -> None:
    """Write rows in chunks through the sink's idempotent path. A batch-keyed table needs
    ``batch_id``, deterministic for these rows (the same rows must get the same id every time):
    the chunks' units are ``batch_id:<chunk>:<unit>``."""
    if spec.batch_keyed and not batch_id:
        raise StorageError(f"{spec.full_name} is stored exactly once per batch: writing rows into "
                           "it needs a deterministic batch id", table=spec.full_name)
    for c, i in enumerate(range(0, len(rows), CHUNK_ROWS)):
        chunk = rows[i : i + CHUNK_ROWS]
        units = make_units(f"{batch_id}:{c}", len(chunk)) if spec.batch_keyed else None
        await sink.write(Batch(spec, chunk, built=True, replay=True, units=units))
        await asyncio.sleep(0)


def import_id(path: str | Path, *parts: object) -> str:
    """A file import's batch id: a hash of the file's bytes and of the options that shape its rows."""
    h = hashlib.blake2b(digest_size=16)
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    h.update(repr(parts).encode())
    return f"import:{h.hexdigest()}"


async def import_file(
    path: str | Path,
    cfg: StorageConfig,
    data_dir: Path,
    *,
    venue: str = "SIM",
    kind: Literal["bars", "ticks", "auto"] = "auto",
    interval_ns: int = 0,
    symbol: str | None = None,
    catalog: Catalog | None = None,
) -> ImportResult:
    """Load a CSV/Parquet bar or tick file and store it where ``[storage]`` routes its table."""
    from omnid.datafiles import detect_kind
    from omnid.storage.service import build_sinks

    cat = catalog or CATALOG
    real_kind = detect_kind(path) if kind == "auto" else kind
    if real_kind == "bars":
        spec = cat.spec_for(Bar)
        chunks, count, interval_ns, ids = bar_rows(path, venue=venue, interval_ns=interval_ns,
                                                   default_symbol=symbol)
    else:
        spec = cat.spec_for(Trade)
        chunks, count, ids = trade_rows(path, venue=venue, default_symbol=symbol)
    name = route(cfg, spec)
    if name == "none":
        raise StorageError(f"[storage] routes {spec.full_name} to none: nothing to import into")
    sink = build_sinks(cfg, data_dir, catalog=cat, only={name})[name]
    base_id = import_id(path, real_kind, venue, symbol, interval_ns)
    await sink.start([spec])
    try:
        for c, chunk in enumerate(chunks):
            await write_rows(sink, spec, chunk, batch_id=f"{base_id}:{c}")
    finally:
        await sink.close()
    return ImportResult(str(path), real_kind, count, ids, name, spec.full_name, interval_ns)


# --------------------------------------------------------------------------------------------------
# Reading


class HistoryReader:
    """Read bars and trades back from the SQLite or PostgreSQL store.

    Use ``async with HistoryReader.open(cfg, data_dir) as h: bars = await h.candles(...)``.
    """

    def __init__(self, kind: Literal["sqlite", "postgres"], *, path: Path | None = None, dsn: str = "",
                 prefix: str = "") -> None:
        self.kind = kind
        self.path = path
        self.dsn = dsn
        self.prefix = prefix
        self._pg: Any = None

    @classmethod
    def open(cls, cfg: StorageConfig, data_dir: Path, *, table: str = "md.bars") -> HistoryReader:
        """A reader for the store that ``table`` routes to."""
        name = route(cfg, CATALOG.table(table))
        if name == "sqlite":
            return cls("sqlite", path=resolve_path(data_dir, cfg.sqlite.path))
        if name == "postgres":
            return cls("postgres", dsn=cfg.postgres.dsn, prefix=cfg.postgres.schema_prefix)
        raise StorageError(
            f"{table} is routed to {name!r}; reading history needs it in sqlite or postgres", sink=name)

    async def __aenter__(self) -> HistoryReader:
        if self.kind == "postgres":
            import asyncpg  # type: ignore[import-untyped]

            try:
                self._pg = await asyncpg.connect(self.dsn, timeout=10)
            except (OSError, asyncpg.PostgresError) as exc:
                raise StorageError(f"postgres: cannot connect to read history: {exc}") from exc
        elif self.path is None or not self.path.exists():
            raise StorageError(f"sqlite store {self.path} does not exist (nothing recorded or imported yet)",
                               path=str(self.path))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._pg is not None:
            await self._pg.close()
            self._pg = None

    def _table(self, spec: TableSpec) -> str:
        if self.kind == "sqlite":
            return f'"{sqlite_name(spec)}"'
        return f'"{pg_schema(self.prefix, spec.group)}"."{spec.name}"'

    async def _fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        if self.kind == "postgres":
            n = 0

            def dollar(_: re.Match[str]) -> str:
                nonlocal n
                n += 1
                return f"${n}"

            try:
                return [tuple(r) for r in await self._pg.fetch(re.sub(r"\?", dollar, sql), *args)]
            except Exception as exc:
                if type(exc).__name__ == "UndefinedTableError":
                    return []
                raise

        def run() -> list[tuple[Any, ...]]:
            assert self.path is not None
            with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True) as conn:
                try:
                    return conn.execute(sql, args).fetchall()
                except sqlite3.OperationalError as exc:
                    if "no such table" in str(exc):
                        return []
                    raise

        return await asyncio.to_thread(run)

    async def stored_bars(self, instrument_id: str, interval_ns: int, start_ns: int, end_ns: int,
                          *, spec: TableSpec | None = None) -> list[Bar]:
        spec = spec or CATALOG.spec_for(Bar)
        rows = await self._fetch(
            f"SELECT instrument_id, interval_ns, ts_open, open, high, low, close, volume, ts_event, ts_init "
            f"FROM {self._table(spec)} WHERE instrument_id = ? AND interval_ns = ? AND ts_open >= ? "
            "AND ts_open < ? ORDER BY ts_open", instrument_id, interval_ns, start_ns, end_ns)
        return [Bar(*r) for r in rows]

    async def intervals(self, instrument_id: str) -> list[int]:
        """Bar intervals stored for an instrument (venue bars only)."""
        rows = await self._fetch(
            f"SELECT DISTINCT interval_ns FROM {self._table(CATALOG.spec_for(Bar))} WHERE instrument_id = ?",
            instrument_id)
        return sorted(int(r[0]) for r in rows)

    async def trades(self, instrument_id: str, start_ns: int, end_ns: int) -> list[Trade]:
        rows = await self._fetch(
            f"SELECT instrument_id, price, size, side, ts_event, ts_init, trade_id "
            f"FROM {self._table(CATALOG.spec_for(Trade))} WHERE instrument_id = ? AND ts_event >= ? "
            "AND ts_event < ? ORDER BY ts_event, trade_id", instrument_id, start_ns, end_ns)
        return [Trade(r[0], r[1], r[2], Side(r[3]), r[4], r[5], r[6]) for r in rows]

    async def bars_from_trades(self, instrument_id: str, interval_ns: int, start_ns: int, end_ns: int
                               ) -> list[Bar]:
        """Bars built from the stored trades (whole buckets: the range is widened to the interval)."""
        lo = (start_ns // interval_ns) * interval_ns
        hi = -(-end_ns // interval_ns) * interval_ns
        rows = await self._fetch(
            f"SELECT ts_event, price, size FROM {self._table(CATALOG.spec_for(Trade))} "
            "WHERE instrument_id = ? AND ts_event >= ? AND ts_event < ? ORDER BY ts_event, trade_id",
            instrument_id, lo, hi)
        if not rows:
            return []
        arr = np.array(rows, dtype=np.float64)
        ts = np.array([r[0] for r in rows], dtype=np.int64)
        bars = bars_from_arrays(instrument_id, interval_ns, ts, arr[:, 1], arr[:, 2])
        return [b for b in bars if start_ns <= b.ts_open < end_ns]

    async def equity_curve(self, account_id: str, start_ns: int, end_ns: int
                           ) -> list[tuple[int, float, float]]:
        """``(ts, equity, cash)`` of every recorded account snapshot in ``[start_ns, end_ns)``."""
        rows = await self._fetch(
            f"SELECT ts_event, equity, cash FROM {self._table(CATALOG.spec_for(AccountState))} "
            "WHERE account_id = ? AND ts_event >= ? AND ts_event < ? ORDER BY ts_event",
            account_id, start_ns, end_ns)
        return [(int(r[0]), float(r[1]), float(r[2])) for r in rows]

    async def candles(self, instrument_id: str, interval_ns: int, start_ns: int, end_ns: int) -> list[Bar]:
        """Bars for ``[start_ns, end_ns)`` from the best stored source (see the module doc)."""
        if interval_ns <= 0 or end_ns <= start_ns:
            raise DataError(f"candles: need interval > 0 and from < to (got {interval_ns}, "
                            f"{start_ns}..{end_ns})")
        bars = await self.stored_bars(instrument_id, interval_ns, start_ns, end_ns)
        if bars:
            return bars
        bars = await self.stored_bars(instrument_id, interval_ns, start_ns, end_ns, spec=DERIVED_BARS)
        if bars:
            return bars
        finer = [i for i in await self.intervals(instrument_id) if i < interval_ns and interval_ns % i == 0]
        if finer:
            lo = (start_ns // interval_ns) * interval_ns
            src = await self.stored_bars(instrument_id, finer[-1], lo, end_ns)
            return [b for b in resample_bars(src, interval_ns) if b.ts_open >= start_ns]
        return await self.bars_from_trades(instrument_id, interval_ns, start_ns, end_ns)


async def build_bars(cfg: StorageConfig, data_dir: Path, instrument_id: str, interval_ns: int,
                     start_ns: int, end_ns: int) -> int:
    """Build bars from stored trades and store them in ``derived.bars``; returns how many."""
    from omnid.storage.service import build_sinks

    async with HistoryReader.open(cfg, data_dir, table="md.trades") as reader:
        bars = await reader.bars_from_trades(instrument_id, interval_ns, start_ns, end_ns)
    if not bars:
        return 0
    name = route(cfg, DERIVED_BARS)
    if name == "none":
        raise StorageError("[storage] routes derived.bars to none: nowhere to store built bars")
    sink = build_sinks(cfg, data_dir, only={name})[name]
    await sink.start([DERIVED_BARS])
    try:
        await write_rows(sink, DERIVED_BARS, [DERIVED_BARS.row(b) for b in bars])
    finally:
        await sink.close()
    return len(bars)
