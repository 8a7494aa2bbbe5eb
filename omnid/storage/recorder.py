"""The hot path's side of storage: :class:`BatchRecorder` implements :class:`omnid.ports.Recorder`.

``record(item)`` is a dict lookup and a list append: O(1), no I/O, no await, and it never raises
into the caller. Mutable records (orders, positions, account states, unregistered types) are
shallow-copied on the way in, so a later state change of the same object cannot rewrite the row
of an earlier one. When the buffers hold ``hard_limit`` rows (the flusher is far behind), further
records are counted in ``dropped`` instead of growing memory without bound.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from typing import Any

import msgspec

from omnid.model import AccountState, Order, Position
from omnid.storage.catalog import CATALOG, GENERIC, Catalog, TableSpec

log = logging.getLogger("omnid.storage")

#: Types the core mutates in place after recording them.
MUTABLE_TYPES: set[type[Any]] = {Order, Position, AccountState}


class BatchRecorder:
    """Per-table in-memory batches that :class:`omnid.storage.flusher.Flusher` drains."""

    __slots__ = ("_append", "_catalog", "_lists", "_types", "_wake", "dropped", "flush_rows", "hard_limit",
                 "pending", "recorded")

    def __init__(
        self, catalog: Catalog | None = None, *, flush_rows: int = 5000, hard_limit: int = 1_000_000
    ) -> None:
        self._catalog = catalog or CATALOG
        self._append: dict[type[Any], Callable[[Any], None]] = {}
        self._lists: dict[TableSpec, list[Any]] = {}
        self._types: dict[TableSpec, list[type[Any]]] = {}
        self._wake: Callable[[], None] | None = None
        self.flush_rows = flush_rows
        self.hard_limit = hard_limit
        self.pending = 0
        self.recorded = 0
        self.dropped = 0

    def record(self, item: msgspec.Struct) -> None:
        """Queue ``item`` for its table. Never blocks, never raises."""
        if self.pending >= self.hard_limit:
            self.dropped += 1
            return
        append = self._append.get(type(item))
        if append is None:
            try:
                append = self._add_type(type(item))
            except Exception:  # a type that cannot be recorded must not hurt the caller
                log.exception("cannot record %s", type(item).__name__)
                self.dropped += 1
                return
        append(item)
        self.pending += 1
        if self.pending == self.flush_rows and self._wake is not None:
            self._wake()

    def _add_type(self, typ: type[Any]) -> Callable[[Any], None]:
        spec = self._catalog.spec_for(typ)
        buf = self._lists.get(spec)
        if buf is None:
            buf = self._lists[spec] = []
            if gc.isenabled():  # old while empty: see Flusher.dispatch (once per table, ~10 µs)
                gc.collect(1)
        self._types.setdefault(spec, []).append(typ)
        append = self._append[typ] = self._appender(typ, spec, buf)
        return append

    @staticmethod
    def _appender(typ: type[Any], spec: TableSpec, buf: list[Any]) -> Callable[[Any], None]:
        if typ in MUTABLE_TYPES or spec is GENERIC:
            plain = buf.append

            def append(x: Any) -> None:
                plain(x.__copy__())

            return append
        return buf.append

    def on_full(self, wake: Callable[[], None] | None) -> None:
        """Call ``wake`` each time the buffers reach ``flush_rows`` rows."""
        self._wake = wake

    def take(self) -> list[tuple[TableSpec, list[Any]]]:
        """Everything buffered, per table, emptying the buffers.

        The full lists are handed over and fresh ones put in their place (the appenders rebound):
        copying a 50k-row list touches every record's reference count, ~1-2 ms on the loop."""
        out: list[tuple[TableSpec, list[Any]]] = []
        for spec, buf in self._lists.items():
            if buf:
                fresh: list[Any] = []
                self._lists[spec] = fresh
                for typ in self._types[spec]:
                    self._append[typ] = self._appender(typ, spec, fresh)
                out.append((spec, buf))
        self.recorded += self.pending
        self.pending = 0
        return out
