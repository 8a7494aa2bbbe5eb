"""The PostgreSQL writer process: ``python -m omnid.storage.sinks.pg_writer``, its options (DSN
included) as JSON in the environment variable ``OMNID_PG_WRITER`` (not argv: others can read that).

Row encoding runs here, off the daemon's loop: this process runs an ordinary
:class:`omnid.storage.sinks.postgres.PostgresSink` on its own event loop (the same binary COPY of
our own encoding, :mod:`omnid.storage.sinks.pgcopy`, in pieces of ``PIECE_ROWS`` rows as there is
no loop to protect; day partitions, the ledger, the idempotent staging path, the error mapping),
so a row PostgreSQL cannot hold is logged (on this process's stderr) and left out and the rest of
its part stored, exactly as on the loop. The daemon only sends it built rows, msgpack-framed
(:mod:`omnid.storage.framing`), over its stdin:

- ``["begin"]`` forgets any rows received so far (a write that was cut off);
- ``["rows", [row, ...]]`` adds rows to the batch being received (no reply);
- ``["write", spec, replay, seq, units]`` stores the rows received as one part (one transaction)
  of table ``spec``, on a free connection, while the next part is being received; ``units`` is
  ``[[id, end], ...]`` over those rows for batch-keyed tables, else nil;
- ``["start", [spec, ...]]`` migrates and creates tables; ``["ping"]`` checks the server.

Each request except ``begin`` and ``rows`` gets one reply on stdout:
``["ok", copies, upserts, replays, units_skipped, rejected]`` (the sink's counters) or
``["error", kind, message]`` with ``kind`` ``"down"`` (the server is not
reachable: spool and retry) or ``"bad"`` (the data or the SQL); a write's reply ends with its
``seq`` (parts on different connections may finish out of order).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import sys
import zlib
from collections.abc import Awaitable
from typing import Any, BinaryIO

import msgspec

from omnid.errors import StorageError, TransientError
from omnid.storage.catalog import Column, Row, TableSpec
from omnid.storage.framing import HEADER, MAX_FRAME, frame
from omnid.storage.sinks.base import Batch
from omnid.storage.sinks.postgres import PostgresSink

log = logging.getLogger("omnid.storage")

_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder()

#: Parts that may wait for a free connection while the next one is being received.
WAITING_PARTS = 2
#: Replies between full garbage collections.
GC_EVERY = 16

#: A table as it travels to the writer: the rows are built already, so no row function is needed.
SpecWire = tuple[str, str, list[tuple[str, str]], list[str], str, str, bool]


def spec_to_wire(spec: TableSpec) -> SpecWire:
    return (spec.group, spec.name, [(c.name, c.kind) for c in spec.columns], list(spec.key),
            spec.ts_column, spec.partition_ts, spec.batch_keyed)


def _no_row(item: Any) -> Row:
    raise StorageError("the postgres writer process receives built rows only")


def spec_from_wire(w: Any) -> TableSpec:
    group, name, cols, key, ts_column, partition_ts, batch_keyed = w
    return TableSpec(group, name, [Column(n, k) for n, k in cols], tuple(key), _no_row,
                     ts_column=ts_column, partition_ts=partition_ts, batch_keyed=bool(batch_keyed))


class Writer:
    """The writer's state: one sink, the tables it has seen, the part being received, and the
    parts being written (one per connection at a time, while the next part arrives)."""

    def __init__(self, sink: PostgresSink, out: BinaryIO) -> None:
        self.sink = sink
        self.out = out
        self.specs: dict[str, TableSpec] = {}
        self.rows: list[Row] = []
        self.free: asyncio.Queue[int] = asyncio.Queue()
        for i in range(sink.connections):
            self.free.put_nowait(i)
        #: Parts received but not yet written: one per connection plus some waiting, so the next
        #: part is read while every connection is busy (and memory stays bounded).
        self.slots = asyncio.Semaphore(sink.connections + WAITING_PARTS)
        self.tasks: set[asyncio.Task[None]] = set()
        self.replies = 0

    def spec(self, w: Any) -> TableSpec:
        """One TableSpec object per table (the sink caches by object and by name)."""
        full = f"{w[0]}.{w[1]}"
        spec = self.specs.get(full)
        if spec is None:
            spec = self.specs[full] = spec_from_wire(w)
        return spec

    def reply(self, msg: list[Any]) -> None:
        self.out.write(frame(_enc.encode(msg)))
        self.out.flush()
        self.replies += 1
        if self.replies % GC_EVERY == 0:
            gc.collect()  # between parts the heap is small: a full pass is cheap here

    async def guarded(self, op: str, call: Awaitable[None], tail: list[Any]) -> list[Any]:
        """Run ``call``; the reply it earns (``tail`` is appended to it)."""
        try:
            await call
        except TransientError as exc:
            return ["error", "down", str(exc), *tail]
        except StorageError as exc:
            return ["error", "bad", str(exc), *tail]
        except Exception as exc:  # anything else is this request's problem, not the process's
            log.exception("postgres writer: %s failed", op)
            return ["error", "bad", repr(exc), *tail]
        s = self.sink
        return ["ok", s.copies, s.upserts, s.replays, s.units_skipped, s.rejected, *tail]

    async def _part(self, batch: Batch, seq: int) -> None:
        try:
            i = await self.free.get()
            try:
                self.reply(await self.guarded("write", self.sink.write_on(i, batch), [seq]))
            finally:
                self.free.put_nowait(i)
        finally:
            self.slots.release()

    async def handle(self, msg: list[Any]) -> None:
        op = msg[0]
        if op == "rows":
            self.rows.extend(msg[1])
        elif op == "begin":
            self.rows = []
        elif op == "write":  # ["write", spec, replay, seq, units]: runs while the next part arrives
            rows, self.rows = self.rows, []
            units = None if msg[4] is None else [(str(u), int(e)) for u, e in msg[4]]
            batch = Batch(self.spec(msg[1]), rows, built=True, replay=bool(msg[2]), units=units)
            await self.slots.acquire()  # bounded: parts copying plus one or two waiting
            task = asyncio.get_running_loop().create_task(self._part(batch, msg[3]))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        elif op == "start":
            self.reply(await self.guarded("start", self.sink.start([self.spec(w) for w in msg[1]]), []))
        elif op == "ping":
            self.reply(await self.guarded("ping", self.sink.ping(), []))
        else:
            self.reply(["error", "bad", f"unknown request {op!r}"])


async def serve(opts: dict[str, Any]) -> int:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_FRAME)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    # Automatic collections walk every row of the parts being received, again and again: they
    # made decoding ~4x slower (1.5 vs 0.37 µs a row). Rows hold no cycles; collect by hand.
    gc.disable()
    writer = Writer(PostgresSink(
        opts["dsn"], schema_prefix=opts["prefix"], migrate_on_start=opts["migrate"],
        timeout_s=opts["timeout_s"], partitions_ahead_days=opts["ahead"], slice_s=0.0,
        connections=opts["connections"],
    ), sys.stdout.buffer)
    try:
        while True:
            try:
                length, crc = HEADER.unpack(await reader.readexactly(HEADER.size))
                payload = await reader.readexactly(length)
            except asyncio.IncompleteReadError:  # the daemon closed the pipe or went away
                return 0
            if zlib.crc32(payload) != crc:
                log.error("postgres writer: a request failed its CRC; stopping")
                return 1
            await writer.handle(_dec.decode(payload))
    finally:
        if writer.tasks:
            await asyncio.gather(*writer.tasks, return_exceptions=True)
        await writer.sink.close()


#: The environment variable that carries the writer's options.
OPTIONS_ENV = "OMNID_PG_WRITER"


def main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s pg_writer %(levelname)s %(message)s")
    opts = json.loads(os.environ[OPTIONS_ENV])
    try:
        import uvloop

        return uvloop.run(serve(opts))
    except ImportError:
        return asyncio.run(serve(opts))


if __name__ == "__main__":
    sys.exit(main())
