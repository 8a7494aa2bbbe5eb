"""omnid.datafiles: bar/tick files into arrays, and clear errors that name file, column and row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from omnid.datafiles import detect_kind, load_bars, load_ticks, write_table
from omnid.errors import DataError

DAY = 86_400 * 10**9
T0 = 1_704_153_600 * 10**9  # 2024-01-02T00:00:00Z


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_bars_csv_any_case_iso_dates(tmp_path: Path) -> None:
    """Mixed-case headers and ISO dates load into int64 ns and float64 columns."""
    p = _write(tmp_path, "spy.csv", "date,OPEN,High,low,Close,VOLUME\n"
               "2024-01-02,1,2,0.5,1.5,100\n2024-01-03,1.5,2.5,1,2,200\n")
    b = load_bars(p)
    assert b.ts.tolist() == [T0, T0 + DAY]
    assert b.close.tolist() == [1.5, 2.0]
    assert b.volume.dtype == np.float64 and b.ts.dtype == np.int64
    assert b.symbols == ["spy"] and b.symbol_codes.tolist() == [0, 0]
    assert detect_kind(p) == "bars"


@pytest.mark.parametrize(
    "cell,scale", [("1704153600", 10**9), ("1704153600000", 10**6), ("1704153600000000000", 1)]
)
def test_bars_epoch_units_by_magnitude(tmp_path: Path, cell: str, scale: int) -> None:
    """Epoch seconds, milliseconds and nanoseconds are all recognised."""
    p = _write(tmp_path, "b.csv", f"Date,Open,High,Low,Close,Volume\n{cell},1,1,1,1,1\n")
    assert load_bars(p).ts.tolist() == [int(cell) * scale]


def test_iso_with_offsets_and_mixed_forms(tmp_path: Path) -> None:
    """A zone offset is honoured; naive times are UTC; mixed forms take the slow path."""
    p = _write(tmp_path, "t.csv", "ts,price,qty\n2024-01-02T05:30:00+05:30,1,1\n"
               "2024-01-02T00:00:01Z,1,1\n1704153602000000000,1,1\n")
    assert load_ticks(p).ts.tolist() == [T0, T0 + 10**9, T0 + 2 * 10**9]


def test_ticks_with_symbols_and_sides(tmp_path: Path) -> None:
    """Symbols become a small list plus codes; sides become 1/-1/0."""
    p = _write(tmp_path, "t.csv", "TS,Symbol,Price,Size,Side\n1,A,10,1,buy\n2,B,20,2,SELL\n3,A,11,3,\n")
    t = load_ticks(p)
    assert t.symbols == ["A", "B"] and t.symbol_codes.tolist() == [0, 1, 0]
    assert t.side.tolist() == [1, -1, 0]
    assert t.select("A").price.tolist() == [10.0, 11.0]
    assert detect_kind(p) == "ticks"


def test_parquet_roundtrip(tmp_path: Path) -> None:
    """Parquet files with a timestamp column load the same as CSV."""
    p = tmp_path / "t.parquet"
    pq.write_table(pa.table({"ts": pa.array([T0, T0 + 5], type=pa.timestamp("ns", tz="UTC")),
                             "price": [1.0, 2.0], "qty": [3, 4]}), p)
    t = load_ticks(p)
    assert t.ts.tolist() == [T0, T0 + 5] and t.qty.tolist() == [3.0, 4.0]


def test_missing_column_named(tmp_path: Path) -> None:
    p = _write(tmp_path, "b.csv", "Date,Open,High,Low,Volume\n2024-01-02,1,1,1,1\n")
    with pytest.raises(DataError, match=r"b\.csv: missing column 'close'"):
        load_bars(p)


def test_unparsable_value_names_column_and_row(tmp_path: Path) -> None:
    rows = "".join(f"{i},1,1\n" for i in range(1, 5))
    p = _write(tmp_path, "t.csv", "ts,price,qty\n" + rows + "5,abc,1\n")
    with pytest.raises(DataError, match=r"t\.csv: column 'price', row 5: not a number: 'abc'") as ei:
        load_ticks(p)
    assert ei.value.context["row"] == 5


@pytest.mark.parametrize("cell", ["nan", "NaN", ""])
def test_nan_rejected(tmp_path: Path, cell: str) -> None:
    p = _write(tmp_path, "t.csv", f"ts,price,qty\n1,1,1\n2,{cell},1\n")
    with pytest.raises(DataError, match=r"column 'price', row 2: empty or NaN"):
        load_ticks(p)


def test_inf_rejected(tmp_path: Path) -> None:
    p = _write(tmp_path, "t.csv", "ts,price,qty\n1,1,1\n2,1,inf\n")
    with pytest.raises(DataError, match=r"column 'qty', row 2: value inf is not finite"):
        load_ticks(p)


@pytest.mark.parametrize(("body", "message"), [
    ("1,1,1\n2,0,1\n", r"column 'price', row 2: value 0.0 must be > 0"),
    ("1,-3,1\n", r"column 'price', row 1: value -3.0 must be > 0"),
    ("1,1,1\n2,1,-0.5\n", r"column 'qty', row 2: value -0.5 must be >= 0"),
])
def test_tick_prices_must_be_positive_and_sizes_not_negative(tmp_path: Path, body: str, message: str) -> None:
    p = _write(tmp_path, "t.csv", "ts,price,qty\n" + body)
    with pytest.raises(DataError, match=message):
        load_ticks(p)
    assert len(load_ticks(_write(tmp_path, "ok.csv", "ts,price,qty\n1,1,0\n"))) == 1  # a zero size is a print


@pytest.mark.parametrize(("row", "message"), [
    ("2024-01-02,0,2,0.5,1.5,10", r"column 'Open', row 2: value 0.0 must be > 0"),
    ("2024-01-02,1,2,0.5,1.5,-1", r"column 'Volume', row 2: value -1.0 must be >= 0"),
    ("2024-01-02,1,0.5,2,1.5,10", r"row 2: high 0.5 is below low 2.0"),
])
def test_bar_prices_volumes_and_ranges_are_checked(tmp_path: Path, row: str, message: str) -> None:
    p = _write(tmp_path, "b.csv", f"Date,Open,High,Low,Close,Volume\n2024-01-01,1,2,0.5,1.5,10\n{row}\n")
    with pytest.raises(DataError, match=message):
        load_bars(p)


def test_bad_timestamp_named(tmp_path: Path) -> None:
    p = _write(tmp_path, "t.csv", "ts,price,qty\n2024-01-02,1,1\nyesterday,1,1\n")
    with pytest.raises(DataError, match=r"column 'ts', row 2: not a timestamp: 'yesterday'"):
        load_ticks(p)


def test_unsorted_rejected_per_symbol(tmp_path: Path) -> None:
    """Time may not go back within a symbol; another symbol's rows are separate."""
    ok = _write(tmp_path, "ok.csv", "Date,Symbol,Open,High,Low,Close,Volume\n"
                "2024-01-02,A,1,1,1,1,1\n2024-01-03,A,1,1,1,1,1\n2024-01-02,B,1,1,1,1,1\n")
    assert len(load_bars(ok).by_time()) == 3
    bad = _write(tmp_path, "bad.csv", "ts,price,qty\n5,1,1\n6,1,1\n4,1,1\n")
    with pytest.raises(DataError, match=r"column 'ts', row 3: timestamp goes back in time"):
        load_ticks(bad)
    dup = _write(tmp_path, "dup.csv", "Date,Open,High,Low,Close,Volume\n"
                 "2024-01-02,1,1,1,1,1\n2024-01-02,1,1,1,1,1\n")
    with pytest.raises(DataError, match=r"row 2: timestamp does not increase"):
        load_bars(dup)


def test_bad_side_and_kind(tmp_path: Path) -> None:
    p = _write(tmp_path, "t.csv", "ts,price,qty,side\n1,1,1,buy\n2,1,1,up\n")
    with pytest.raises(DataError, match=r"column 'side', row 2: side must be buy or sell, got 'up'"):
        load_ticks(p)
    q = _write(tmp_path, "x.csv", "a,b\n1,2\n")
    with pytest.raises(DataError, match="neither a bar file"):
        detect_kind(q)
    with pytest.raises(DataError, match="file not found"):
        load_ticks(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="unknown file type"):
        load_ticks(tmp_path / "nope.json")


@pytest.mark.parametrize("ext", ["csv", "parquet"])
def test_write_table_nan_as_empty(tmp_path: Path, ext: str) -> None:
    """Writers put NaN as empty/null, and the ts column reads back as the same instant."""
    out = tmp_path / f"o.{ext}"
    write_table(out, {"ts": np.array([T0, T0 + 1]), "x": np.array([np.nan, 2.5])})
    back = pq.read_table(out) if ext == "parquet" else None
    if ext == "csv":
        lines = out.read_text().splitlines()
        assert lines[1].endswith(",") and lines[2].endswith(",2.5")
        assert load_ticks_like(out) == [T0, T0 + 1]
    else:
        assert back is not None and back.column("x").to_pylist() == [None, 2.5]
        assert back.column("ts").cast(pa.int64()).to_pylist() == [T0, T0 + 1]


def load_ticks_like(path: Path) -> list[int]:
    import pyarrow.csv as pacsv

    col = pacsv.read_csv(path).column("ts")
    return col.cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64()).to_pylist()


def test_numeric_sides(tmp_path: Path) -> None:
    p = _write(tmp_path, "t.csv", "ts,price,qty,side\n1,1,1,1\n2,1,1,-1\n3,1,1,0\n")
    assert load_ticks(p).side.tolist() == [1, -1, 0]


def test_numeric_columns_read_from_buffers_keep_values_offsets_and_chunks() -> None:
    """_numpy reads Arrow data buffers directly: sliced chunks (offsets), several chunks, empty ones
    and a dtype change must give what to_numpy gives, as new writable arrays."""
    from omnid.datafiles import _numpy

    base = pa.array(np.arange(10, dtype=np.int64))
    col = pa.chunked_array([base.slice(3, 4), pa.array(np.array([], dtype=np.int64)), base.slice(8, 2)])
    got = _numpy(col, np.int64)
    assert got.tolist() == [3, 4, 5, 6, 8, 9]
    got[0] = -1  # writable, and not Arrow's memory
    assert base.to_pylist()[3] == 3
    floats = pa.chunked_array([pa.array([1.5, 2.5]), pa.array([3.25])])
    assert _numpy(floats, np.float64).tolist() == [1.5, 2.5, 3.25]
    assert _numpy(pa.array(np.array([1, 2], dtype=np.int32)), np.intp).dtype == np.intp
    assert _numpy(pa.chunked_array([], type=pa.int64()), np.int64).shape == (0,)
    with_null = pa.chunked_array([pa.array([1.0, None, 3.0])])  # not read from the buffer
    assert np.isnan(_numpy(with_null, np.float64)[1])


def test_loading_tick_files_does_not_import_pandas(tmp_path: Path) -> None:
    """pyarrow's to_numpy, scalars and dataset module import pandas when it is installed (0.3-0.45 s
    per `omnid backtest`): loading CSV and Parquet tick files, empty side cells included, avoids them."""
    import subprocess
    import sys

    csv_path = tmp_path / "t.csv"
    csv_path.write_text("ts,symbol,price,qty,side\n1,A,10.5,1,buy\n2,A,10.6,2,\n3,B,9.5,1,sell\n")
    pq_path = tmp_path / "t.parquet"
    write_table(pq_path, {"ts": np.array([1, 2], dtype=np.int64), "price": np.array([1.0, 2.0]),
                          "qty": np.array([1.0, 1.0])})
    code = (
        "import sys\n"
        "from omnid.datafiles import load_ticks\n"
        f"a = load_ticks({str(csv_path)!r})\n"
        f"b = load_ticks({str(pq_path)!r})\n"
        "assert a.side.tolist() == [1, 0, -1], a.side\n"
        "assert b.price.tolist() == [1.0, 2.0]\n"
        "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
