"""``omnid config check FILE``: validate a config file and list every problem."""

from __future__ import annotations

from pathlib import Path

import typer

from omnid.errors import ConfigError


def register(app: typer.Typer) -> None:
    config_app = typer.Typer(help="Validate and inspect configuration files.", no_args_is_help=True)
    app.add_typer(config_app, name="config")

    @config_app.command("check")
    def check(
        file: Path = typer.Argument(..., help="The TOML config file to validate."),
    ) -> None:
        """Validate FILE (with OMNID__SECTION__KEY overrides applied); exit 2 listing every problem."""
        from omnid.config import load_config  # every part's config: not for `omnid --help`

        try:
            cfg = load_config(file)
        except ConfigError as exc:
            typer.echo(f"config has {len(exc.problems)} problem(s):", err=True)
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None
        typer.echo(
            f"{file}: ok ({len(cfg.instruments)} instruments, data_dir={cfg.data_dir})"
        )
