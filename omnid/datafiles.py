"""Bar and trade-tick files (CSV or Parquet) into columnar numpy arrays, and table writers.

The backtester, the storage importer and ``omnid features`` read market data files through here, so
every file problem surfaces once, as a :class:`~omnid.errors.DataError` that names the file, the
column and the row (1-based data row, header excluded).

Bar files have columns ``Date/Open/High/Low/Close/Volume`` in any capitalisation (``Date`` may also
be called ``datetime``, ``timestamp``, ``time`` or ``ts``) and an optional ``symbol``. Tick files
have ``ts`` (also ``timestamp``/``time``), ``price``, ``qty`` (also ``size``/``quantity``), and
optional ``symbol`` and ``side`` (aggressor: ``buy``/``sell``, ``b``/``s`` or ``1``/``-1``;
empty or ``0`` = unknown).

Timestamps become int64 nanoseconds since the epoch, UTC. Accepted forms: ISO 8601 strings (a date,
or a date and time with or without a zone offset; no offset means UTC) and epoch numbers, whose unit
is told by magnitude (below 1e11 seconds, below 1e14 milliseconds, below 1e17 microseconds, else
nanoseconds: unambiguous for any date from 1973 to 5138). Timestamps must not decrease within a
symbol (bars must strictly increase). Values must be finite.

Parsing is pyarrow's (multithreaded C++): a 1M-row tick CSV loads in a fraction of a second. Only
when pyarrow rejects a file do we fall back to a row-by-row pass, to name the offending row.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from omnid.errors import DataError

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
I8 = npt.NDArray[np.int8]

#: Accepted names (lower case) for each logical column, in order of preference.
BAR_COLUMNS: dict[str, tuple[str, ...]] = {
    "ts": ("date", "datetime", "timestamp", "time", "ts"),
    "open": ("open",),
    "high": ("high",),
    "low": ("low",),
    "close": ("close",),
    "volume": ("volume",),
}
TICK_COLUMNS: dict[str, tuple[str, ...]] = {
    "ts": ("ts", "timestamp", "time"),
    "price": ("price",),
    "qty": ("qty", "size", "quantity"),
}
SIDE_CODES: dict[str, int] = {"buy": 1, "b": 1, "1": 1, "sell": -1, "s": -1, "-1": -1, "": 0, "none": 0,
                              "0": 0}

Kind = Literal["bars", "ticks"]


@dataclass(frozen=True, slots=True)
class BarData:
    """Bars as columns. ``ts`` is the file's Date (conventionally the bar's open), int64 ns UTC.

    ``symbols[symbol_codes[i]]`` is row ``i``'s symbol; a file without a symbol column gets one
    symbol (``default_symbol``, else the file's stem).
    """

    path: str
    ts: I64
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64
    symbols: list[str]
    symbol_codes: I32

    def __len__(self) -> int:
        return len(self.ts)

    def select(self, symbol: str) -> BarData:
        """Only the rows of ``symbol`` (a copy)."""
        m = self.symbol_codes == _code_of(self.symbols, symbol, self.path)
        return BarData(self.path, self.ts[m], self.open[m], self.high[m], self.low[m], self.close[m],
                       self.volume[m], [symbol], np.zeros(int(m.sum()), dtype=np.int32))

    def by_time(self) -> BarData:
        """Rows in time order across symbols (stable), for replaying a multi-symbol file."""
        o = np.argsort(self.ts, kind="stable")
        return BarData(self.path, self.ts[o], self.open[o], self.high[o], self.low[o], self.close[o],
                       self.volume[o], self.symbols, self.symbol_codes[o])


@dataclass(frozen=True, slots=True)
class TickData:
    """Trade ticks as columns: ``ts`` int64 ns UTC; ``side`` int8: 1 buy, -1 sell, 0 unknown."""

    path: str
    ts: I64
    price: F64
    qty: F64
    side: I8
    symbols: list[str]
    symbol_codes: I32

    def __len__(self) -> int:
        return len(self.ts)

    def select(self, symbol: str) -> TickData:
        """Only the rows of ``symbol`` (a copy)."""
        m = self.symbol_codes == _code_of(self.symbols, symbol, self.path)
        return TickData(self.path, self.ts[m], self.price[m], self.qty[m], self.side[m], [symbol],
                        np.zeros(int(m.sum()), dtype=np.int32))

    def by_time(self) -> TickData:
        """Rows in time order across symbols (stable), for replaying a multi-symbol file."""
        o = np.argsort(self.ts, kind="stable")
        return TickData(self.path, self.ts[o], self.price[o], self.qty[o], self.side[o], self.symbols,
                        self.symbol_codes[o])


def _code_of(symbols: list[str], symbol: str, path: str) -> int:
    try:
        return symbols.index(symbol)
    except ValueError:
        raise DataError(f"{path}: no rows for symbol {symbol!r} (have: {symbols})", path=path,
                        symbol=symbol) from None


# --------------------------------------------------------------------------------------------------
# Public entry points


def column_names(path: str | Path) -> list[str]:
    """The column names of a CSV (its header) or Parquet file, as written."""
    p = Path(path)
    fmt = _format_of(p)
    try:
        if fmt == "parquet":
            return list(pq.read_schema(p).names)
        with p.open(newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), None)
    except FileNotFoundError:
        raise DataError(f"{p}: file not found", path=str(p)) from None
    except (OSError, pa.ArrowException, UnicodeDecodeError) as exc:
        raise DataError(f"{p}: cannot read: {exc}", path=str(p)) from None
    if not header:
        raise DataError(f"{p}: empty file (no header row)", path=str(p))
    return [h.strip() for h in header]


def detect_kind(path: str | Path) -> Kind:
    """``"bars"`` if the file has OHLC columns, ``"ticks"`` if it has price and qty/size."""
    names = {n.lower() for n in column_names(path)}
    if {"open", "high", "low", "close"} <= names:
        return "bars"
    if "price" in names and names & set(TICK_COLUMNS["qty"]):
        return "ticks"
    raise DataError(
        f"{path}: neither a bar file (Date/Open/High/Low/Close/Volume) nor a tick file "
        f"(ts/price/qty); columns are {sorted(names)}",
        path=str(path),
    )


def load_bars(path: str | Path, *, default_symbol: str | None = None) -> BarData:
    """Read a bar file; raise :class:`DataError` naming the file, column and row on bad data."""
    p = Path(path)
    table, cols, sym_col = _read(p, BAR_COLUMNS, ("open", "high", "low", "close", "volume"))
    ts = _timestamps(table, cols["ts"], p)
    values = {k: _floats(table, cols[k], p) for k in ("open", "high", "low", "close", "volume")}
    for k in ("open", "high", "low", "close"):
        _at_least(values[k], cols[k], p, 0.0, strict=True)
    _at_least(values["volume"], cols["volume"], p, 0.0, strict=False)
    inverted = values["high"] < values["low"]
    if inverted.any():
        row = int(np.argmax(inverted)) + 1
        hi, lo = values["high"][row - 1], values["low"][row - 1]
        raise DataError(f"{p}: row {row}: high {hi} is below low {lo}", path=str(p), row=row)
    symbols, codes = _symbols(table, sym_col, p, default_symbol)
    _check_sorted(ts, codes, symbols, p, cols["ts"], strict=True)
    return BarData(str(p), ts, values["open"], values["high"], values["low"], values["close"],
                   values["volume"], symbols, codes)


def load_ticks(path: str | Path, *, default_symbol: str | None = None) -> TickData:
    """Read a trade-tick file; raise :class:`DataError` naming the file, column and row on bad data."""
    p = Path(path)
    table, cols, sym_col = _read(p, TICK_COLUMNS, ("price", "qty"), extra=("side",))
    ts = _timestamps(table, cols["ts"], p)
    price = _floats(table, cols["price"], p)
    _at_least(price, cols["price"], p, 0.0, strict=True)
    qty = _floats(table, cols["qty"], p)
    _at_least(qty, cols["qty"], p, 0.0, strict=False)
    side = _sides(table, cols.get("side"), p)
    symbols, codes = _symbols(table, sym_col, p, default_symbol)
    _check_sorted(ts, codes, symbols, p, cols["ts"], strict=False)
    return TickData(str(p), ts, price, qty, side, symbols, codes)


def write_table(path: str | Path, columns: Mapping[str, Sequence[Any] | npt.NDArray[Any]]) -> None:
    """Write columns to CSV or Parquet (by the extension). NaN floats are written as empty/null.

    A column named ``ts`` holding int64 ns is written as a UTC timestamp.
    """
    p = Path(path)
    fmt = _format_of(p)
    arrays: list[pa.Array] = []
    for name, values in columns.items():
        arr = np.asarray(values)
        if name == "ts" and arr.dtype.kind in "iu":
            arrays.append(pa.array(arr.astype(np.int64), type=pa.int64()).cast(pa.timestamp("ns", tz="UTC")))
        elif arr.dtype.kind == "f":
            arrays.append(pa.array(arr, from_pandas=True))
        else:
            arrays.append(pa.array(arr))
    table = pa.Table.from_arrays(arrays, names=list(columns))
    try:
        if fmt == "parquet":
            pq.write_table(table, p)
        else:
            pacsv.write_csv(table, p)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{p}: cannot write: {exc}", path=str(p)) from None


# --------------------------------------------------------------------------------------------------
# Reading



#: Arrow's fixed-width numeric types and the numpy dtypes of their data buffers.
_BUFFER_DTYPES: dict[pa.DataType, type[np.generic]] = {
    pa.int8(): np.int8, pa.int16(): np.int16, pa.int32(): np.int32, pa.int64(): np.int64,
    pa.uint8(): np.uint8, pa.uint16(): np.uint16, pa.uint32(): np.uint32, pa.uint64(): np.uint64,
    pa.float32(): np.float32, pa.float64(): np.float64,
}


def _numpy(col: pa.ChunkedArray | pa.Array, dtype: type[np.generic]) -> npt.NDArray[Any]:
    """A numeric Arrow column as a new, writable, contiguous numpy array of ``dtype``.

    Why not ``to_numpy()``: with pandas installed, pyarrow's conversion imports it first, 0.3-0.45 s
    on a 2-core VM (as long as parsing a 1M-row CSV). A column of a fixed-width type without nulls
    is read straight from each chunk's data buffer instead; anything else takes ``to_numpy()``.
    """
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    own = _BUFFER_DTYPES.get(col.type)
    if own is None or col.null_count:
        return np.ascontiguousarray(col.to_numpy(), dtype=dtype)
    size = np.dtype(own).itemsize
    parts = [np.frombuffer(c.buffers()[1], dtype=own, count=len(c), offset=c.offset * size)
             for c in chunks if len(c)]
    if not parts:
        return np.zeros(0, dtype=dtype)
    # concatenate and astype copy: the result never shares (read-only) Arrow memory.
    out = np.concatenate(parts) if len(parts) > 1 else parts[0].copy()
    return out if out.dtype == dtype else out.astype(dtype)


def _format_of(p: Path) -> Literal["csv", "parquet"]:
    suffix = p.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".csv", ".txt"):
        return "csv"
    raise DataError(f"{p}: unknown file type {suffix!r} (expected .csv or .parquet)", path=str(p))


def _resolve(names: list[str], wanted: dict[str, tuple[str, ...]], p: Path,
             extra: tuple[str, ...]) -> tuple[dict[str, str], str | None]:
    lower = {n.strip().lower(): n for n in names}
    cols: dict[str, str] = {}
    for key, aliases in wanted.items():
        for alias in aliases:
            if alias in lower:
                cols[key] = lower[alias]
                break
        else:
            raise DataError(
                f"{p}: missing column {aliases[0]!r}"
                + (f" (or {', '.join(map(repr, aliases[1:]))})" if len(aliases) > 1 else "")
                + f"; columns are {names}",
                path=str(p), column=aliases[0],
            )
    for key in extra:
        if key in lower:
            cols[key] = lower[key]
    return cols, lower.get("symbol")


def _read(p: Path, wanted: dict[str, tuple[str, ...]], numeric: tuple[str, ...],
          extra: tuple[str, ...] = ()) -> tuple[pa.Table, dict[str, str], str | None]:
    names = column_names(p)
    cols, sym_col = _resolve(names, wanted, p, extra)
    try:
        if _format_of(p) == "parquet":
            # ParquetFile, not read_table: the latter goes through pyarrow.dataset, whose import
            # pulls in pandas when it is installed (see _numpy).
            with pq.ParquetFile(p) as pf:
                return pf.read(), cols, sym_col
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{p}: cannot read Parquet: {exc}", path=str(p)) from None
    strings = {c: pa.string() for c in (sym_col, cols.get("side")) if c}
    types = {cols[k]: pa.float64() for k in numeric} | strings
    try:
        table = pacsv.read_csv(p, convert_options=pacsv.ConvertOptions(column_types=types))
    except pa.ArrowInvalid as exc:
        # pyarrow does not say which row; find it ourselves, then report pyarrow's view if we cannot.
        _diagnose_csv(p, cols, [cols[k] for k in numeric])
        raise DataError(f"{p}: cannot parse: {exc}", path=str(p)) from None
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{p}: cannot read: {exc}", path=str(p)) from None
    return table, cols, sym_col


def _diagnose_csv(p: Path, cols: dict[str, str], numeric: list[str]) -> None:
    """Re-read row by row and raise a DataError naming the first bad cell."""
    with p.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader)]
        idx = {name: header.index(name) for name in [*numeric, cols["ts"]]}
        for row_no, row in enumerate(reader, start=1):
            if len(row) != len(header):
                raise DataError(f"{p}: row {row_no}: expected {len(header)} fields, got {len(row)}",
                                path=str(p), row=row_no)
            for name in numeric:
                cell = row[idx[name]].strip()
                try:
                    float(cell)
                except ValueError:
                    raise DataError(f"{p}: column {name!r}, row {row_no}: not a number: {cell!r}",
                                    path=str(p), column=name, row=row_no) from None
            _parse_one_ts(row[idx[cols["ts"]]].strip(), p, cols["ts"], row_no)


def _floats(table: pa.Table, name: str, p: Path) -> F64:
    col = table.column(name)
    if col.null_count:
        row = _first_true(col.is_null())
        raise DataError(f"{p}: column {name!r}, row {row}: empty or NaN value", path=str(p),
                        column=name, row=row)
    try:
        col = col.cast(pa.float64())
    except pa.ArrowException:
        for row, v in enumerate(col.to_pylist(), start=1):
            try:
                float(v)
            except (TypeError, ValueError):
                raise DataError(f"{p}: column {name!r}, row {row}: not a number: {v!r}", path=str(p),
                                column=name, row=row) from None
        raise DataError(f"{p}: column {name!r}: not numeric ({col.type})", path=str(p),
                        column=name) from None
    arr: F64 = _numpy(col, np.float64)
    finite = np.isfinite(arr)
    if not finite.all():
        row = int(np.argmin(finite)) + 1
        raise DataError(f"{p}: column {name!r}, row {row}: value {arr[row - 1]} is not finite",
                        path=str(p), column=name, row=row)
    return arr


def _at_least(arr: F64, name: str, p: Path, floor: float, *, strict: bool) -> None:
    """Prices must be above ``floor`` (``strict``), sizes and volumes at least it: a DataError
    naming the first row that is not (one vectorised compare over the column)."""
    bad = arr <= floor if strict else arr < floor
    if bad.any():
        row = int(np.argmax(bad)) + 1
        need = "> " if strict else ">= "
        raise DataError(f"{p}: column {name!r}, row {row}: value {arr[row - 1]} must be {need}{floor:g}",
                        path=str(p), column=name, row=row)


def _first_true(mask: pa.ChunkedArray | pa.Array) -> int:
    return int(np.argmax(np.asarray(mask.to_numpy(zero_copy_only=False)))) + 1


def _epoch_to_ns(values: npt.NDArray[Any]) -> I64:
    """Epoch numbers to ns, the unit told by magnitude (see the module docstring)."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    mag = float(np.max(np.abs(values)))
    scale = 1_000_000_000 if mag < 1e11 else 1_000_000 if mag < 1e14 else 1_000 if mag < 1e17 else 1
    if values.dtype.kind == "f":
        return np.round(values * scale).astype(np.int64)
    return values.astype(np.int64) * scale


def _timestamps(table: pa.Table, name: str, p: Path) -> I64:
    col = table.column(name)
    if col.null_count:
        row = _first_true(col.is_null())
        raise DataError(f"{p}: column {name!r}, row {row}: empty timestamp", path=str(p), column=name,
                        row=row)
    typ = col.type
    if pa.types.is_timestamp(typ):
        out = col.cast(pa.timestamp("ns", tz=typ.tz)).cast(pa.int64())
        return _numpy(out, np.int64)
    if pa.types.is_date(typ):
        days: I64 = _numpy(col.cast(pa.date32()).cast(pa.int32()), np.int64)
        return days * 86_400_000_000_000
    if pa.types.is_integer(typ) or pa.types.is_floating(typ):
        own = _BUFFER_DTYPES.get(typ)
        raw = _numpy(col, own) if own is not None else col.to_numpy()
        if raw.dtype.kind == "f" and not np.isfinite(raw).all():
            row = int(np.argmin(np.isfinite(raw))) + 1
            raise DataError(f"{p}: column {name!r}, row {row}: timestamp is not finite", path=str(p),
                            column=name, row=row)
        return _epoch_to_ns(raw)
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        for tz in (None, "UTC"):
            try:
                out = col.cast(pa.timestamp("ns", tz=tz)).cast(pa.int64())
                return _numpy(out, np.int64)
            except pa.ArrowException:
                pass
        return np.fromiter(
            (_parse_one_ts(s, p, name, i) for i, s in enumerate(col.to_pylist(), start=1)),
            dtype=np.int64, count=len(col),
        )
    raise DataError(f"{p}: column {name!r}: cannot read timestamps of type {typ}", path=str(p),
                    column=name)


def _parse_one_ts(text: str, p: Path, name: str, row: int) -> int:
    """One timestamp cell (epoch number or ISO 8601) to ns; the slow path for mixed columns."""
    try:
        num = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(num):
            raise DataError(f"{p}: column {name!r}, row {row}: timestamp is not finite", path=str(p),
                            column=name, row=row)
        return int(_epoch_to_ns(np.array([int(text)] if text.lstrip("-").isdigit() else [num]))[0])
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise DataError(f"{p}: column {name!r}, row {row}: not a timestamp: {text!r}", path=str(p),
                        column=name, row=row) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    delta = moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def _sides(table: pa.Table, name: str | None, p: Path) -> I8:
    if name is None:
        return np.zeros(table.num_rows, dtype=np.int8)
    col = pc.utf8_lower(pc.utf8_trim_whitespace(table.column(name).cast(pa.string())))
    # An empty cell is a null here: encoded as an entry of its own, read as "" (no side). Not
    # fill_null(""): making the "" scalar imports pandas when it is installed (see _numpy).
    enc = col.combine_chunks().dictionary_encode(null_encoding="encode")
    out = np.zeros(len(enc.dictionary), dtype=np.int8)
    for i, got in enumerate(enc.dictionary.to_pylist()):
        v = "" if got is None else got
        if v not in SIDE_CODES:
            row = _first_true(pc.equal(col, v))
            raise DataError(f"{p}: column {name!r}, row {row}: side must be buy or sell, got {v!r}",
                            path=str(p), column=name, row=row)
        out[i] = SIDE_CODES[v]
    return np.ascontiguousarray(out[_numpy(enc.indices, np.intp)], dtype=np.int8)


def _symbols(table: pa.Table, name: str | None, p: Path, default: str | None) -> tuple[list[str], I32]:
    if name is None:
        return [default or p.stem], np.zeros(table.num_rows, dtype=np.int32)
    col = table.column(name).cast(pa.string())
    if col.null_count:
        row = _first_true(col.is_null())
        raise DataError(f"{p}: column {name!r}, row {row}: empty symbol", path=str(p), column=name, row=row)
    enc = col.combine_chunks().dictionary_encode()
    return enc.dictionary.to_pylist(), _numpy(enc.indices, np.int32)


def _check_sorted(ts: I64, codes: I32, symbols: list[str], p: Path, name: str, *, strict: bool) -> None:
    """Timestamps must not go back within a symbol (bars: must strictly increase)."""
    rows = np.arange(len(ts))
    for code in range(len(symbols)):
        sel = rows if len(symbols) == 1 else rows[codes == code]
        d = np.diff(ts[sel])
        bad = d <= 0 if strict else d < 0
        if bad.any():
            i = int(np.argmax(bad))
            row = int(sel[i + 1]) + 1
            what = "does not increase" if strict else "goes back in time"
            raise DataError(
                f"{p}: column {name!r}, row {row}: timestamp {what} (symbol {symbols[code]!r}: "
                f"{int(ts[sel[i + 1]])} after {int(ts[sel[i]])})",
                path=str(p), column=name, row=row, symbol=symbols[code],
            )
