"""The flusher: background tasks that move the recorder's batches into the sinks.

One main task wakes every ``flush_ms`` (or as soon as the buffers hold ``flush_rows`` rows), takes
every table's batch and hands it to the worker of the sink its table routes to. Each sink has its
own worker task, so a slow PostgreSQL never holds back SQLite. Workers build rows in slices of at
most ``slice_us`` between yields, so the loop is never held for long.

When a sink fails with a :class:`TransientError` (unreachable, timed out) or falls too far behind
(more than ``max_buffer_rows`` queued), its batches go to an append-only spool file instead, in
arrival order, and keep going there until the sink answers again; then the spool is replayed in
order through the sink's idempotent path and truncated.

Batches for batch-keyed tables (the tick tables) get durable unit ids when they are cut
(``<run id>:<batch number>:<unit>``, the run id random per flusher): the ids travel with the items
through merging and into spool frames (one unit per frame), so the sink can store each unit exactly
once however often it is retried or replayed. A sink that prunes its record of stored unit ids
(PostgreSQL's ledger) is handed :meth:`SinkWorker.spool_pending` and prunes nothing while the spool
holds batches. Other errors (a row the store refuses)
are logged with the table and counted; the batch is dropped rather than retried forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import logging
import uuid
from collections import deque
from pathlib import Path
from typing import Any

import msgspec

from omnid.errors import StorageError, TransientError
from omnid.storage.catalog import CATALOG, Catalog, Row, TableSpec
from omnid.storage.recorder import BatchRecorder
from omnid.storage.sinks.base import Batch, Sink, Unit, build_rows, make_units, release
from omnid.storage.spool import FRAME_ROWS, Spool

log = logging.getLogger("omnid.storage")
_frame_enc = msgspec.msgpack.Encoder()

#: The most rows one merged write may hold. Merging copies the lists (touching every record's
#: reference count) in one step on the loop: 32k rows stays well under a millisecond, and batches
#: that big already write efficiently on their own.
MERGE_ROWS = 32_768


class SinkWorker:
    """Writes one sink's batches, spooling while it is down, replaying when it is back."""

    def __init__(
        self,
        sink: Sink,
        spool: Spool,
        catalog: Catalog,
        *,
        slice_s: float,
        max_queued_rows: int,
        retry_s: float = 1.0,
        max_retry_s: float = 30.0,
    ) -> None:
        self.sink = sink
        self.spool = spool
        self.catalog = catalog
        self.slice_s = slice_s
        self.max_queued_rows = max_queued_rows
        self.retry_s = retry_s
        self.max_retry_s = max_retry_s
        self.queue: deque[Batch] = deque()
        self.queued_rows = 0
        self.spooling = spool.size() > 0  # a spool left by the last run is replayed first
        self.rows_written = 0
        self.rows_failed = 0
        self.last_error = ""
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        if not self.spooling:
            self._idle.set()  # not idle until a spool left by the last run has been replayed
        self._task: asyncio.Task[None] | None = None
        self._inflight: Batch | None = None
        self._backoff = retry_s
        watch = getattr(sink, "watch_spool", None)
        if watch is not None:  # a sink that prunes what replays rely on asks about the spool first
            watch(self.spool_pending)

    def spool_pending(self) -> bool:
        """True while the spool holds batches (or may: when its size cannot be read)."""
        if self.spooling:
            return True
        try:
            return self.spool.path.stat().st_size > 0  # by path: still right once the spool is closed
        except FileNotFoundError:
            return False
        except OSError:
            return True

    def put(self, batch: Batch) -> None:
        self.queue.append(batch)
        self.queued_rows += len(batch)
        self._idle.clear()
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"flusher-{self.sink.name}")

    async def stop(self, *, timeout_s: float) -> None:
        """Write (or spool) what is queued, then stop."""
        if self._task is None:
            return
        if not self.spooling:  # a sink that is down will not drain the queue: spool it now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), timeout_s)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        # A batch cut off mid-write may or may not be stored: spool it (replays are idempotent),
        # then anything still queued, for the next run.
        if self._inflight is not None:
            self.queue.appendleft(self._inflight)
            self._inflight = None
        while self.queue:
            await self._spool_batch(self.queue.popleft())
        self.queued_rows = 0

    async def _run(self) -> None:
        while True:
            if self.spooling:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._backoff)
            else:
                await self._wake.wait()
            self._wake.clear()
            try:
                await self._work()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the worker must survive anything a sink throws
                log.exception("flusher for %s failed; continuing", self.sink.name)
                self.last_error = repr(exc)
            if not self.queue and not self.spooling:
                self._idle.set()

    async def _work(self) -> None:
        if self.spooling:
            await self._spill()
            if await self._recovered():
                await self._drain()
            if self.spooling:
                return
        while self.queue:
            if self.queued_rows > self.max_queued_rows:
                log.warning("sink %s is %d rows behind; spooling", self.sink.name, self.queued_rows)
                self.spooling = True
                await self._spill()
                return
            batch = self._next_batch()
            self.queued_rows -= len(batch)
            self._inflight = batch
            try:
                await self.sink.write(batch)
                self._inflight = None
                self.rows_written += len(batch)
            except TransientError as exc:
                self._inflight = None
                self._down(exc)
                await self._spool_batch(batch)
                await release(batch.items)
                await self._spill()
                return
            except StorageError as exc:
                self._inflight = None
                self.rows_failed += len(batch)
                self.last_error = str(exc)
                log.error("sink %s refused %d rows of %s: %s", self.sink.name, len(batch),
                          batch.spec.full_name, exc)
            await release(batch.items)

    def _next_batch(self) -> Batch:
        """The next batch, merged with the queued batches of the same table behind it (up to
        :data:`MERGE_ROWS`): a sink that falls behind gets fewer, larger writes, so fewer commits."""
        batch = self.queue.popleft()
        q = self.queue
        if not q or q[0].spec is not batch.spec or len(batch) + len(q[0]) > MERGE_ROWS:
            return batch
        items = list(batch.items)
        units: list[Unit] | None = None if batch.units is None else list(batch.units)
        while q and q[0].spec is batch.spec and len(items) + len(q[0]) <= MERGE_ROWS:
            nxt = q[0]
            if (nxt.built != batch.built or nxt.replay != batch.replay
                    or (nxt.units is None) != (units is None)):
                break
            if units is not None and nxt.units is not None:  # every constituent unit keeps its id
                base = len(items)
                units.extend((uid, base + end) for uid, end in nxt.units)
            items.extend(q.popleft().items)
        return Batch(batch.spec, items, built=batch.built, replay=batch.replay, units=units)

    def _down(self, exc: Exception) -> None:
        if not self.spooling:
            log.warning("sink %s is down (%s); spooling to %s", self.sink.name, exc, self.spool.path)
        self.spooling = True
        self.last_error = str(exc)

    async def _append_spool(self, table: str, rows: list[Row]) -> None:
        for i in range(0, len(rows), FRAME_ROWS):
            self.spool.append(table, rows[i : i + FRAME_ROWS])
            await asyncio.sleep(0)

    async def _spool_batch(self, batch: Batch) -> None:
        """Append ``batch`` to the spool: one frame per unit (its id with it) when it has units."""
        table = batch.spec.full_name
        if batch.units is None:
            await self._append_spool(table, await build_rows(batch, self.slice_s))
            return
        for uid, a, b in batch.unit_slices():
            part = Batch(batch.spec, batch.items[a:b], built=batch.built)
            self.spool.append(table, await build_rows(part, self.slice_s), uid)
            await asyncio.sleep(0)

    async def _spill(self) -> None:
        while self.queue:
            batch = self.queue.popleft()
            self.queued_rows -= len(batch)
            await self._spool_batch(batch)
            await release(batch.items)

    async def _recovered(self) -> bool:
        try:
            await self.sink.ping()
        except TransientError as exc:
            self.last_error = str(exc)
            self._backoff = min(self._backoff * 2, self.max_retry_s)
            return False
        self._backoff = self.retry_s
        return True

    async def _drain(self) -> None:
        """Replay the spool in order; stop (still spooling) if the sink fails again."""
        replayed = 0
        for table, rows, frame_unit in self.spool.entries():
            try:
                spec = self.catalog.table(table)
                unit = frame_unit
                if spec.batch_keyed and not unit:  # spooled before frames carried unit ids
                    unit = "spool:" + hashlib.blake2b(_frame_enc.encode(rows), digest_size=16).hexdigest()
                units = [(unit, len(rows))] if unit else None
                await self.sink.write(Batch(spec, rows, built=True, replay=True, units=units))
            except TransientError as exc:
                self._down(exc)
                return
            except StorageError as exc:  # a table no longer registered, or rows the store refuses
                self.rows_failed += len(rows)
                log.error("sink %s refused %d spooled rows of %s: %s", self.sink.name, len(rows), table, exc)
                continue
            replayed += len(rows)
            self.rows_written += len(rows)
            if self.queued_rows > self.max_queued_rows:
                await self._spill()  # appended behind the frames still to be read
        self.spool.clear()
        self.spooling = False
        log.info("sink %s is back; replayed %d spooled rows", self.sink.name, replayed)


class Flusher:
    """Routes the recorder's batches to sink workers every ``flush_ms`` or ``flush_rows`` rows."""

    def __init__(
        self,
        recorder: BatchRecorder,
        sinks: dict[str, Sink],
        *,
        spool_dir: Path,
        default_sink: str = "sqlite",
        routes: dict[str, str] | None = None,
        flush_ms: int = 250,
        max_buffer_rows: int = 500_000,
        slice_us: int = 250,
        retry_s: float = 1.0,
        catalog: Catalog | None = None,
    ) -> None:
        self.recorder = recorder
        self.sinks = sinks
        self.catalog = catalog or CATALOG
        self.default_sink = default_sink
        self.routes = dict(routes or {})
        for target in (default_sink, *self.routes.values()):
            if target != "none" and target not in sinks:
                raise StorageError(f"storage route names sink {target!r}, which is not configured",
                                   sink=target)
        self.flush_s = flush_ms / 1000
        self.workers = {
            name: SinkWorker(sink, Spool(spool_dir / f"{name}.spool"), self.catalog,
                             slice_s=slice_us / 1e6, max_queued_rows=max_buffer_rows, retry_s=retry_s)
            for name, sink in sinks.items()
        }
        self._route_cache: dict[TableSpec, SinkWorker | None] = {}
        self._drops: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        #: Makes unit ids unique across runs: batch numbers restart at 0 with every flusher.
        self.run_id = uuid.uuid4().hex[:16]

    def route(self, spec: TableSpec) -> str:
        """The sink a table goes to: its own route, else its group's, else the default."""
        return self.routes.get(spec.full_name) or self.routes.get(spec.group) or self.default_sink

    def tables_for(self, sink: str) -> list[TableSpec]:
        return [s for s in self.catalog.tables() if self.route(s) == sink]

    async def start(self) -> None:
        """Start every sink (a sink that is down starts spooling) and the flushing tasks."""
        for name, sink in self.sinks.items():
            try:
                await sink.start(self.tables_for(name))
            except TransientError as exc:
                self.workers[name]._down(exc)
        for worker in self.workers.values():
            worker.start()
            if worker.spooling:
                worker._wake.set()
        self.recorder.on_full(self._wake.set)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="flusher")

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_s)
            self._wake.clear()
            self.dispatch()

    def dispatch(self) -> None:
        """Hand every buffered batch to its sink's worker (cheap: no rows are built here).

        The recorder's fresh buffers are then moved out of the young GC generations while still
        empty. Recorded structs are not GC-tracked, so recording triggers few collections and a
        buffer would otherwise stay young while it grows to a whole batch: every young collection
        then walks each such list (three 50k-row lists made one take 2.3 ms on the loop)."""
        taken = self.recorder.take()
        if taken and gc.isenabled():
            gc.collect(1)
        for spec, items in taken:
            if spec in self._route_cache:
                worker = self._route_cache[spec]
            else:
                worker = self._route_cache[spec] = self.workers.get(self.route(spec))
            if worker is not None:
                units = make_units(f"{self.run_id}:{self.batches}", len(items)) if spec.batch_keyed else None
                worker.put(Batch(spec, items, units=units))
                self.batches += 1
            elif len(items) > 4096:  # routed to "none": free big lists in slices, off this call
                task = asyncio.get_running_loop().create_task(release(items))
                self._drops.add(task)
                task.add_done_callback(self._drops.discard)

    async def flush(self, timeout_s: float = 30.0) -> None:
        """Write everything recorded so far (tests, shutdown, end of a backtest)."""
        self.dispatch()
        waits = [w._idle.wait() for w in self.workers.values()]
        await asyncio.wait_for(asyncio.gather(*waits), timeout_s)

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Flush what is buffered, stop the tasks and close the sinks; unwritten rows stay spooled."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.recorder.on_full(None)
        self.dispatch()
        for worker in self.workers.values():
            await worker.stop(timeout_s=timeout_s)
            worker.spool.close()
        for sink in self.sinks.values():
            try:
                await sink.close()
            except Exception:
                log.exception("closing sink %s", sink.name)

    def stats(self) -> dict[str, Any]:
        """Counters for health checks and the admin socket."""
        return {
            "recorded": self.recorder.recorded + self.recorder.pending,
            "buffered": self.recorder.pending,
            "dropped": self.recorder.dropped,
            "batches": self.batches,
            "sinks": {
                name: {
                    "written": w.rows_written,
                    "queued": w.queued_rows,
                    "spooling": w.spooling,
                    "spooled_bytes": w.spool.size(),
                    "failed": w.rows_failed,
                    "last_error": w.last_error,
                    # Rows a sink left out because they cannot be stored (each one logged).
                    "rejected": int(getattr(w.sink, "rejected", 0) or 0),
                    **_ledger_stats(w.sink),
                }
                for name, w in self.workers.items()
            },
        }


def _ledger_stats(sink: Sink) -> dict[str, Any]:
    """``{"ledger": ...}`` for a sink that prunes a batch ledger (PostgreSQL), else nothing."""
    stats = getattr(sink, "ledger_stats", None)
    return {"ledger": stats()} if stats is not None else {}
