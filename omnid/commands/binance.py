"""``omnid binance backfill SYMBOL --interval 1m --from ... --to ...``: klines into the store.

When ``omnid data`` exists, its module can call :func:`add_backfill` on its ``backfill`` group to
offer the same command as ``omnid data backfill binance ...``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer

from omnid.errors import OmnidError

EXIT_FAILED, EXIT_USAGE = 1, 2


def parse_when(text: str, *, option: str) -> int:
    """``2026-11-01``, ``2026-11-01T12:30`` (UTC unless it says otherwise) or epoch ms → epoch ms."""
    if text.isdigit():
        return int(text)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date, an ISO time or epoch milliseconds",
                                 param_hint=option) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


def add_backfill(group: typer.Typer, name: str = "binance") -> None:
    """Add the backfill command to ``group`` under ``name``."""

    @group.command(name)
    def backfill_cmd(
        symbol: str = typer.Argument(..., help="Binance symbol, e.g. BTCUSDT."),
        interval: str = typer.Option("1m", "--interval", "-i", help="Kline interval: 1s, 1m, 5m, 1h, 1d ..."),
        start: str = typer.Option(..., "--from", help="Start (UTC date/time or epoch ms), inclusive."),
        end: str = typer.Option(..., "--to", help="End (UTC date/time or epoch ms), inclusive."),
        config: Path | None = typer.Option(None, "--config", "-c", help="Config file (binance and storage)."),
    ) -> None:
        """Fetch closed klines over REST (paged, rate-limited) and store them as bars."""
        import asyncio

        from omnid.config import OmnidConfig, load_config
        from omnid.errors import ConfigError
        from omnid.venues.binance.backfill import backfill

        start_ms, end_ms = parse_when(start, option="--from"), parse_when(end, option="--to")
        if end_ms < start_ms:
            raise typer.BadParameter("--to is before --from", param_hint="--to")
        try:
            if config is None and Path("omnid.toml").is_file():
                config = Path("omnid.toml")
            # Without a file: Binance's public endpoints and the default store.
            cfg = load_config(config) if config is not None else OmnidConfig()
        except ConfigError as exc:
            typer.echo(f"omnid: config has {len(exc.problems)} problem(s):\n{exc}", err=True)
            raise typer.Exit(EXIT_USAGE) from None
        try:
            result = asyncio.run(backfill(cfg.binance, symbol, interval, start_ms, end_ms,
                                          storage=cfg.storage, data_dir=cfg.data_dir))
        except (OmnidError, ValueError) as exc:
            typer.echo(f"omnid: backfill failed: {exc}", err=True)
            raise typer.Exit(EXIT_FAILED) from None
        typer.echo(f"{result.symbol} {result.interval}: {result.bars} bars in {result.pages} page(s) "
                   f"→ {result.sink}")


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Binance spot: history backfill.", no_args_is_help=True)
    app.add_typer(group, name="binance")
    add_backfill(group, "backfill")
