"""PostgreSQL written by a separate process, so COPY encoding never runs on the daemon's loop.

:class:`PostgresProcessSink` has :class:`omnid.storage.sinks.postgres.PostgresSink`'s behaviour
(binary COPY of our own encoding, a row that cannot be encoded logged and left out, day
partitions, the batch ledger, the idempotent staging path for replays and duplicates, outages as
:class:`TransientError`) because the writer process (:mod:`omnid.storage.sinks.pg_writer`) runs
exactly that class. The loop's share of a write is building rows in slices (as for every sink) and
msgpack-encoding them into frames of ``frame_rows`` rows (~0.25 µs a row); a row msgpack cannot
encode (an int beyond 64 bits, a lone surrogate) is logged and left out here, its unit shortened.
Measured with ``bench/storage.py --probe-ms 0`` (1M ticks, 3 runs, load ~3): the longest run of our
code on the loop 1.3 ms this way against 2.9-3.0 ms with asyncpg on the loop; throughput is bound by
the machine's two cores (the COPY's server side costs ~2.3 µs a row) and comes out similar or lower.
Our encoder costs the writer more CPU than asyncpg's Cython record encoder did (0.70 against 0.31 µs
a row, one 500k-row COPY): on two busy cores ``bench/storage.py`` put this sink at 0.69-0.93 of the
loop writer's rows/s, against 0.83-0.84 before (1M ticks, 3 interleaved rounds, load 2-4.7).

The batch ledger is pruned here, on the daemon's loop next to the flusher, by the same
:class:`omnid.storage.sinks.pg_ledger.LedgerPruner` as the loop writer's, with the same guarantee
(never while the spool holds batches: the flusher's answer is read before every chunk).

A write returns once the writer has committed the batch, so the flusher's guarantees (spool on
outage, in-order replay, re-spooling a batch cut off by a stop) hold unchanged. If the writer
dies, hangs past its deadline or a write is cancelled while it is in flight, the process is killed
(an open COPY is rolled back with its connection) and the write raises :class:`TransientError`;
the next write or ping starts a fresh process.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import msgspec

import omnid
from omnid.errors import OmnidError, StorageError, TransientError
from omnid.storage.catalog import Row, TableSpec
from omnid.storage.framing import HEADER, frame
from omnid.storage.sinks.base import Batch, Unit, iter_rows
from omnid.storage.sinks.pg_ledger import (
    LEDGER_KEEP_S,
    PRUNE_CHUNK,
    PRUNE_EVERY_S,
    LedgerPruner,
    LedgerRetention,
)
from omnid.storage.sinks.pg_writer import OPTIONS_ENV, spec_to_wire

log = logging.getLogger("omnid.storage")

#: Rows per frame sent to the writer: one encode of this many rows stays well under a slice.
FRAME_ROWS = 2048
#: Rows per part: each part is one COPY transaction, started by the writer on a free connection
#: as soon as its rows are in, so the loop sends the next part while the server stores this one.
PART_ROWS = 20_000

_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder()
_BEGIN = frame(_enc.encode(["begin"]))


class PostgresProcessSink(LedgerRetention):
    """The PostgreSQL sink, writing through one writer process started on :meth:`start`."""

    name = "postgres"

    def __init__(
        self,
        dsn: str,
        *,
        schema_prefix: str = "",
        migrate_on_start: bool = True,
        timeout_s: float = 10.0,
        partitions_ahead_days: int = 2,
        slice_s: float = 0.0005,
        connections: int = 2,
        frame_rows: int = FRAME_ROWS,
        part_rows: int = PART_ROWS,
        ledger_keep_s: float = LEDGER_KEEP_S,
        prune_every_s: float = PRUNE_EVERY_S,
        prune_chunk: int = PRUNE_CHUNK,
    ) -> None:
        self.dsn = dsn
        self.prefix = schema_prefix
        self.timeout_s = timeout_s
        self.slice_s = slice_s
        self.frame_rows = max(1, frame_rows)
        self.part_rows = max(1, part_rows)
        self._opts = json.dumps({"dsn": dsn, "prefix": schema_prefix, "migrate": migrate_on_start,
                                 "timeout_s": timeout_s, "ahead": partitions_ahead_days,
                                 "connections": max(1, connections)})
        #: How long a reply may take: a write may connect, create partitions, COPY and fall back to
        #: the staging path, each bounded by ``timeout_s`` inside the writer.
        self.reply_timeout_s = 4 * timeout_s + 5.0
        self._proc: asyncio.subprocess.Process | None = None
        self._tables: list[TableSpec] = []
        self._started = False  # this process has been sent the tables
        self._lock = asyncio.Lock()
        self._wire: dict[TableSpec, Any] = {}
        self.copies = 0
        self.upserts = 0
        #: The writer's counters of batch-keyed replays and of units the ledger had already.
        self.replays = 0
        self.units_skipped = 0
        self.restarts = 0
        #: Rows left out, each logged: by the writer's COPY encoder (its count, summed over the
        #: writer processes this sink has run), and here (rows msgpack cannot encode).
        self.rejected_writer = 0
        self._rejected_proc = 0  # the current writer's count
        self.rejected_here = 0
        #: Prunes the batch ledger once the flusher that owns this sink's spool watches it. It runs
        #: here, next to the flusher (see omnid.storage.sinks.pg_ledger), not in the writer.
        self.pruner = LedgerPruner(dsn, schema_prefix=schema_prefix, timeout_s=timeout_s,
                                   keep_s=ledger_keep_s, every_s=prune_every_s, chunk=prune_chunk)

    async def _spawn(self) -> asyncio.subprocess.Process:
        if self._proc is not None and self._proc.returncode is None:
            return self._proc
        root = str(Path(omnid.__file__).resolve().parent.parent)
        path_var = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path_var, OPTIONS_ENV: self._opts}
        try:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "omnid.storage.sinks.pg_writer",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
                # Its own session, as the SQLite writer's: a terminal Ctrl-C must not kill it
                # before the daemon's final flush (it exits at the end of its input).
                start_new_session=True,
            )
        except OSError as exc:
            raise TransientError(f"postgres: cannot start the writer process: {exc}") from exc
        self._started = False
        self._rejected_proc = 0
        self.restarts += 1
        return self._proc

    async def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def _send(self, proc: asyncio.subprocess.Process, data: bytes) -> None:
        assert proc.stdin is not None
        proc.stdin.write(data)
        await proc.stdin.drain()

    async def _reply(self, proc: asyncio.subprocess.Process, what: str) -> None:
        """Read one reply; raise the error it carries."""
        assert proc.stdout is not None
        head = await asyncio.wait_for(proc.stdout.readexactly(HEADER.size), self.reply_timeout_s)
        length, _ = HEADER.unpack(head)
        reply = _dec.decode(await proc.stdout.readexactly(length))
        if reply[0] == "ok":
            self.copies, self.upserts = max(self.copies, reply[1]), max(self.upserts, reply[2])
            self.replays = max(self.replays, reply[3])
            self.units_skipped = max(self.units_skipped, reply[4])
            if reply[5] > self._rejected_proc:  # a fresh writer counts from 0 again
                self.rejected_writer += reply[5] - self._rejected_proc
                self._rejected_proc = reply[5]
            return
        kind, text = reply[1], reply[2]
        if kind == "down":
            raise TransientError(f"{text} (writer process, {what})")
        raise StorageError(f"{text} (writer process, {what})")

    async def _call(self, what: str, body: Any) -> Any:
        """Run ``body(proc)`` against a started writer; any failure of the pipe or the process,
        a timeout or a cancellation kills the process (the next call starts a fresh one)."""
        async with self._lock:
            try:
                proc = await self._spawn()
                if not self._started and self._tables:
                    specs = [spec_to_wire(s) for s in self._tables]
                    await self._send(proc, frame(_enc.encode(["start", specs])))
                    await self._reply(proc, "start")
                    self._started = True
                return await body(proc)
            except (OSError, ConnectionError, asyncio.IncompleteReadError, TimeoutError) as exc:
                await self._kill()
                raise TransientError(f"postgres: the writer process failed during {what}: {exc!r}") from exc
            except TransientError:
                raise
            except StorageError:
                raise
            except BaseException:  # cancelled mid-request: the reply would come to the next one
                await self._kill()
                raise

    async def _replies(self, proc: asyncio.subprocess.Process, parts: int, spec: TableSpec) -> None:
        """Wait for every part's reply; then raise the first failure ("down" before "bad": the
        whole batch is retried, idempotently, when the server is back)."""
        errors: list[OmnidError] = []
        for _ in range(parts):
            try:
                await self._reply(proc, f"writing {spec.full_name}")
            except (TransientError, StorageError) as exc:
                errors.append(exc)
        for err in errors:
            if isinstance(err, TransientError):
                raise err
        if errors:
            raise errors[0]

    async def start(self, tables: list[TableSpec]) -> None:
        """Start the writer; it applies migrations and creates every table and today's partitions."""
        self._tables = list(tables)
        self._started = False
        self.pruner.set_tables(self._tables)

        async def nothing(proc: asyncio.subprocess.Process) -> None:
            return None

        await self._call("start", nothing)
        await self.pruner.schedule(connect=True)

    @property
    def rejected(self) -> int:
        """Rows left out because they could not be encoded (each one logged)."""
        return self.rejected_writer + self.rejected_here

    def _rows_frame(self, spec: TableSpec, rows: list[Row]) -> tuple[bytes, list[int]]:
        """The frame that sends ``rows``, and the positions of the rows left out of it: a row
        msgpack cannot encode (an int outside int64/uint64, a lone surrogate, an unknown type) is
        logged and left out, as the writer's COPY encoder leaves out a row PostgreSQL cannot hold."""
        try:
            return frame(_enc.encode(("rows", rows))), []
        except Exception:  # some row cannot travel: find it, send the others
            pass
        kept: list[Row] = []
        dropped: list[int] = []
        for i, row in enumerate(rows):
            try:
                _enc.encode(row)
            except Exception as exc:
                dropped.append(i)
                self.rejected_here += 1
                log.error("cannot store a row in %s: %r", spec.full_name, exc)
            else:
                kept.append(row)
        return frame(_enc.encode(("rows", kept))), dropped

    async def _send_rows(self, proc: asyncio.subprocess.Process, spec: TableSpec, rows: list[Row],
                         marks: list[Unit], units: list[Unit], sent: int) -> int:
        """Send ``rows`` (if any) to the part being received, of which ``sent`` rows are in; turn
        ``marks`` (units ending at an offset into ``rows``) into ``units`` ending at an offset
        into the part's rows as sent (a row left out shortens its unit). The part's new size."""
        dropped: list[int] = []
        if rows:
            data, dropped = self._rows_frame(spec, rows)
            await self._send(proc, data)
        for uid, end in marks:
            units.append((uid, sent + end - bisect.bisect_left(dropped, end)))
        marks.clear()
        return sent + len(rows) - len(dropped)

    async def write(self, batch: Batch) -> None:
        if not len(batch):
            return
        spec = batch.spec
        wire = self._wire.get(spec)
        if wire is None:
            wire = self._wire[spec] = spec_to_wire(spec)
        step = self.frame_rows

        part_rows = self.part_rows
        if batch.units is not None:
            await self._write_units(batch, wire)
            return

        async def body(proc: asyncio.subprocess.Process) -> None:
            await self._send(proc, _BEGIN)
            pending: list[Row] = []
            parts = in_part = 0
            async for chunk in iter_rows(batch, self.slice_s):
                pending.extend(chunk)
                if len(pending) >= step:
                    in_part = await self._send_rows(proc, spec, pending, [], [], in_part)
                    pending = []
                    if in_part >= part_rows:  # the writer starts on it while we go on
                        await self._send(proc, frame(_enc.encode(("write", wire, batch.replay, parts, None))))
                        parts += 1
                        in_part = 0
            in_part = await self._send_rows(proc, spec, pending, [], [], in_part)
            if in_part:
                await self._send(proc, frame(_enc.encode(("write", wire, batch.replay, parts, None))))
                parts += 1
            await self._replies(proc, parts, spec)

        try:
            await self._call(f"writing {spec.full_name}", body)
        except (TransientError, StorageError) as exc:
            exc.context.setdefault("table", spec.full_name)
            raise

    async def _write_units(self, batch: Batch, wire: Any) -> None:
        """A batch with unit ids: parts of whole units (about ``part_rows`` rows), each sent with
        its units' ids and end offsets over the rows actually sent (an item that cannot become a
        row, or a row that cannot travel, shortens its unit), so the writer stores each unit
        exactly once."""
        spec = batch.spec
        parts = batch.split(max(1, -(-len(batch) // self.part_rows)))

        perf = time.perf_counter

        async def body(proc: asyncio.subprocess.Process) -> None:
            await self._send(proc, _BEGIN)
            sent = 0
            start = perf()
            for part in parts:
                units: list[Unit] = []
                marks: list[Unit] = []  # units ending in `pending`, at an offset into it
                pending: list[Row] = []
                in_part = 0
                for uid, a, b in part.unit_slices():
                    async for chunk in iter_rows(Batch(spec, part.items[a:b], built=batch.built),
                                                 self.slice_s):
                        pending.extend(chunk)
                        if len(pending) >= self.frame_rows:
                            in_part = await self._send_rows(proc, spec, pending, marks, units, in_part)
                            pending = []
                    marks.append((uid, len(pending)))
                    if perf() - start >= self.slice_s:  # iter_rows times each unit alone
                        await asyncio.sleep(0)
                        start = perf()
                await self._send_rows(proc, spec, pending, marks, units, in_part)
                await self._send(proc, frame(_enc.encode(("write", wire, batch.replay, sent, units))))
                sent += 1
            await self._replies(proc, sent, spec)

        try:
            await self._call(f"writing {spec.full_name}", body)
        except (TransientError, StorageError) as exc:
            exc.context.setdefault("table", spec.full_name)
            raise

    async def ping(self) -> None:
        async def body(proc: asyncio.subprocess.Process) -> None:
            await self._send(proc, frame(_enc.encode(["ping"])))
            await self._reply(proc, "ping")

        await self._call("ping", body)
        await self.pruner.schedule()  # a start-up that failed part way never started it

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Run a read on a connection of its own (queries and tests)."""
        conn = await asyncpg.connect(self.dsn, timeout=self.timeout_s)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    async def close(self) -> None:
        await self.pruner.close()
        async with self._lock:
            proc, self._proc = self._proc, None
            if proc is None:
                return
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), self.timeout_s)
            except TimeoutError:
                proc.kill()
                await proc.wait()
