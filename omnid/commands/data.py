"""``omnid data``: historical data in and out of the store.

- ``omnid data import FILE`` loads a CSV/Parquet bar or tick file into the store (idempotent).
- ``omnid data candles SYMBOL --interval 1m --from 2026-11-01 --to 2026-11-02`` prints bars.
- ``omnid data export SYMBOL OUT.csv|OUT.parquet`` writes bars (or ``--ticks``) back to a file
  that ``omnid data import`` and the backtester read.
- ``omnid data build-bars SYMBOL --interval 1m`` builds bars from stored trades into derived.bars.

SYMBOL is an instrument id (``BTCUSDT.BINANCE``); a bare symbol gets ``--venue``. Times are ISO
8601 (a date, or date and time; no offset means UTC) or integer nanoseconds since the epoch.
Exit codes: 0 ok, 1 the store failed, 2 bad usage, config or input file.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import typer

from omnid.commands.db import ConfigOpt, load
from omnid.errors import DataError, OmnidError, StorageError

DAY_NS = 86_400_000_000_000


def parse_time(text: str, what: str) -> int:
    """ISO 8601 (naive = UTC) or integer ns → ns since the epoch."""
    t = text.strip()
    if t.lstrip("-").isdigit():
        return int(t)
    try:
        d = dt.datetime.fromisoformat(t)
    except ValueError:
        raise DataError(f"{what} {text!r}: expected an ISO date/time like 2026-11-01 or "
                        "2026-11-01T09:30:00Z, or integer nanoseconds") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.UTC)
    return int(d.timestamp()) * 1_000_000_000 + d.microsecond * 1000


def _iso(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).isoformat().replace("+00:00", "Z")


def _range(start: str | None, end: str | None) -> tuple[int, int]:
    hi = parse_time(end, "--to") if end else 2**62
    lo = parse_time(start, "--from") if start else 0
    if hi <= lo:
        raise DataError(f"--from ({start}) must be before --to ({end})")
    return lo, hi


def _iid(symbol: str, venue: str) -> str:
    return symbol if "." in symbol else f"{symbol}.{venue}"


def _run(coro: Any) -> Any:
    import asyncio  # only the commands that reach the store start a loop

    try:
        return asyncio.run(coro)
    except DataError as exc:
        typer.echo(f"omnid: {exc}", err=True)
        raise typer.Exit(2) from None
    except (StorageError, OmnidError) as exc:
        typer.echo(f"omnid: {exc}", err=True)
        raise typer.Exit(1) from None


def register(app: typer.Typer) -> None:
    data = typer.Typer(help="Historical data: import, export, candles, bars from ticks, synthetic data.",
                       no_args_is_help=True)
    app.add_typer(data, name="data")

    @data.command("synth")
    def synth_cmd(
        out: Path = typer.Argument(..., help="File to write: .csv or .parquet."),
        kind: str = typer.Option("bars", help="bars (daily OHLCV, weekdays) | ticks (trade ticks)."),
        rows: int = typer.Option(1000, help="How many bars, or how many ticks in all."),
        instruments: int = typer.Option(1, help="Ticks only: how many instruments (SYN0, SYN1, ...)."),
        seed: int = typer.Option(7, help="Random seed: the same seed gives the same file."),
    ) -> None:
        """Write seeded synthetic market data (GBM with jumps, an intraday volume shape, prices on
        the tick) to try backtests and `omnid features` without downloading anything."""
        from omnid.sim.synthetic import generate_bars, generate_ticks, write_bars, write_ticks

        if kind not in ("bars", "ticks"):
            typer.echo(f"omnid: --kind {kind!r}: expected bars or ticks", err=True)
            raise typer.Exit(2)
        if out.suffix.lower() not in (".csv", ".parquet"):
            typer.echo(f"omnid: {out}: the file must end in .csv or .parquet", err=True)
            raise typer.Exit(2)
        if rows < 1 or instruments < 1:
            typer.echo("omnid: --rows and --instruments must be at least 1", err=True)
            raise typer.Exit(2)
        try:
            if kind == "bars":
                write_bars(out, generate_bars(rows, seed=seed))
            else:
                write_ticks(out, generate_ticks(rows, instruments=instruments, seed=seed))
        except (OSError, DataError) as exc:
            typer.echo(f"omnid: {out}: {exc}", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"{out}: {rows} synthetic {kind}")

    @data.command("import")
    def import_cmd(
        file: Path = typer.Argument(..., help="CSV or Parquet bar or tick file."),
        venue: str = typer.Option("SIM", help="Venue for symbols without one (BTCUSDT → BTCUSDT.SIM)."),
        symbol: str | None = typer.Option(None, help="Symbol when the file has no symbol column."),
        interval: str | None = typer.Option(None, help="Bar interval (1m, 1d); inferred if omitted."),
        kind: str = typer.Option("auto", help="bars | ticks | auto (by the columns)."),
        config: Path | None = ConfigOpt,
    ) -> None:
        """Load FILE into the store the storage routes send md.bars / md.trades to (re-import is safe)."""
        from omnid.storage.history import import_file, parse_interval

        cfg = load(config)
        if kind not in ("auto", "bars", "ticks"):
            typer.echo(f"omnid: --kind {kind!r}: expected bars, ticks or auto", err=True)
            raise typer.Exit(2)

        async def go() -> Any:
            ns = parse_interval(interval) if interval else 0
            return await import_file(file, cfg.storage, cfg.data_dir, venue=venue, kind=kind,  # type: ignore[arg-type]
                                     interval_ns=ns, symbol=symbol)

        res = _run(go())
        extra = f", interval {res.interval_ns // 1_000_000_000}s" if res.interval_ns else ""
        typer.echo(f"{file}: {res.rows} {res.kind} rows for {', '.join(res.symbols)} → {res.sink} "
                   f"{res.table}{extra}")

    @data.command("candles")
    def candles_cmd(
        symbol: str = typer.Argument(..., help="Instrument id (BTCUSDT.SIM) or symbol with --venue."),
        interval: str = typer.Option("1m", help="Bar interval: 1m, 5m, 1h, 1d ..."),
        start: str | None = typer.Option(None, "--from", help="Start (inclusive)."),
        end: str | None = typer.Option(None, "--to", help="End (exclusive)."),
        venue: str = typer.Option("SIM", help="Venue for a bare symbol."),
        as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table."),
        config: Path | None = ConfigOpt,
    ) -> None:
        """Print candles from stored bars, bars built from trades, or finer bars rolled up."""
        from omnid.storage.history import HistoryReader, parse_interval

        cfg = load(config)

        async def go() -> Any:
            lo, hi = _range(start, end)
            async with HistoryReader.open(cfg.storage, cfg.data_dir) as h:
                return await h.candles(_iid(symbol, venue), parse_interval(interval), lo, hi)

        bars = _run(go())
        for b in bars:
            if as_json:
                typer.echo(json.dumps({"ts": _iso(b.ts_open), "open": b.open, "high": b.high, "low": b.low,
                                       "close": b.close, "volume": b.volume}))
            else:
                typer.echo(f"{_iso(b.ts_open)}  {b.open:>12g} {b.high:>12g} {b.low:>12g} {b.close:>12g} "
                           f"{b.volume:>14g}")
        if not bars:
            typer.echo("no data in that range", err=True)

    @data.command("export")
    def export_cmd(
        symbol: str = typer.Argument(..., help="Instrument id or symbol with --venue."),
        out: Path = typer.Argument(..., help="Output .csv or .parquet."),
        interval: str = typer.Option("1m", help="Bar interval (ignored with --ticks)."),
        ticks: bool = typer.Option(False, "--ticks", help="Export stored trades instead of bars."),
        start: str | None = typer.Option(None, "--from", help="Start (inclusive)."),
        end: str | None = typer.Option(None, "--to", help="End (exclusive)."),
        venue: str = typer.Option("SIM", help="Venue for a bare symbol."),
        config: Path | None = ConfigOpt,
    ) -> None:
        """Write bars or trades to a file that `omnid data import` and backtests read."""
        from omnid.datafiles import write_table
        from omnid.storage.history import HistoryReader, parse_interval

        cfg = load(config)
        iid = _iid(symbol, venue)

        async def go() -> int:
            lo, hi = _range(start, end)
            async with HistoryReader.open(cfg.storage, cfg.data_dir,
                                          table="md.trades" if ticks else "md.bars") as h:
                if ticks:
                    tr = await h.trades(iid, lo, hi)
                    write_table(out, {"ts": [t.ts_event for t in tr], "price": [t.price for t in tr],
                                      "qty": [t.size for t in tr],
                                      "side": ["" if t.side.value == "none" else t.side.value for t in tr],
                                      "symbol": [iid] * len(tr)})
                    return len(tr)
                bars = await h.candles(iid, parse_interval(interval), lo, hi)
                write_table(out, {"ts": [b.ts_open for b in bars], "open": [b.open for b in bars],
                                  "high": [b.high for b in bars], "low": [b.low for b in bars],
                                  "close": [b.close for b in bars], "volume": [b.volume for b in bars],
                                  "symbol": [iid] * len(bars)})
                return len(bars)

        n = _run(go())
        typer.echo(f"{out}: {n} {'trades' if ticks else 'bars'} of {iid}")

    @data.command("build-bars")
    def build_bars_cmd(
        symbol: str = typer.Argument(..., help="Instrument id or symbol with --venue."),
        interval: str = typer.Option("1m", help="Bar interval."),
        start: str | None = typer.Option(None, "--from", help="Start (inclusive)."),
        end: str | None = typer.Option(None, "--to", help="End (exclusive)."),
        venue: str = typer.Option("SIM", help="Venue for a bare symbol."),
        config: Path | None = ConfigOpt,
    ) -> None:
        """Build bars from stored trades and store them in derived.bars."""
        from omnid.storage.history import build_bars, parse_interval

        cfg = load(config)

        async def go() -> int:
            lo, hi = _range(start, end)
            return await build_bars(cfg.storage, cfg.data_dir, _iid(symbol, venue), parse_interval(interval),
                                    lo, hi)

        n = _run(go())
        typer.echo(f"{n} bars of {interval} built for {_iid(symbol, venue)} into derived.bars")

    backfill = typer.Typer(help="Fetch history from a venue into the store.", no_args_is_help=True)
    data.add_typer(backfill, name="backfill")
    from omnid.commands.binance import add_backfill

    add_backfill(backfill, "binance")
