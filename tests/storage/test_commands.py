"""``omnid db`` and ``omnid data`` end to end on a SQLite config, through the real CLI app."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omnid.cli import app
from omnid.datafiles import load_bars, load_ticks, write_table
from typer.testing import CliRunner

MIN = 60_000_000_000
T0 = 1_795_000_200 * 1_000_000_000 // (10 * MIN) * (10 * MIN)


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "omnid.toml"
    cfg.write_text('[omnid]\ndata_dir = "var"\n\n[storage]\ndefault_sink = "sqlite"\n')
    return cfg


def test_migrate_import_candles_export(tmp_path: Path) -> None:
    """db migrate, data import (twice), candles, build-bars and export round-trip through files."""
    runner = CliRunner()
    cfg = _config(tmp_path)
    r = runner.invoke(app, ["db", "migrate", "-c", str(cfg)])
    assert r.exit_code == 0, r.output
    assert "sqlite:" in r.output and (tmp_path / "var" / "omnid.sqlite").exists()

    ticks = tmp_path / "t.parquet"
    n = 300
    write_table(ticks, {"ts": T0 + np.arange(n, dtype=np.int64) * 2_000_000_000,
                        "price": 50 + np.arange(n) * 0.01, "qty": np.ones(n)})
    for _ in range(2):
        r = runner.invoke(app, ["data", "import", str(ticks), "--symbol", "ETHUSDT", "-c", str(cfg)])
        assert r.exit_code == 0, r.output
    assert "300 ticks rows for ETHUSDT.SIM" in r.output

    start = str(T0)
    r = runner.invoke(app, ["data", "candles", "ETHUSDT", "--interval", "1m", "--from", start, "--json",
                            "-c", str(cfg)])
    assert r.exit_code == 0, r.output
    assert len(r.output.strip().splitlines()) == 10

    r = runner.invoke(app, ["data", "build-bars", "ETHUSDT.SIM", "--interval", "5m", "-c", str(cfg)])
    assert r.exit_code == 0 and r.output.startswith("2 bars"), r.output

    out = tmp_path / "bars.csv"
    r = runner.invoke(app, ["data", "export", "ETHUSDT", str(out), "--interval", "1m", "-c", str(cfg)])
    assert r.exit_code == 0, r.output
    bars = load_bars(out)
    assert len(bars) == 10 and bars.symbols == ["ETHUSDT.SIM"] and bars.open[0] == 50.0

    out_t = tmp_path / "ticks.csv"
    r = runner.invoke(app, ["data", "export", "ETHUSDT.SIM", str(out_t), "--ticks", "-c", str(cfg)])
    assert r.exit_code == 0, r.output
    assert len(load_ticks(out_t)) == 300

    r = runner.invoke(app, ["db", "status", "-c", str(cfg)])
    assert r.exit_code == 0 and "default sink: sqlite" in r.output


def test_bad_input_exits_2_naming_the_problem(tmp_path: Path) -> None:
    """A file that is neither bars nor ticks, or a bad time, is exit 2 with a clear message."""
    runner = CliRunner()
    cfg = _config(tmp_path)
    bad = tmp_path / "x.csv"
    bad.write_text("a,b\n1,2\n")
    r = runner.invoke(app, ["data", "import", str(bad), "-c", str(cfg)])
    assert r.exit_code == 2 and "neither a bar file" in r.output
    r = runner.invoke(app, ["data", "candles", "X.SIM", "--from", "yesterday-ish", "-c", str(cfg)])
    assert r.exit_code == 2 and "--from" in r.output
