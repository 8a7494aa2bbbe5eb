"""``omnid backtest`` end to end through the real CLI: bar and tick files, text and JSON output,
determinism, next-bar-open fills, --close-at-end, and clear errors (exit 2) on bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from omnid.cli import app
from omnid.sim.synthetic import MarketSpec, generate_bars, generate_ticks, write_bars, write_ticks
from typer.testing import CliRunner

runner = CliRunner()


@pytest.fixture(scope="module")
def bar_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bars") / "SYN.csv"
    write_bars(path, generate_bars(300, seed=21))
    return path


@pytest.fixture(scope="module")
def tick_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ticks") / "ticks.parquet"
    write_ticks(path, generate_ticks(20_000, instruments=2, seed=5))
    return path


def _run(*args: str) -> tuple[int, str, str]:
    r = runner.invoke(app, ["backtest", *args])
    return r.exit_code, r.stdout, r.stderr


def _json(*args: str) -> dict:  # type: ignore[type-arg]
    code, out, err = _run(*args, "--json")
    assert code == 0, err
    return json.loads(out)


SMA = ("--strategy", "sma_cross", "--set", "fast=5", "--set", "slow=20", "--set", "mode=long_short")
METRIC_KEYS = {"return_pct", "cagr_pct", "volatility_pct", "sharpe", "sortino", "max_drawdown_pct", "trades",
               "win_rate_pct", "profit_factor", "expectancy", "exposure_pct", "equity_final", "commissions"}


def test_bar_file_text_report_has_every_metric_and_the_trades(bar_file: Path) -> None:
    code, out, err = _run("--data", str(bar_file), *SMA, "--commission", "0.001")
    assert code == 0, err
    for label in ("Total return %", "CAGR %", "Volatility (ann.) %", "Sharpe", "Sortino", "Max drawdown %",
                  "Trades", "Win rate %", "Profit factor", "Expectancy", "Exposure %", "Final equity",
                  "Commissions paid", "Equity curve (300 samples"):
        assert label in out
    assert "SYN.SIM" in out and "(300 bars)" in out


def test_bar_file_json_is_one_object_with_metrics_trades_and_equity(bar_file: Path) -> None:
    doc = _json("--data", str(bar_file), *SMA, "--commission", "0.001", "--cash", "5000")
    assert set(doc["metrics"]) >= METRIC_KEYS
    assert doc["kind"] == "bars" and doc["events"] == 300
    assert len(doc["equity"]) == 300 and doc["equity"][0]["equity"] == 5000
    closed = [t for t in doc["trades"] if not t["open"]]
    assert doc["metrics"]["trades"] == len(closed) > 0
    assert math.isclose(doc["metrics"]["equity_final"], doc["equity"][-1]["equity"])
    assert doc["metrics"]["commissions"] > 0


def test_same_input_gives_identical_output(bar_file: Path, tick_file: Path) -> None:
    for data in (bar_file, tick_file):
        a = _run("--data", str(data), *SMA, "--commission", "0.002", "--json")
        b = _run("--data", str(data), *SMA, "--commission", "0.002", "--json")
        assert a[0] == 0 and a[1] == b[1]


def test_decisions_on_a_close_fill_at_the_next_open(bar_file: Path) -> None:
    """Every entry happens at the open of the bar after the close where the averages crossed."""
    doc = _json("--data", str(bar_file), *SMA)
    bars = generate_bars(300, seed=21)
    close = bars.close
    fast = np.convolve(close, np.ones(5) / 5, "valid")[15:]
    slow = np.convolve(close, np.ones(20) / 20, "valid")
    side = np.sign(fast - slow)
    crosses = [i + 19 for i in range(1, side.size) if side[i] != side[i - 1] and side[i] and side[i - 1]]
    entries = doc["trades"]
    assert len(entries) == len(crosses)
    for t, signal_bar in zip(entries, crosses, strict=True):
        fill_bar = signal_bar + 1
        assert t["entry_ts"] == int(bars.ts[fill_bar])  # stamped at the fill bar's open
        assert t["entry_price"] == bars.open[fill_bar]
        assert t["entry_index"] == fill_bar


def test_open_position_is_marked_not_closed_unless_close_at_end(bar_file: Path) -> None:
    args = ("--data", str(bar_file), *SMA, "--commission", "0.001")
    marked = _json(*args)
    closed = _json(*args, "--close-at-end")
    last = marked["trades"][-1]
    assert last["open"], "this data set ends with a position open"
    end = closed["trades"][-1]
    assert not end["open"] and end["exit_price"] == last["exit_price"]  # the last close
    assert closed["metrics"]["trades"] == marked["metrics"]["trades"] + 1
    exit_fee = abs(end["qty"]) * end["exit_price"] * 0.001
    assert math.isclose(closed["metrics"]["equity_final"], marked["metrics"]["equity_final"] - exit_fee)
    assert math.isclose(closed["metrics"]["commissions"], marked["metrics"]["commissions"] + exit_fee)


def test_tick_file_text_and_json(tick_file: Path) -> None:
    code, out, err = _run("--data", str(tick_file), "--strategy", "sma_cross", "--set", "kind=ema",
                          "--set", "fast=10", "--set", "slow=50", "--set", "qty=1")
    assert code == 0, err
    assert "(20000 ticks)" in out and "SYM00.SIM" in out and "SYM01.SIM" in out
    doc = _json("--data", str(tick_file), "--strategy", "sma_cross", "--set", "kind=ema", "--set", "fast=10",
                "--set", "slow=50", "--set", "qty=1")
    assert doc["kind"] == "ticks" and doc["events"] == 20_000
    assert doc["metrics"]["trades"] > 10
    assert {abs(t["qty"]) for t in doc["trades"]} == {1.0}
    ts = [p["ts"] for p in doc["equity"]]
    assert ts == sorted(ts) and len(ts) > 100


def test_momentum_runs_on_a_tick_file(tick_file: Path) -> None:
    doc = _json("--data", str(tick_file), "--strategy", "momentum", "--cash", "100000")
    assert doc["metrics"]["trades"] >= 1


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("Date,Open,High,Low,Close,Volume\n2026-01-01,1,2,0.5,1.5,10\n2026-01-02,1,2,x,1.5,10\n", "row 2"),
        ("Date,Open,High,Low,Volume\n2026-01-01,1,2,0.5,10\n", "neither a bar file"),
        ("ts,price,qty\n1767571200000000000,10,1\n1767571100000000000,10,1\n", "goes back in time"),
        ("", "empty"),
    ],
)
def test_bad_input_file_exits_2_with_a_clear_message(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    code, out, err = _run("--data", str(path), "--strategy", "sma_cross")
    assert code == 2
    assert needle in err and str(path) in err and out == ""


def test_missing_file_unknown_strategy_and_bad_parameter_exit_2(bar_file: Path, tmp_path: Path) -> None:
    code, _, err = _run("--data", str(tmp_path / "nope.csv"), "--strategy", "sma_cross")
    assert code == 2 and "file not found" in err
    code, _, err = _run("--data", str(bar_file), "--strategy", "no_such")
    assert code == 2 and "unknown kind 'no_such'" in err
    code, _, err = _run("--data", str(bar_file), "--strategy", "sma_cross", "--set", "fast=50", "--set", "slow=5")
    assert code == 2 and "slow" in err
    code, _, err = _run("--data", str(bar_file), "--strategy", "sma_cross", "--set", "nonsense")
    assert code == 2 and "key=value" in err
    code, _, err = _run("--data", str(bar_file), "--strategy", "sma_cross", "--cash", "-5")
    assert code == 2 and "--cash" in err


def test_progress_bar_on_stderr_for_long_runs_but_never_with_json(
    tick_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import omnid.commands.backtest as cmd

    monkeypatch.setenv("OMNID_PROGRESS", "1")
    monkeypatch.setattr(cmd, "PROGRESS_MIN_EVENTS", 1_000)
    code, out, err = _run("--data", str(tick_file), "--strategy", "sma_cross", "--set", "qty=1")
    assert code == 0 and "/20.0k" in err and "ev/s" in err and "Total return %" in out
    code, out, err = _run("--data", str(tick_file), "--strategy", "sma_cross", "--set", "qty=1", "--json")
    assert code == 0 and err == "" and json.loads(out)["events"] == 20_000
    monkeypatch.setattr(cmd, "PROGRESS_MIN_EVENTS", 1_000_000)
    code, out, err = _run("--data", str(tick_file), "--strategy", "sma_cross", "--set", "qty=1")
    assert code == 0 and err == ""


def test_identical_output_across_processes_and_hash_seeds(tick_file: Path) -> None:
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "omnid.cli", "backtest", "--data", str(tick_file), "--strategy", "momentum",
           "--commission", "0.001", "--json"]
    outs = [
        subprocess.run(cmd, capture_output=True, check=True, env={"PYTHONHASHSEED": seed, "PATH": ""}).stdout
        for seed in ("1", "2")
    ]
    assert outs[0] == outs[1] and json.loads(outs[0])["events"] == 20_000


def test_tick_decisions_fill_at_the_next_tick(tmp_path: Path) -> None:
    """SMA(5)/SMA(20) on ticks with a fixed size: each entry fills at the price of the tick after
    the one on which the averages crossed. Prices are on a fine grid so the averages never tie
    (an exact tie would depend on summation order)."""
    data = generate_ticks(3000, seed=8, specs=[MarketSpec("ONE", price=50.0, tick_size=1e-9)])
    path = tmp_path / "one.csv"
    write_ticks(path, data, with_symbol=False)
    doc = _json("--data", str(path), "--strategy", "sma_cross", "--set", "fast=5", "--set", "slow=20",
                "--set", "qty=2", "--set", "mode=long_short")
    px = data.price
    fast = np.convolve(px, np.ones(5) / 5, "valid")[15:]
    slow = np.convolve(px, np.ones(20) / 20, "valid")
    side = np.sign(fast - slow)
    crosses, state = [], 0
    for i, s in enumerate(side.tolist()):
        if s and s != state:
            if state:
                crosses.append(i + 19)
            state = s
    entries = doc["trades"]
    assert len(entries) == len(crosses) > 20
    for t, signal in zip(entries, crosses, strict=True):
        assert t["entry_ts"] == int(data.ts[signal + 1])
        assert t["entry_price"] == px[signal + 1]
        assert abs(t["qty"]) == 2


def test_a_strategy_that_raises_is_reported_and_exits_1(bar_file: Path) -> None:
    """User code that raises mid-run: the engine disables it, the report covers the run so far,
    stderr names the error and the exit code is 1."""
    from omnid.model import Bar
    from omnid.strategies.base import Intents, Strategy
    from omnid.strategies.registry import STRATEGY_KINDS, register

    class Explodes(Strategy):
        kind = "test_explodes_on_bar_50"

        def on_start(self) -> Intents:
            self.seen = 0
            return None

        def on_price(self, instrument_id: str, price: float, ts: int) -> Intents:
            return None

        def on_bar(self, bar: Bar) -> Intents:
            self.seen += 1
            if self.seen == 50:
                raise ZeroDivisionError("bar fifty")
            return None

    register(Explodes)
    try:
        code, out, err = _run("--data", str(bar_file), "--strategy", Explodes.kind, "--json")
    finally:
        STRATEGY_KINDS.pop(Explodes.kind, None)
    assert code == 1
    assert "ZeroDivisionError" in err and "bar fifty" in err
    doc = json.loads(out)
    assert "bar fifty" in doc["strategy_error"] and doc["events"] == 300


def test_long_trade_lists_are_shortened_in_the_text_report_only(tick_file: Path) -> None:
    from omnid.commands.backtest import render_text
    from omnid.sim.runner import BacktestSpec, run_backtest

    res = run_backtest(BacktestSpec(data=str(tick_file), strategy="sma_cross", params={"qty": 1}))
    n = len(res.trades)
    assert n > 10
    text = render_text(res, max_trade_rows=10)
    assert f"... {n - 10} more trades" in text
    rows = [ln for ln in text.splitlines() if ".SIM " in ln]
    assert len(rows) == 10 and rows[0].split()[0] == "1" and rows[-1].split()[0] == str(n)


def test_short_runs_carry_warnings_in_json_and_text(tick_file: Path, bar_file: Path) -> None:
    """A few days of ticks: annualised figures are flagged (numbers unchanged); 300 daily bars are not."""
    doc = _json("--data", str(tick_file), *SMA, "--cash", "100000")
    assert doc["warnings"] and "daily return" in doc["warnings"][0]
    code, out, _ = _run("--data", str(tick_file), *SMA, "--cash", "100000")
    assert code == 0 and f"Warning: {doc['warnings'][0]}" in out
    assert _json("--data", str(bar_file), *SMA)["warnings"] == []


def test_huge_ratios_print_in_exponent_form() -> None:
    from omnid.commands.backtest import _fmt

    assert _fmt(-1.4503333669160392e42, "{:.4f}") == "-1.4503e+42"
    assert _fmt(1.5, "{:.4f}") == "1.5000" and _fmt(math.nan, "{:.4f}") == "n/a"
    assert _fmt(math.inf, "{:.4f}") == "inf"


def _gap_bars(tmp_path: Path) -> Path:
    """A cross up on the 5th close (99), then the open gaps to 112."""
    bars = [(100, 101, 99, 100), (100, 100, 97, 98), (98, 98, 95, 96), (96, 96, 93, 94), (94, 99, 94, 99),
            (112, 113, 111, 112), (112, 113, 111, 112), (112, 113, 111, 112)]
    path = tmp_path / "gap.csv"
    path.write_text("Date,Open,High,Low,Close,Volume\n" + "".join(
        f"2024-01-{i + 1:02d},{o},{h},{lo},{c},1000\n" for i, (o, h, lo, c) in enumerate(bars)))
    return path


def test_entries_that_never_traded_are_explained(tmp_path: Path) -> None:
    path = _gap_bars(tmp_path)
    common = ("--data", str(path), "--strategy", "sma_cross", "--set", "fast=2", "--set", "slow=3")
    # 105 buys one unit at the decision's close of 99, none at the gapped open of 112.
    doc = _json(*common, "--cash", "105")
    assert doc["trades"] == [] and doc["metrics"]["equity_final"] == 105.0
    assert any(w.startswith("1 all-in entries cancelled at the fill") for w in doc["warnings"])
    # 50 does not buy one unit even at the decision: the risk gate says so.
    doc = _json(*common, "--cash", "50")
    assert any(w.startswith("the risk gate denied 1 order by rule rounding") for w in doc["warnings"])
    code, out, _ = _run(*common, "--cash", "105")
    assert code == 0 and "Warning: 1 all-in entries cancelled at the fill" in out
    assert "Max drawdown %                    0.0000" in out  # not -0.0000
    assert "Trades (0):" in out


def test_the_trade_list_says_how_many_are_still_open(bar_file: Path) -> None:
    code, out, _ = _run("--data", str(bar_file), "--strategy", "sma_cross", "--set", "mode=long_short")
    doc = _json("--data", str(bar_file), "--strategy", "sma_cross", "--set", "mode=long_short")
    still = sum(1 for t in doc["trades"] if t["open"])
    assert code == 0 and still == 1  # long_short is always in the market after the first cross
    assert f"Trades ({len(doc['trades'])}, 1 still open):" in out
