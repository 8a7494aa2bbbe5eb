"""Bounded retention of PostgreSQL's batch ledger (``<group>.written_batches``), shared by both
PostgreSQL sinks (the loop writer and the writer process).

At start and then every ``every_s`` (an hour), a task of its own, on a connection of its own (never
a write's), deletes the flusher's unit ids older than ``keep_s`` (``[storage.postgres]
ledger_keep_hours``, 7 days) in chunks of ``chunk`` rows, each its own short statement, found
through a partial index on ``written_at`` (migration 0004). A failed prune (server down, timeout,
no permission, ledger gone) is logged, counted and kept in :meth:`LedgerPruner.stats`, and tried
again at the next scheduled time: it never touches a write. File imports' ids (``import:...``) are
never pruned: they are what makes re-importing the same file store nothing twice, whenever that
happens.

Why pruning cannot break exactly-once: a ledger row matters only while its unit may be written
again, and a unit is written again only by a retry inside one write (bounded by ``timeout_s``) or
by a spool replay. The spool has no age limit (a sink down for a month, or a daemon stopped with a
full spool, replays month-old units, some of which may have committed before the failure that
spooled them), and its frames carry no time, so the cutoff cannot be tied to the oldest spooled
batch. Instead pruning is impossible by construction while the spool holds anything: the pruner
runs only once the flusher that owns the sink's spool has bound :meth:`LedgerPruner.watch_spool`
(a sink started by an import, a backfill or ``omnid db migrate`` never prunes, since it cannot see
the spool), and it asks, on the daemon's loop, before every chunk; while the spool is non-empty (a
spool left by the last run counts, until it has been replayed) the pass is put off and retried
within a minute. A unit spooled after the check has a ledger row, if any, from its own write,
seconds old, far newer than the cutoff (the retention is at least an hour). One daemon per schema
prefix is assumed: another daemon's spool is not visible here.

This is why the writer process does not prune itself: it could learn the spool's state only from
messages, late by a pipe round trip and queued behind rows; the pruner runs next to the flusher
instead, a few short statements an hour, as it does for the loop writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from omnid.storage.catalog import TableSpec
from omnid.storage.ddl import LEDGER, pg_schema

log = logging.getLogger("omnid.storage")

#: How long ledger rows are kept by default (``[storage.postgres] ledger_keep_hours``).
LEDGER_KEEP_S = 7 * 86_400.0
#: Time between two prunes of the ledger.
PRUNE_EVERY_S = 3600.0
#: A prune put off because the spool holds batches is tried again this soon.
PRUNE_RECHECK_S = 60.0
#: Ledger rows deleted per statement, and the pause between two statements (the server's time is
#: the writes' first).
PRUNE_CHUNK = 2000
PRUNE_PAUSE_S = 0.02
#: The ledger ids the flusher makes (``<run id, 16 hex>:<batch>:<unit>``, and ``spool:<hash>`` for
#: tick frames spooled before frames carried ids): the only ones pruned. The same text is the
#: predicate of the partial index of migration 0004, so the planner can use it.
PRUNABLE = "batch_id ~ '^([0-9a-f]{16}|spool):'"


class LedgerPruner:
    """Prunes the ledgers of one schema prefix; owned by a PostgreSQL sink, which hands it its
    tables on start and closes it on close."""

    def __init__(self, dsn: str, *, schema_prefix: str = "", timeout_s: float = 10.0,
                 keep_s: float = LEDGER_KEEP_S, every_s: float = PRUNE_EVERY_S,
                 chunk: int = PRUNE_CHUNK) -> None:
        self.dsn = dsn
        self.prefix = schema_prefix
        self.timeout_s = timeout_s
        self.keep_s = keep_s
        self.every_s = every_s
        self.chunk = max(1, chunk)
        self._groups: list[str] = []
        self._spool_pending: Callable[[], bool] | None = None
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        #: Ledger rows pruned in all, DELETE statements run, passes completed, passes put off by a
        #: waiting spool, passes failed; wall time (unix s) of the last completed pass; the last
        #: failure ("" once a later pass succeeds).
        self.pruned = 0
        self.chunks = 0
        self.passes = 0
        self.held = 0
        self.failures = 0
        self.last_prune = 0.0
        self.last_error = ""

    def set_tables(self, tables: Iterable[TableSpec]) -> None:
        """The tables the sink writes: the groups of the batch-keyed ones have a ledger."""
        self._groups = sorted({spec.group for spec in tables if spec.batch_keyed})

    def watch_spool(self, pending: Callable[[], bool]) -> None:
        """Allow pruning, asking ``pending()`` (true while the sink's spool holds batches) before
        every chunk. Only the flusher that owns the spool calls this."""
        self._spool_pending = pending

    def spool_held(self) -> bool:
        pending = self._spool_pending
        if pending is None:
            return True
        try:
            return bool(pending())
        except Exception:  # cannot tell: assume the spool holds batches
            log.exception("postgres: cannot tell whether the spool is empty; not pruning")
            return True

    def _ledgers(self) -> list[str]:
        return [f'"{pg_schema(self.prefix, g)}"."{LEDGER}"' for g in self._groups]

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def schedule(self, *, connect: bool = False) -> None:
        """Start the prune task if pruning is allowed and it is not running. ``connect``: open its
        connection now (start-up, before the flusher writes: a connect holds the loop ~5 ms)."""
        if self._spool_pending is None or not self._groups:
            return
        if connect:
            try:
                await self._connect()
            except Exception as exc:  # the pass itself will try again and record it
                log.warning("postgres: ledger prune connection: %r", exc)
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="postgres-ledger-prune")

    async def _connect(self) -> asyncpg.Connection:
        conn = self._conn
        if conn is not None and not conn.is_closed():
            return conn
        conn = await asyncpg.connect(self.dsn, timeout=self.timeout_s, command_timeout=self.timeout_s,
                                     server_settings={"application_name": "omnid ledger prune"})
        self._conn = conn
        return conn

    async def _loop(self) -> None:
        while True:
            wait = self.every_s
            try:
                if await self.prune() is None:
                    wait = min(wait, PRUNE_RECHECK_S)
            except Exception:  # prune records its own failures; this task must not die
                log.exception("postgres: ledger prune task")
            await asyncio.sleep(wait)

    async def prune(self) -> int | None:
        """One pass: delete the flusher's ledger ids older than ``keep_s``, a chunk per statement.
        Returns the rows deleted, or None if the pass was put off (the spool holds batches, or no
        flusher watches it). Never raises (but for cancellation): a failure is logged, counted and
        kept in ``last_error``, and the next pass tries again."""
        async with self._lock:  # one pass at a time on the prune connection
            return await self._pass()

    async def _pass(self) -> int | None:
        if self.spool_held():
            self.held += 1
            return None
        deleted = 0
        try:
            conn = await self._connect()
            keep = datetime.timedelta(seconds=self.keep_s)
            for ledger in self._ledgers():
                cutoff = await conn.fetchval("SELECT now() - $1::interval", keep, timeout=self.timeout_s)
                sql = (f"DELETE FROM {ledger} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {ledger} "
                       f"WHERE written_at < $1 AND {PRUNABLE} ORDER BY written_at LIMIT $2))")
                while True:
                    if self.spool_held():  # a failure spooled batches since the pass began
                        self.held += 1
                        return None
                    status = await conn.execute(sql, cutoff, self.chunk, timeout=self.timeout_s)
                    n = int(status.rsplit(" ", 1)[-1])
                    self.chunks += 1
                    deleted += n
                    self.pruned += n
                    if n < self.chunk:
                        break
                    await asyncio.sleep(PRUNE_PAUSE_S)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # server down, timeout, permission, ledger gone: next pass retries
            self.failures += 1
            detail = str(exc) or f"no answer within {self.timeout_s} s"  # a timeout says nothing
            self.last_error = f"{type(exc).__name__}: {detail}"
            log.warning("postgres: pruning the batch ledger failed (%d rows pruned first); trying "
                        "again in %.0f s: %s", deleted, self.every_s, self.last_error)
            conn, self._conn = self._conn, None
            if conn is not None:  # a fresh connection next time, whatever state this one is in
                conn.terminate()
            return deleted
        self.passes += 1
        self.last_prune = time.time()
        self.last_error = ""
        if deleted:
            log.info("postgres: pruned %d batch ledger rows older than %.0f h", deleted, self.keep_s / 3600)
        return deleted

    def stats(self) -> dict[str, Any]:
        """The retention counters, for the flusher's stats (and so ``omnid status``)."""
        return {
            "keep_hours": self.keep_s / 3600,
            "pruning": self.running,
            "pruned": self.pruned,
            "chunks": self.chunks,
            "passes": self.passes,
            "held_by_spool": self.held,
            "failures": self.failures,
            "last_prune": self.last_prune,
            "last_error": self.last_error,
        }

    async def close(self) -> None:
        """Stop the task and close the connection."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            await asyncio.wait_for(conn.close(), self.timeout_s)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            conn.terminate()


class LedgerRetention:
    """The ledger-retention surface the flusher and status use, for a sink that has a ``pruner``
    (both PostgreSQL writers: the loop sink and the writer-process sink)."""

    pruner: LedgerPruner

    def watch_spool(self, pending: Callable[[], bool]) -> None:
        """Allow the ledger to be pruned, asking ``pending()`` (true while the spool of this sink
        holds batches) before every chunk. Only the flusher that owns the spool calls this."""
        self.pruner.watch_spool(pending)

    async def prune_ledger(self) -> int | None:
        """One prune pass (:meth:`LedgerPruner.prune`): rows deleted, None if put off."""
        return await self.pruner.prune()

    def ledger_stats(self) -> dict[str, Any]:
        """The ledger's retention counters, for the flusher's stats."""
        return self.pruner.stats()
