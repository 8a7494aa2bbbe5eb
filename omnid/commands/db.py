"""``omnid db migrate`` and ``omnid db status``: the store's schema, outside the daemon.

The daemon applies migrations itself at start-up (``[storage.postgres] migrate_on_start``); these
commands are for doing it ahead of time and for looking. Exit codes: 0 ok, 1 the store failed,
2 bad usage or config.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from omnid.errors import ConfigError, OmnidError

if TYPE_CHECKING:
    from omnid.config import OmnidConfig

ConfigOpt = typer.Option(None, "--config", "-c", help="Config file (default ./omnid.toml, ...).")


def load(config: Path | None) -> OmnidConfig:
    """The config (``--config`` or the default places); exit 2 listing its problems."""
    from omnid.config import load_config  # every part's config: imported by the commands that read it
    from omnid.ops.paths import find_config

    try:
        return load_config(find_config(config))
    except ConfigError as exc:
        typer.echo(f"omnid: config has {len(exc.problems)} problem(s):\n{exc}", err=True)
        raise typer.Exit(2) from None


async def _migrate(config: Path | None) -> list[str]:
    from omnid.storage.catalog import CATALOG
    from omnid.storage.service import build_sinks

    cfg = load(config)
    out = []
    sinks = build_sinks(cfg.storage, cfg.data_dir)
    for name, sink in sinks.items():
        tables = CATALOG.tables()
        if name == "postgres":
            import asyncpg  # type: ignore[import-untyped]

            from omnid.storage.sinks.postgres import migrate

            try:
                conn = await asyncpg.connect(cfg.storage.postgres.dsn, timeout=cfg.storage.postgres.timeout_s)
            except (OSError, asyncpg.PostgresError) as exc:
                raise OmnidError(f"postgres: cannot connect: {exc}") from exc
            try:
                applied = await migrate(conn, cfg.storage.postgres.schema_prefix)
            finally:
                await conn.close()
            out.append(f"postgres: applied {applied or 'nothing (up to date)'}")
        await sink.start(tables)
        await sink.close()
        out.append(f"{name}: {len(tables)} tables present")
    return out


async def _status(config: Path | None) -> list[str]:
    from omnid.storage.config import resolve_path

    cfg = load(config)
    st = cfg.storage
    lines = [f"default sink: {st.default_sink}", f"routes: {dict(st.routes) or '(none)'}"]
    if "postgres" in st.sinks_used():
        import asyncpg

        try:
            conn = await asyncpg.connect(st.postgres.dsn, timeout=st.postgres.timeout_s)
            try:
                meta = f'"{st.postgres.schema_prefix}meta"'
                rows = await conn.fetch(
                    f"SELECT version, name, applied_at FROM {meta}.schema_migrations ORDER BY version")
                lines += [f"postgres migration {r[0]}: {r[1]} at {r[2]}" for r in rows]
            except asyncpg.UndefinedTableError:
                lines.append("postgres: no migrations applied yet (run omnid db migrate)")
            finally:
                await conn.close()
        except (OSError, asyncpg.PostgresError) as exc:
            lines.append(f"postgres: unreachable: {exc}")
    spool = resolve_path(cfg.data_dir, st.spool_dir)
    for f in sorted(spool.glob("*.spool")) if spool.is_dir() else []:
        lines.append(f"spool {f.name}: {f.stat().st_size} bytes waiting")
    journal = resolve_path(cfg.data_dir, st.journal.path)
    lines.append(f"journal {journal}: {journal.stat().st_size if journal.exists() else 0} bytes")
    return lines


def register(app: typer.Typer) -> None:
    db = typer.Typer(help="The store's schema: migrations and status.", no_args_is_help=True)
    app.add_typer(db, name="db")

    @db.command("migrate")
    def migrate_cmd(config: Path | None = ConfigOpt) -> None:
        """Apply pending migrations and create every table in each configured sink."""
        import asyncio

        try:
            for line in asyncio.run(_migrate(config)):
                typer.echo(line)
        except OmnidError as exc:
            typer.echo(f"omnid: db migrate failed: {exc}", err=True)
            raise typer.Exit(1) from None

    @db.command("status")
    def status_cmd(config: Path | None = ConfigOpt) -> None:
        """Show routing, applied migrations, spooled bytes and the journal's size."""
        import asyncio

        for line in asyncio.run(_status(config)):
            typer.echo(line)
