"""The ``omnid`` command line (typer).

Each part keeps its commands in ``omnid/commands/<part>.py`` with a ``register(app)`` function;
this module only builds the app and lists them. Exit codes across every command: 0 ok, 1 the
daemon answered with an error (or the run failed), 2 bad usage or config, 3 no daemon running.

Start-up is kept short (``omnid status`` is typed many times a day): the command modules import
only typer and the standard library at the top and import what a command needs (numpy, pyarrow,
the config, the daemon, storage, venues) in its body, so that building the app for ``--help`` or
one command costs little. tests/commands/test_startup.py holds that line; bench/cli_startup.py
times it.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

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


def _defer_typer_coercion() -> None:
    """Build typer's per-parameter coercion only for a parameter that has a value.

    typer 0.29 coerces each parameter through a pydantic ``TypeAdapter`` that it builds on first
    use, even for a parameter left at None (every ``--help`` option, an omitted ``--config``),
    where its ``RuntimeParam.coerce`` returns before the adapter is touched. Importing pydantic
    and building the adapters costs ~0.1 s, a third of ``omnid status``. Here a parameter starts
    with a stand-in that answers None as typer's own ``coerce`` does and hands any value to the
    coercion typer would have built, so results and error messages are typer's. A typer without
    these internals is left alone.
    """
    try:
        from typer._coercion import PassThroughRuntimeParam, RuntimeParam, build_runtime_param
        from typer.core import _TyperParameter
    except ImportError:
        return
    if not callable(getattr(_TyperParameter, "get_runtime_param", None)):
        return

    class Deferred(PassThroughRuntimeParam):
        """Typer's handling of None (inherited ``coerce``); the real coercion for a value."""

        def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
            if value is None:
                return super().coerce(value, param, ctx)
            real = build_runtime_param(param.type_descriptor)
            param._runtime_param = real
            return real.coerce(value, param=param, ctx=ctx)

    def get_runtime_param(self: Any) -> RuntimeParam:
        if self._runtime_param is None:
            desc = self.type_descriptor
            self._runtime_param = Deferred(parameter_info=desc.parameter_info, annotation=desc.annotation)
        return self._runtime_param  # type: ignore[no-any-return]

    _TyperParameter.get_runtime_param = get_runtime_param  # type: ignore[method-assign]


_defer_typer_coercion()


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
