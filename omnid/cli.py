"""The ``omnid`` command line (typer).

Each part keeps its commands in ``omnid/commands/<part>.py`` with a ``register(app)`` function;
this module only builds the app and lists them. Exit codes across every command: 0 ok, 1 the
daemon answered with an error (or the run failed), 2 bad usage or config, 3 no daemon running.
"""

from __future__ import annotations

import importlib
import sys

import typer

from omnid import __version__

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NO_DAEMON = 3

app = typer.Typer(
    name="omnid",
    help="omnid: a personal quant trading daemon: feeds, strategies, risk, paper/live brokers, backtests.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Help texts are plain text: square brackets such as [/symbol/side] must not parse as markup.
    rich_markup_mode=None,
)

#: Modules under omnid.commands that add commands to the app, in help order.
COMMAND_MODULES = [
    "config",
    "daemon",
    "features",
    "binance",
    "backtest",
    "db",
    "data",
    "strategies",
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"omnid {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """omnid: one process that trades crypto, US stocks/ETFs and NSE intraday, paper or live."""


for _name in COMMAND_MODULES:
    importlib.import_module(f"omnid.commands.{_name}").register(app)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
