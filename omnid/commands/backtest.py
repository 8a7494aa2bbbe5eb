"""``omnid backtest``: run one strategy over a bar or trade-tick file and report its metrics.

The run drives the same Engine, strategies, risk gate and paper broker as the daemon (see
:mod:`omnid.sim.runner`). Exit codes: 0 ok, 2 bad usage or bad input (the message names the file,
column and row, or the parameter), 1 the run itself failed.

The runner (engine, strategies, numpy, pyarrow) is imported when a backtest runs, not when the CLI
starts: ``omnid --help`` and ``omnid backtest --help`` need none of it.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from omnid.errors import ConfigError, DataError, OmnidError

if TYPE_CHECKING:
    from omnid.sim.runner import BacktestResult

#: Runs with at least this many events show a progress bar on stderr (never with --json).
PROGRESS_MIN_EVENTS = 200_000


def parse_set(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; a value is read as TOML when it parses (``5``, ``0.1``, ``true``,
    ``"x"``), else taken as a plain string (so ``mode=long_short`` needs no quotes)."""
    import tomllib

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError("--set", [(item, "expected key=value")])
        try:
            value: Any = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        out[key] = value
    return out


def _iso(ts: int) -> str:
    moment = dt.datetime.fromtimestamp(ts // 1_000_000_000, tz=dt.UTC)
    frac = ts % 1_000_000_000
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    return f"{text}.{frac // 1000:06d}" if frac else text


def _fmt(value: float | int, pattern: str) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if abs(value) >= 1e12 and math.isfinite(value):  # a fixed-point 1e42 is 40 digits of noise
            return f"{value:.4e}"
        value += 0.0  # -0.0 (no drawdown, as backtesting.py gives it) reads as 0 in the table
    return pattern.format(value)


def render_text(result: BacktestResult, *, max_equity_rows: int = 20, max_trade_rows: int = 200) -> str:
    """The human report: metrics table, trade list and a sampled equity curve.

    Long trade lists show their first and last ``max_trade_rows / 2`` rows (``--json`` has all).
    """
    from omnid.sim.metrics import METRIC_LABELS

    m = result.metrics
    lines = [f"Backtest {result.strategy} on {result.data} ({result.events} {result.kind})", ""]
    lines.append(f"{'Start':<34}{_iso(m.start_ts)}")
    lines.append(f"{'End':<34}{_iso(m.end_ts)}")
    for key, label, pattern in METRIC_LABELS:
        lines.append(f"{label:<34}{_fmt(getattr(m, key), pattern)}")
    lines += [f"Warning: {w}" for w in result.warnings]
    still_open = sum(1 for t in result.trades if t.open)
    open_note = f", {still_open} still open" if still_open else ""
    lines += ["", f"Trades ({len(result.trades)}{open_note}):"]
    if result.trades:
        lines.append(f"{'#':>4} {'instrument':<14}{'qty':>12} {'entry time':<27}{'entry':>12} "
                     f"{'exit time':<27}{'exit':>12}{'pnl':>14}{'return %':>10}")
        trades = list(enumerate(result.trades, start=1))
        half = max_trade_rows // 2
        hidden = len(trades) - 2 * half if len(trades) > max_trade_rows else 0
        if hidden:
            trades = trades[:half] + trades[-half:]
        for n, t in trades:
            if hidden and n == len(result.trades) - half + 1:
                lines.append(f"     ... {hidden} more trades (--json lists them all) ...")
            exit_time = "(open)" if t.open else _iso(t.exit_ts)
            lines.append(f"{n:>4} {t.instrument_id:<14}{t.qty:>12g} {_iso(t.entry_ts):<27}"
                         f"{t.entry_price:>12.6g} {exit_time:<27}{t.exit_price:>12.6g}"
                         f"{t.pnl:>14.2f}{t.return_pct:>10.3f}")
    eq = result.equity
    step = max(1, -(-len(eq) // max_equity_rows))
    shown = eq[::step]
    if eq and shown[-1] is not eq[-1]:
        shown.append(eq[-1])
    every = f", every {step}th shown" if step > 1 else ""
    lines += ["", f"Equity curve ({len(eq)} samples{every}):"]
    lines += [f"  {_iso(p.ts):<27}{p.equity:>16.2f}" for p in shown]
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    @app.command("backtest")
    def backtest(
        data: Path = typer.Option(..., "--data", help="Bar file (Date/Open/High/Low/Close/Volume) or "
                                  "trade-tick file (ts/price/qty[/symbol/side]), CSV or Parquet."),
        strategy: str = typer.Option(..., "--strategy", help="Strategy kind, e.g. sma_cross, momentum."),
        set_: list[str] = typer.Option([], "--set", help="A strategy parameter, key=value (repeatable)."),
        cash: float = typer.Option(10_000.0, "--cash", help="Starting cash."),
        commission: float = typer.Option(0.0, "--commission",
                                         help="Commission as a fraction of notional, on entry and exit."),
        close_at_end: bool = typer.Option(False, "--close-at-end",
                                          help="Close a position still open at the end (pays commission)."),
        json_out: bool = typer.Option(False, "--json",
                                      help="Print one JSON object (metrics, trades, equity)."),
    ) -> None:
        """Backtest a strategy on a file: next-bar-open fills, all-in sizing, metrics as backtesting.py.

        Exit 0 ok; 2 bad input or parameters; 1 the strategy raised (it is disabled, the report
        covers the run up to that point). Where results differ from backtesting.py: see omnid.sim.
        """
        import msgspec

        from omnid.sim.runner import BacktestSpec, run_backtest

        try:
            spec = BacktestSpec(data=str(data), strategy=strategy, params=parse_set(set_), cash=cash,
                                commission=commission, close_at_end=close_at_end)
            bar = _Progress() if not json_out and (sys.stderr.isatty() or _force_progress()) else None
            try:
                result = run_backtest(spec, progress=bar)
            finally:
                if bar is not None:
                    bar.close()
        except (DataError, ConfigError) as exc:
            typer.echo(f"omnid backtest: {exc}", err=True)
            raise typer.Exit(2) from None
        except OmnidError as exc:
            typer.echo(f"omnid backtest: run failed: {exc}", err=True)
            raise typer.Exit(1) from None
        if json_out:
            sys.stdout.buffer.write(msgspec.json.encode(result.to_json()) + b"\n")
        else:
            typer.echo(render_text(result))
        if result.strategy_error is not None:
            typer.echo(f"omnid backtest: {result.strategy_error}; results stop where it failed", err=True)
            raise typer.Exit(1)


def _force_progress() -> bool:
    """Tests and scripts may ask for the bar on a non-terminal stderr (OMNID_PROGRESS=1)."""
    return os.environ.get("OMNID_PROGRESS") == "1"


class _Progress:
    """A tqdm bar on stderr, created lazily once the run is known to be long."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._shown = 0

    def start(self, total: int) -> None:
        if total >= PROGRESS_MIN_EVENTS:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="ev", unit_scale=True, file=sys.stderr, leave=False)

    def __call__(self, done: int) -> None:
        if self._bar is not None:
            self._bar.update(done - self._shown)
            self._shown = done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
