"""The sink interface, and the row-building helper that keeps the event loop responsive."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from itertools import islice
from typing import Any, Protocol, overload

from omnid.storage.catalog import Row, TableSpec

log = logging.getLogger("omnid.storage")


#: ``(unit id, end offset)``: items ``[previous end, end)`` of a batch form one unit, the grain at
#: which batch-keyed tables are stored exactly once (see :class:`Batch`).
Unit = tuple[str, int]

#: Items per unit. Equal to the spool's frame size, so a spooled unit is one frame.
UNIT_ROWS = 1000


class Span(Sequence[Any]):
    """Items ``[lo, hi)`` of a list, without copying them. A split part as a fresh 25k-item list
    is young: the next young GC collection walks all of it, ~1 ms on the loop."""

    __slots__ = ("hi", "lo", "src")
    src: Sequence[Any]
    lo: int
    hi: int

    def __init__(self, src: Sequence[Any], lo: int, hi: int) -> None:
        if isinstance(src, Span):
            lo, hi = src.lo + lo, src.lo + hi
            src = src.src
        self.src = src
        self.lo = lo
        self.hi = hi

    def __len__(self) -> int:
        return self.hi - self.lo

    @overload
    def __getitem__(self, i: int) -> Any: ...

    @overload
    def __getitem__(self, i: slice) -> list[Any]: ...

    def __getitem__(self, i: int | slice) -> Any:
        if isinstance(i, slice):
            start, stop, step = i.indices(self.hi - self.lo)
            return list(self.src[self.lo + start : self.lo + stop : step])
        n = self.hi - self.lo
        if not -n <= i < n:
            raise IndexError(i)
        return self.src[self.lo + i if i >= 0 else self.hi + i]

    def __iter__(self) -> Iterator[Any]:
        return islice(self.src, self.lo, self.hi)


class Batch:
    """Items bound for one table. ``built`` says they are rows already (a spool replay);
    ``replay`` says some of them may be stored already, so the sink must take the idempotent path.

    ``units`` (batch-keyed tables) cut the items into consecutive units, each with a durable id: a
    sink stores a unit's items and records its id in one transaction, and skips a unit whose id is
    recorded already. Ids stay with their items through merging, splitting and the spool."""

    __slots__ = ("built", "items", "replay", "spec", "units")

    def __init__(self, spec: TableSpec, items: Sequence[Any], *, built: bool = False, replay: bool = False,
                 units: list[Unit] | None = None):
        self.spec = spec
        self.items = items
        self.built = built
        self.replay = replay
        self.units = units

    def __len__(self) -> int:
        return len(self.items)

    def unit_slices(self) -> list[tuple[str, int, int]]:
        """``(id, start, end)`` of every unit."""
        out: list[tuple[str, int, int]] = []
        start = 0
        for uid, end in self.units or ():
            out.append((uid, start, end))
            start = end
        return out

    def only(self, ids: set[str]) -> Batch:
        """The units whose ids are in ``ids``, as one batch (what is left to write of a replay)."""
        items: list[Any] = []
        units: list[Unit] = []
        for uid, a, b in self.unit_slices():
            if uid in ids:
                items.extend(self.items[a:b])
                units.append((uid, len(items)))
        return Batch(self.spec, items, built=self.built, replay=self.replay, units=units)

    def split(self, parts: int, *, copy: bool = True) -> list[Batch]:
        """About ``parts`` consecutive parts of similar size, cut at unit boundaries (a unit is
        never split: it is stored whole or not at all) when the batch has units. ``copy=False``
        makes the parts :class:`Span` views of this batch's items (for a sink writing them at once
        on the loop: no large young lists)."""
        if not copy:
            return [Batch(self.spec, Span(self.items, a, b), built=self.built, replay=self.replay,
                          units=u) for a, b, u in self._cuts(parts)]
        return [Batch(self.spec, self.items[a:b], built=self.built, replay=self.replay, units=u)
                for a, b, u in self._cuts(parts)]

    def _cuts(self, parts: int) -> list[tuple[int, int, list[Unit] | None]]:
        """``(start, end, units)`` of each part :meth:`split` makes."""
        n = len(self.items)
        step = max(1, -(-n // max(1, parts)))
        if self.units is None:
            return [(j, min(n, j + step), None) for j in range(0, n, step)]
        out: list[tuple[int, int, list[Unit] | None]] = []
        cur: list[Unit] = []
        start = 0
        for uid, _, b in self.unit_slices():
            cur.append((uid, b - start))
            if b - start >= step:
                out.append((start, b, cur))
                cur, start = [], b
        if cur:
            out.append((start, n, cur))
        return out


def make_units(prefix: str, n: int, size: int = UNIT_ROWS) -> list[Unit]:
    """Units of ``size`` items for a batch of ``n``, with ids ``prefix:0``, ``prefix:1``, ..."""
    return [(f"{prefix}:{k}", min(n, (k + 1) * size)) for k in range(-(-n // size))]


class Sink(Protocol):
    """A store. ``write`` raises :class:`omnid.errors.TransientError` when the store is unreachable
    (the flusher then spools and retries) and :class:`omnid.errors.StorageError` for anything else.

    Sinks build a batch's rows themselves, a chunk at a time, with :func:`iter_rows` as they send
    them: rows then die young (no old-generation garbage collections on the loop) and never all
    exist at once."""

    name: str

    async def start(self, tables: list[TableSpec]) -> None:
        """Connect, apply migrations, make sure every table exists."""
        ...

    async def write(self, batch: Batch) -> None:
        """Store ``batch``'s rows idempotently: a row already stored stays stored once."""
        ...

    async def ping(self) -> None:
        """Raise TransientError unless the store answers (used to detect it came back)."""
        ...

    async def close(self) -> None: ...


#: Rows built between clock checks; small enough that one chunk stays well under the slice.
CHUNK = 256


async def build_rows(batch: Batch, slice_s: float) -> list[Row]:
    """All of ``batch``'s rows, built in slices of at most ``slice_s`` seconds between yields."""
    if batch.built:
        return list(batch.items)
    rows: list[Row] = []
    async for chunk in iter_rows(batch, slice_s):
        rows.extend(chunk)
    return rows


async def iter_rows(batch: Batch, slice_s: float) -> AsyncIterator[list[Row]]:
    """Row chunks of ``batch``, yielding the loop whenever a slice's time is used up."""
    items = batch.items
    n = len(items)
    if batch.built:
        for i in range(0, n, CHUNK * 8):
            yield list(items[i : i + CHUNK * 8])
        return
    make = batch.spec.row
    perf = time.perf_counter
    start = perf()
    for i in range(0, n, CHUNK):
        part = items[i : i + CHUNK]
        try:
            chunk = list(map(make, part))
        except Exception:
            chunk = careful_rows(batch.spec, part)
        yield chunk
        if perf() - start >= slice_s:
            await asyncio.sleep(0)
            start = perf()


def careful_rows(spec: TableSpec, items: Sequence[Any]) -> list[Row]:
    """Build rows one by one, leaving out (and logging) any item that cannot become a row."""
    out: list[Row] = []
    for x in items:
        try:
            out.append(spec.row(x))
        except Exception as exc:
            log.error("cannot store a %s in %s: %r", type(x).__name__, spec.full_name, exc)
    return out


async def release(items: Any, step: int = 1024) -> None:
    """Drop a big list of records a slice at a time: freeing 250k trades at once holds the loop
    for ~30 ms, a slice of 4096 for ~0.2 ms: 1024 at a time keeps each turn near 50 µs."""
    if not isinstance(items, list):
        return
    while len(items) > step:
        del items[-step:]
        await asyncio.sleep(0)
    items.clear()
