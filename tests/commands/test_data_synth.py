"""`omnid data synth`: seeded files that the backtester and `omnid features` read back."""

from __future__ import annotations

from pathlib import Path

from omnid.cli import app
from omnid.datafiles import load_bars, load_ticks
from typer.testing import CliRunner


def test_bars_and_ticks_round_trip_and_are_deterministic(tmp_path: Path) -> None:
    r = CliRunner()
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    for p in (a, b):
        assert r.invoke(app, ["data", "synth", str(p), "--rows", "50", "--seed", "3"]).exit_code == 0
    assert a.read_bytes() == b.read_bytes()
    bars = load_bars(a)
    assert len(bars.ts) == 50 and (bars.high >= bars.low).all()
    t = tmp_path / "t.parquet"
    res = r.invoke(app, ["data", "synth", str(t), "--kind", "ticks", "--rows", "500", "--instruments", "3"])
    assert res.exit_code == 0, res.output
    ticks = load_ticks(t)
    assert len(ticks.ts) == 500 and len(ticks.symbols) == 3


def test_bad_arguments_exit_2_and_say_why(tmp_path: Path) -> None:
    r = CliRunner()
    res = r.invoke(app, ["data", "synth", str(tmp_path / "x.txt")])
    assert res.exit_code == 2 and ".csv or .parquet" in res.output
    res = r.invoke(app, ["data", "synth", str(tmp_path / "x.csv"), "--kind", "quotes"])
    assert res.exit_code == 2 and "expected bars or ticks" in res.output
    res = r.invoke(app, ["data", "synth", str(tmp_path / "x.csv"), "--rows", "0"])
    assert res.exit_code == 2
    res = r.invoke(app, ["data", "synth", str(tmp_path / "missing" / "x.csv")])
    assert res.exit_code == 2 and "x.csv" in res.output
