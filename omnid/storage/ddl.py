"""DDL from the catalogue: one source of truth for column names, types and keys."""

from __future__ import annotations

from omnid.storage.catalog import TableSpec

_SQLITE = {"text": "TEXT", "real": "REAL", "int": "INTEGER", "json": "TEXT"}
_PG = {"text": "text", "real": "double precision", "int": "bigint", "json": "jsonb"}


def sqlite_name(spec: TableSpec) -> str:
    """SQLite has no schemas: the group becomes a prefix (``md_trades``)."""
    return f"{spec.group}_{spec.name}"


def sqlite_create(spec: TableSpec) -> list[str]:
    cols = ", ".join(f'"{c.name}" {_SQLITE[c.kind]}' for c in spec.columns)
    key = ", ".join(f'"{k}"' for k in spec.key)
    name = sqlite_name(spec)
    out = [f'CREATE TABLE IF NOT EXISTS "{name}" ({cols}, PRIMARY KEY ({key})) WITHOUT ROWID']
    if spec.ts_column and spec.ts_column not in spec.key[:1]:
        out.append(f'CREATE INDEX IF NOT EXISTS "{name}_ts" ON "{name}" ("{spec.ts_column}")')
    return out


def sqlite_insert(spec: TableSpec) -> str:
    cols = ", ".join(f'"{c.name}"' for c in spec.columns)
    marks = ", ".join("?" for _ in spec.columns)
    return f'INSERT OR IGNORE INTO "{sqlite_name(spec)}" ({cols}) VALUES ({marks})'


def pg_schema(prefix: str, group: str) -> str:
    return f"{prefix}{group}"


def pg_create(spec: TableSpec, schema: str) -> list[str]:
    """CREATE TABLE (partitioned by day on ``partition_ts`` when set) with the natural key."""
    # Key text columns compare bytewise (COLLATE "C"): the unique index costs less per row.
    cols = ", ".join(f'"{c.name}" {_PG[c.kind]}'
                     + (' COLLATE "C"' if c.kind == "text" and c.name in spec.key else "")
                     + (" NOT NULL" if c.name in spec.key else "")
                     for c in spec.columns)
    key = ", ".join(f'"{k}"' for k in spec.key)
    table = f'"{schema}"."{spec.name}"'
    part = f' PARTITION BY RANGE ("{spec.partition_ts}")' if spec.partition_ts else ""
    if spec.batch_keyed:  # exactly once per batch (the ledger), not per row: no unique index
        return [f"CREATE TABLE IF NOT EXISTS {table} ({cols}){part}",
                f'CREATE INDEX IF NOT EXISTS "{spec.name}_ts_brin" ON {table} '
                f'USING brin ("{spec.ts_column}")',
                pg_ledger(schema)]
    out = [f"CREATE TABLE IF NOT EXISTS {table} ({cols}, PRIMARY KEY ({key})){part}"]
    if spec.ts_column and spec.ts_column != spec.key[0] and not spec.partition_ts:
        out.append(f'CREATE INDEX IF NOT EXISTS "{spec.name}_ts" ON {table} ("{spec.ts_column}")')
    return out


#: The batch ledger of a schema: the id of every unit stored in its batch-keyed tables.
LEDGER = "written_batches"


def pg_ledger(schema: str) -> str:
    return (f'CREATE TABLE IF NOT EXISTS "{schema}"."{LEDGER}" (batch_id text COLLATE "C" PRIMARY KEY, '
            "written_at timestamptz NOT NULL DEFAULT now())")
