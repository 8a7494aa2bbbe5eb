"""The ``[storage]`` config section: which sinks exist, how tables route to them, flushing and the journal.

Relative paths resolve against the config's ``data_dir`` (see :func:`resolve_path`), so the SQLite
store, the spool and the journal move together with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import msgspec

from omnid.configbase import Section

SinkName = Literal["sqlite", "postgres", "questdb", "none"]
FsyncPolicy = Literal["always", "orders", "interval", "never"]


class SqliteConfig(Section):
    """The embedded default store."""

    #: Database file, relative to data_dir.
    path: str = "omnid.sqlite"
    #: PRAGMA synchronous: "normal" is safe with WAL (a power cut may lose the last commit only).
    synchronous: Literal["off", "normal", "full"] = "normal"


class PostgresConfig(Section):
    """PostgreSQL through asyncpg."""

    #: libpq-style DSN; put the password in OMNID__STORAGE__POSTGRES__DSN, not the file.
    dsn: str = ""
    #: Prefix for the four schemas (md, derived, strategy, exec): "t1_" gives t1_md, t1_exec, ...
    schema_prefix: str = ""
    #: Apply pending migrations when the daemon starts.
    migrate_on_start: bool = True
    #: Seconds to wait for a connection or a statement before calling the sink down.
    timeout_s: float = 10.0
    #: Day partitions of tick tables to create ahead of the data.
    partitions_ahead_days: int = 2
    #: "loop": asyncpg on the daemon's own loop, rows streamed in slices; "process": a writer
    #: process encodes and COPYs while the loop sends it rows. Both store alike: the same binary
    #: COPY encoder (a row that cannot be stored is logged and left out, the rest of its batch
    #: stored), the same spool and exactly-once replay, the same ledger pruning. "loop" is the
    #: default because it measured better on both counts (bench/storage.py, quiet machine: 704k vs
    #: 526k rows/s, longest on-loop stall 4.1 vs 8.7 ms).
    writer: Literal["process", "loop"] = "loop"
    #: Hours the batch ledger (md.written_batches) keeps the id of each stored tick batch unit;
    #: older ids are pruned hourly (by the daemon, for either writer), never while the spool holds
    #: batches, so the ledger stays bounded. A replay within this time is still stored exactly
    #: once. At least 1 and 20 x timeout_s.
    ledger_keep_hours: float = 168.0

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        if not 1 <= self.ledger_keep_hours <= 1e6:  # NaN and inf too
            raise ValueError("ledger_keep_hours must be between 1 and 1000000 (hours the batch "
                             "ledger keeps ids; a write in progress must never outlive them)")
        if self.ledger_keep_hours * 3600 < 20 * self.timeout_s:  # each statement of a write is
            # bounded by timeout_s, and a write runs a handful of them
            raise ValueError("ledger_keep_hours must cover at least 20 x timeout_s (a write in "
                             "progress must never outlive the ledger's retention)")
        if self.partitions_ahead_days < 0:
            raise ValueError("partitions_ahead_days must be >= 0")


class QuestdbConfig(Section):
    """QuestDB through its official client (InfluxDB line protocol over HTTP)."""

    #: The client's configuration string, e.g. "http::addr=127.0.0.1:9000;retry_timeout=10000;".
    conf: str = ""


class JournalConfig(Section):
    """The write-ahead order journal."""

    #: Journal file, relative to data_dir.
    path: str = "journal.wal"
    #: always: fsync every record; orders: fsync every order record before it goes to the broker
    #: (fills and updates are fsynced by the next order or the interval); interval: at most every
    #: fsync_interval_ms; never: leave it to the OS (survives kill -9, not a power cut).
    fsync: FsyncPolicy = "orders"
    #: For "orders" and "interval": the longest time an unsynced record waits.
    fsync_interval_ms: int = 200

    def __post_init__(self) -> None:
        if self.fsync_interval_ms <= 0:
            raise ValueError("fsync_interval_ms must be > 0")


class StorageConfig(Section):
    """Sinks, routing, the flusher and the journal."""

    #: Where tables go unless a route says otherwise.
    default_sink: SinkName = "sqlite"
    #: Table or schema → sink, most specific wins: {"md.trades" = "questdb", "exec" = "postgres"}.
    routes: dict[str, SinkName] = msgspec.field(default_factory=dict)
    #: Write a table's batch when it holds this many rows ...
    flush_rows: int = 5000
    #: ... or when its oldest row has waited this long, whichever comes first.
    flush_ms: int = 250
    #: Rows held in memory across all tables; beyond this, batches spill to the spool file.
    max_buffer_rows: int = 500_000
    #: Longest the flusher may hold the event loop while encoding rows, in microseconds. The
    #: PostgreSQL sink encodes COPY data itself in pieces of half a slice and sends each in a loop
    #: turn of its own, so 250 holds the loop ~0.5-0.7 ms at most (bench/storage.py).
    slice_us: int = 250
    #: Spool directory (relative to data_dir) where batches wait while a sink is down.
    spool_dir: str = "spool"
    sqlite: SqliteConfig = msgspec.field(default_factory=SqliteConfig)
    postgres: PostgresConfig = msgspec.field(default_factory=PostgresConfig)
    questdb: QuestdbConfig = msgspec.field(default_factory=QuestdbConfig)
    journal: JournalConfig = msgspec.field(default_factory=JournalConfig)

    def __post_init__(self) -> None:
        if self.flush_rows < 1:
            raise ValueError("flush_rows must be >= 1")
        if self.flush_ms < 1:
            raise ValueError("flush_ms must be >= 1")
        if self.max_buffer_rows < self.flush_rows:
            raise ValueError("max_buffer_rows must be >= flush_rows")
        if self.slice_us < 50:
            raise ValueError("slice_us must be >= 50")
        for key in self.routes:
            group = key.split(".", 1)[0]
            if group not in ("md", "derived", "strategy", "exec") or key.count(".") > 1:
                raise ValueError(f"route {key!r}: expected a group (md, derived, strategy, exec) or "
                                 "group.table, like md.trades")
        used = {self.default_sink, *self.routes.values()}
        if "postgres" in used and not self.postgres.dsn:
            raise ValueError("a route uses postgres but postgres.dsn is empty")
        if "questdb" in used and not self.questdb.conf:
            raise ValueError("a route uses questdb but questdb.conf is empty")

    def sinks_used(self) -> set[str]:
        """Names of the sinks some table routes to ("none" excluded)."""
        return {s for s in (self.default_sink, *self.routes.values()) if s != "none"}


def resolve_path(data_dir: Path, value: str) -> Path:
    """``value`` relative to ``data_dir`` unless absolute."""
    p = Path(value).expanduser()
    return p if p.is_absolute() else data_dir / p
