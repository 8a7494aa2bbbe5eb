"""``omnid features`` end to end: TA-Lib parity through the command, tick and bar sources, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import talib
from omnid.cli import app
from typer.testing import CliRunner

from tests.features.series import assert_parity, gbm

S = 1_000_000_000
DAY = 86_400 * S
T0 = 1_704_153_600 * S  # 2024-01-02T00:00:00Z


def _read(path: Path) -> pa.Table:
    return pq.read_table(path) if path.suffix == ".parquet" else pacsv.read_csv(path)


def _col(t: pa.Table, name: str) -> np.ndarray:
    return np.asarray(t.column(name).to_numpy(zero_copy_only=False), dtype=np.float64)


def _run(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["features", *args])
    return res.exit_code, res.output


@pytest.mark.parametrize("ext", ["csv", "parquet"])
def test_bar_file_parity_with_talib(tmp_path: Path, ext: str) -> None:
    s = gbm(300, seed=3)
    data = tmp_path / "SPY.csv"
    lines = ["Date,Open,High,Low,Close,Volume"]
    cl, hi, lo, vo = (a.tolist() for a in (s.close, s.high, s.low, s.volume))
    for i in range(300):
        day = np.datetime64(T0 + i * DAY, "ns").astype("datetime64[D]")
        lines.append(f"{day},{cl[i]!r},{hi[i]!r},{lo[i]!r},{cl[i]!r},{vo[i]!r}")
    data.write_text("\n".join(lines) + "\n")
    out = tmp_path / f"out.{ext}"
    code, text = _run("--data", str(data), "--indicators",
                      "sma:10,ema:20,rsi:14,atr:14,macd:12:26:9,bbands:20:2,vwap", "--out", str(out))
    assert code == 0, text
    t = _read(out)
    assert t.column_names == [
        "ts", "symbol", "close", "sma_10", "ema_20", "rsi_14", "atr_14", "macd_12_26_9",
        "macd_12_26_9_signal", "macd_12_26_9_hist", "bbands_20_2_upper", "bbands_20_2_middle",
        "bbands_20_2_lower", "vwap",
    ]
    c = s.close
    assert_parity(_col(t, "sma_10"), talib.SMA(c, 10))
    assert_parity(_col(t, "ema_20"), talib.EMA(c, 20))
    assert_parity(_col(t, "rsi_14"), talib.RSI(c, 14))
    assert_parity(_col(t, "atr_14"), talib.ATR(s.high, s.low, c, 14))
    for col, ref in zip(("macd_12_26_9", "macd_12_26_9_signal", "macd_12_26_9_hist"),
                        talib.MACD(c, 12, 26, 9), strict=True):
        assert_parity(_col(t, col), ref)
    for col, ref in zip(("upper", "middle", "lower"), talib.BBANDS(c, 20, 2, 2, 0), strict=True):
        assert_parity(_col(t, f"bbands_20_2_{col}"), ref)
    # Daily crypto-calendar sessions: each bar is its own session, so VWAP is its typical price.
    np.testing.assert_allclose(_col(t, "vwap"), (s.high + s.low + c) / 3, rtol=1e-12)
    assert t.column("symbol").to_pylist()[0] == "SPY"
    ts = t.column("ts").cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64()).to_pylist()
    assert ts[:2] == [T0, T0 + DAY]


def test_tick_file_session_vwap_and_ema(tmp_path: Path) -> None:
    """Per-trade rows: session VWAP resets at UTC midnight (crypto calendar), EMA matches TA-Lib."""
    rng = np.random.default_rng(5)
    n = 3000
    ts = T0 + np.cumsum(rng.integers(1, 120, n)) * S  # spans more than one UTC day
    price = 50 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    qty = rng.exponential(2.0, n)
    data = tmp_path / "ticks.csv"
    data.write_text("ts,symbol,price,qty,side\n" + "".join(
        f"{a},ETHUSDT,{b!r},{q!r},{'buy' if i % 2 else 'sell'}\n"
        for i, (a, b, q) in enumerate(zip(ts.tolist(), price.tolist(), qty.tolist(), strict=True))))
    out = tmp_path / "o.parquet"
    code, text = _run("--data", str(data), "-i", "vwap,ema:30", "--out", str(out))
    assert code == 0, text
    t = _read(out)
    day = ts // DAY
    assert len(np.unique(day)) > 1
    ref = np.empty(n)
    for d in np.unique(day):
        m = day == d
        ref[m] = np.cumsum(price[m] * qty[m]) / np.cumsum(qty[m])
    np.testing.assert_allclose(_col(t, "vwap"), ref, rtol=1e-9)
    assert_parity(_col(t, "ema_30"), talib.EMA(price, 30))


def test_tick_file_to_bars(tmp_path: Path) -> None:
    """--source 1m: one row per completed 1m bar, the last bar included; SMA over bar closes."""
    data = tmp_path / "t.csv"
    rows = [(T0 + 5 * S, 10.0), (T0 + 50 * S, 11.0), (T0 + 61 * S, 12.0), (T0 + 200 * S, 13.0),
            (T0 + 230 * S, 15.0)]
    data.write_text("ts,price,qty\n" + "".join(f"{a},{p},1\n" for a, p in rows))
    out = tmp_path / "o.csv"
    code, text = _run("--data", str(data), "-i", "sma:2", "--source", "1m", "--out", str(out))
    assert code == 0, text
    t = _read(out)
    assert t.column("close").to_pylist() == [11.0, 12.0, 15.0]  # minute 2 had no trades: no bar
    assert _col(t, "sma_2")[1:].tolist() == [11.5, 13.5]
    assert np.isnan(_col(t, "sma_2")[0])
    lines = out.read_text().splitlines()
    assert lines[1].endswith(",11,")  # not warmed up: empty


def test_bad_spec_exits_2_naming_the_item(tmp_path: Path) -> None:
    data = tmp_path / "t.csv"
    data.write_text("ts,price,qty\n1,1,1\n")
    code, text = _run("--data", str(data), "-i", "sma:10,macd:26:12:9,wat:3", "--out", str(tmp_path / "o.csv"))
    assert code == 2
    assert "macd:26:12:9: fast period 26 must not exceed slow period 12" in text
    assert "wat:3: unknown indicator 'wat'" in text
    assert not (tmp_path / "o.csv").exists()


def test_bad_data_exits_2_naming_the_row(tmp_path: Path) -> None:
    data = tmp_path / "t.csv"
    data.write_text("ts,price,qty\n1,1,1\n2,nan,1\n")
    code, text = _run("--data", str(data), "-i", "sma:2", "--out", str(tmp_path / "o.csv"))
    assert code == 2 and "column 'price', row 2" in text
    bars = tmp_path / "b.csv"
    bars.write_text("Date,Open,High,Low,Close,Volume\n2024-01-02,1,1,2,1,1\n")
    code, text = _run("--data", str(bars), "-i", "sma:2", "--out", str(tmp_path / "o.csv"))
    assert code == 2 and "row 1: high 1.0 is below low 2.0" in text  # the loader names the row
    code, text = _run("--data", str(bars), "-i", "sma:2", "--source", "1m", "--out", str(tmp_path / "o.csv"))
    assert code == 2 and "--source is for tick files" in text


def test_multi_symbol_bar_file_correlation(tmp_path: Path) -> None:
    """Two symbols in one file: rows in time order; corr equals TA-Lib CORREL of their returns."""
    a = gbm(120, seed=1).close
    b = a * 0.6 + gbm(120, seed=2).close * 0.4
    lines = ["timestamp,symbol,open,high,low,close,volume"]
    for sym, c in (("AAA", a.tolist()), ("BBB", b.tolist())):  # grouped by symbol, as files often are
        lines += [f"{(T0 + i * DAY) // S},{sym},{x!r},{x!r},{x!r},{x!r},10" for i, x in enumerate(c)]
    data = tmp_path / "multi.csv"
    data.write_text("\n".join(lines) + "\n")
    out = tmp_path / "o.csv"
    code, text = _run("--data", str(data), "-i", "sma:5,corr:BBB.FILE:10", "--out", str(out))
    assert code == 0, text
    t = _read(out)
    syms = np.array(t.column("symbol").to_pylist())
    assert syms[:4].tolist() == ["AAA", "BBB", "AAA", "BBB"]
    corr = _col(t, "corr_BBB.FILE_10")[syms == "AAA"]
    ref = talib.CORREL(np.r_[np.nan, a[1:] / a[:-1] - 1], np.r_[np.nan, b[1:] / b[:-1] - 1], 10)
    assert_parity(corr, ref)
    assert_parity(_col(t, "sma_5")[syms == "BBB"], talib.SMA(b, 5))
