"""Storage wired from config: what the daemon (and backtests that record) create and start.

    storage = Storage.from_config(cfg)          # builds recorder, flusher, sinks, journal
    await storage.start()                       # migrations, tables, flusher tasks
    engine = Engine(..., recorder=storage.recorder)
    order_manager = OrderManager(..., journal=storage.journal)
    ...
    await storage.stop()                        # flush, close sinks, fsync the journal
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from omnid.model import Order
from omnid.portfolio import LedgerSnapshot
from omnid.storage.catalog import CATALOG, Catalog
from omnid.storage.config import StorageConfig, resolve_path
from omnid.storage.flusher import Flusher
from omnid.storage.journal import Journal, JournalState, replay
from omnid.storage.recorder import BatchRecorder
from omnid.storage.sinks.base import Sink

if TYPE_CHECKING:
    from omnid.config import OmnidConfig


def build_sinks(cfg: StorageConfig, data_dir: Path, *, catalog: Catalog | None = None,
                only: set[str] | None = None) -> dict[str, Sink]:
    """The sinks that some route uses (or just ``only``), configured but not started."""
    sinks: dict[str, Sink] = {}
    slice_s = cfg.slice_us / 1e6
    for name in sorted(only if only is not None else cfg.sinks_used()):
        if name == "sqlite":
            from omnid.storage.sinks.sqlite import SqliteSink

            sinks[name] = SqliteSink(resolve_path(data_dir, cfg.sqlite.path), slice_s=slice_s,
                                     synchronous=cfg.sqlite.synchronous)
        elif name == "postgres" and cfg.postgres.writer == "process":
            from omnid.storage.sinks.pg_process import PostgresProcessSink

            pg = cfg.postgres
            sinks[name] = PostgresProcessSink(pg.dsn, schema_prefix=pg.schema_prefix,
                                              migrate_on_start=pg.migrate_on_start, timeout_s=pg.timeout_s,
                                              partitions_ahead_days=pg.partitions_ahead_days,
                                              slice_s=slice_s, ledger_keep_s=pg.ledger_keep_hours * 3600)
        elif name == "postgres":
            from omnid.storage.sinks.postgres import PostgresSink

            pg = cfg.postgres
            sinks[name] = PostgresSink(pg.dsn, schema_prefix=pg.schema_prefix,
                                       migrate_on_start=pg.migrate_on_start, timeout_s=pg.timeout_s,
                                       partitions_ahead_days=pg.partitions_ahead_days, slice_s=slice_s,
                                       catalog=catalog, ledger_keep_s=pg.ledger_keep_hours * 3600)
        elif name == "questdb":
            from omnid.storage.sinks.questdb import QuestdbSink

            sinks[name] = QuestdbSink(cfg.questdb.conf, slice_s=slice_s)
    return sinks


class Storage:
    """The recorder the core writes to, the flusher behind it, and the order journal."""

    def __init__(self, cfg: StorageConfig, data_dir: Path, *, catalog: Catalog | None = None) -> None:
        self.cfg = cfg
        self.catalog = catalog or CATALOG
        self.recorder = BatchRecorder(self.catalog, flush_rows=cfg.flush_rows,
                                      hard_limit=cfg.max_buffer_rows * 2)
        self.flusher = Flusher(
            self.recorder, build_sinks(cfg, data_dir, catalog=self.catalog),
            spool_dir=resolve_path(data_dir, cfg.spool_dir), default_sink=cfg.default_sink,
            routes=dict(cfg.routes), flush_ms=cfg.flush_ms, max_buffer_rows=cfg.max_buffer_rows,
            slice_us=cfg.slice_us, catalog=self.catalog,
        )
        j = cfg.journal
        self.journal = Journal(resolve_path(data_dir, j.path), fsync=j.fsync,
                               fsync_interval_ms=j.fsync_interval_ms)

    @classmethod
    def from_config(cls, cfg: OmnidConfig) -> Storage:
        return cls(cfg.storage, cfg.data_dir)

    def restore(self) -> JournalState:
        """What the journal says (read at open, torn tail already repaired): open orders, fills,
        the ledger to restore the portfolio from, and the last client-order-id sequence."""
        return replay(self.journal.recovered.records)

    def checkpoint(self, ledger: LedgerSnapshot | None, open_orders: list[Order], last_seq: int) -> None:
        """Shrink the journal to a checkpoint (the exact ledger, the orders still open, the id
        sequence): call it when no order is in flight, e.g. at end of day."""
        self.journal.compact(ledger, open_orders, last_seq)

    async def start(self) -> None:
        await self.flusher.start()

    async def stop(self) -> None:
        await self.flusher.stop()
        self.journal.close()
