"""What is recorded, and where: msgspec struct type → table.

Four groups keep raw market data, derived data, strategy records and execution records apart:
PostgreSQL schemas ``md``, ``derived``, ``strategy``, ``exec``; SQLite table prefixes ``md_`` etc.
Every table has a natural key, so writing the same row twice stores it once (a spool replay or a
retried batch never duplicates). The bulk tick tables (``batch_keyed``: md trades and quotes) are
the exception in PostgreSQL: maintaining a unique index there cost more than the COPY itself, so
they are stored exactly once per *batch* instead (each batch carries durable unit ids, written to a
ledger in the same transaction as its rows; see :mod:`omnid.storage.sinks.postgres`).
Timestamps stay integer nanoseconds (``bigint``) all the way down.

The records other parts write down (risk denials and halts, scanner rankings, strategy errors and
state changes, execution issues, rejected market events, reconcile adjustments, alert outcomes)
have typed tables too, described in :mod:`omnid.storage.tables` and bound to their types by import
path. Types added later register themselves with :func:`register_table`; any struct that is not
registered still gets stored, as JSON in ``strategy.records`` keyed by its type name, its
timestamp and a hash of its payload.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, Literal

import msgspec
import msgspec.structs

from omnid.errors import StorageError
from omnid.model import AccountState, Bar, Fill, Instrument, Order, OrderIntent, Position, Quote, Trade
from omnid.ports import OrderUpdate
from omnid.storage.tables import record_tables

ColumnKind = Literal["text", "real", "int", "json"]
GROUPS = ("md", "derived", "strategy", "exec")
Row = tuple[Any, ...]

_json = msgspec.json.Encoder()


class Column(msgspec.Struct, frozen=True):
    name: str
    kind: ColumnKind


class TableSpec:
    """One table: its group (schema), columns, natural key and how a struct becomes a row.

    ``partition_ts`` names an integer-ns column to partition by day (PostgreSQL), or is empty.
    ``batch_keyed`` tables have no unique index in PostgreSQL: idempotency comes from the batch
    ledger, so every batch written to them must carry unit ids to be replayable.
    """

    __slots__ = ("batch_keyed", "columns", "group", "key", "name", "partition_ts", "row", "ts_column")

    def __init__(
        self,
        group: str,
        name: str,
        columns: list[Column],
        key: tuple[str, ...],
        row: Callable[[Any], Row],
        *,
        ts_column: str = "",
        partition_ts: str = "",
        batch_keyed: bool = False,
    ) -> None:
        if group not in GROUPS:
            raise StorageError(f"table {name}: group {group!r} is not one of {GROUPS}", table=name)
        names = [c.name for c in columns]
        missing = [k for k in key if k not in names]
        if missing or not key:
            raise StorageError(f"table {group}.{name}: key columns {missing or key} not in columns")
        for col in (ts_column, partition_ts):
            if col and col not in names:
                raise StorageError(f"table {group}.{name}: column {col!r} not in columns")
        if partition_ts and partition_ts not in key:
            raise StorageError(f"table {group}.{name}: partition column must be part of the key")
        self.group = group
        self.name = name
        self.columns = columns
        self.key = key
        self.row = row
        self.ts_column = ts_column or partition_ts
        self.partition_ts = partition_ts
        self.batch_keyed = batch_keyed

    @property
    def full_name(self) -> str:
        """``group.name``: what routes and errors use."""
        return f"{self.group}.{self.name}"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def same_table(self, other: TableSpec) -> bool:
        """True when ``other`` describes the very table this does (name, columns, key, layout)."""
        return (self.full_name == other.full_name and self.columns == other.columns
                and self.key == other.key and self.ts_column == other.ts_column
                and self.partition_ts == other.partition_ts and self.batch_keyed == other.batch_keyed)

    def __repr__(self) -> str:
        return f"TableSpec({self.full_name})"


def _enum(v: Any) -> Any:
    return None if v is None else v.value


def _generic_row(item: Any) -> Row:
    payload = _json.encode(item)
    ts = getattr(item, "ts_event", None) or getattr(item, "ts", None) or getattr(item, "ts_init", 0) or 0
    digest = hashlib.blake2b(payload, digest_size=12).hexdigest()
    return (type(item).__name__, int(ts), digest, payload.decode())


GENERIC = TableSpec(
    "strategy",
    "records",
    [Column("type", "text"), Column("ts", "int"), Column("digest", "text"), Column("payload", "json")],
    ("type", "ts", "digest"),
    _generic_row,
    ts_column="ts",
)


def _builtin() -> dict[type[Any], TableSpec]:
    t: ColumnKind = "text"
    r: ColumnKind = "real"
    i: ColumnKind = "int"
    j: ColumnKind = "json"

    def cols(*pairs: tuple[str, ColumnKind]) -> list[Column]:
        return [Column(n, k) for n, k in pairs]

    return {
        Instrument: TableSpec(
            "md", "instruments",
            cols(("instrument_id", t), ("symbol", t), ("venue", t), ("asset_class", t),
                 ("quote_currency", t), ("base_currency", t), ("tick_size", r), ("lot_size", r),
                 ("min_qty", r), ("min_notional", r), ("multiplier", r), ("calendar", j)),
            ("instrument_id",),
            lambda x: (x.id, x.symbol, x.venue, x.asset_class.value, x.quote_currency, x.base_currency,
                       x.tick_size, x.lot_size, x.min_qty, x.min_notional, x.multiplier,
                       _json.encode(x.calendar).decode()),
        ),
        # Market data rows are the structs' own field order, so ``astuple`` (C, ~0.1 µs) builds them.
        Trade: TableSpec(
            "md", "trades",
            cols(("instrument_id", t), ("price", r), ("size", r), ("side", t), ("ts_event", i),
                 ("ts_init", i), ("trade_id", t)),
            ("instrument_id", "ts_event", "trade_id"),
            msgspec.structs.astuple,
            partition_ts="ts_event",
            batch_keyed=True,
        ),
        Quote: TableSpec(
            "md", "quotes",
            cols(("instrument_id", t), ("bid", r), ("ask", r), ("bid_size", r), ("ask_size", r),
                 ("ts_event", i), ("ts_init", i)),
            ("instrument_id", "ts_event", "ts_init"),
            msgspec.structs.astuple,
            partition_ts="ts_event",
            batch_keyed=True,
        ),
        Bar: TableSpec(
            "md", "bars",
            cols(("instrument_id", t), ("interval_ns", i), ("ts_open", i), ("open", r), ("high", r),
                 ("low", r), ("close", r), ("volume", r), ("ts_event", i), ("ts_init", i)),
            ("instrument_id", "interval_ns", "ts_open"),
            msgspec.structs.astuple,
            ts_column="ts_open",
        ),
        OrderIntent: TableSpec(
            "strategy", "intents",
            cols(("strategy_id", t), ("ts_event", i), ("instrument_id", t), ("side", t), ("action", t),
                 ("qty", r), ("order_type", t), ("limit_price", r), ("stop_price", r), ("tif", t),
                 ("stop_loss", r), ("take_profit", r), ("reason", t), ("numbers", j)),
            ("strategy_id", "ts_event", "instrument_id", "side", "action"),
            lambda x: (x.strategy_id, x.ts_event, x.instrument_id, x.side.value, x.action.value, x.qty,
                       x.order_type.value, x.limit_price, x.stop_price, x.tif.value, x.stop_loss,
                       x.take_profit, x.reason, _json.encode(x.numbers).decode()),
            ts_column="ts_event",
        ),
        Order: TableSpec(
            "exec", "orders",
            cols(("client_order_id", t), ("ts_last", i), ("status", t), ("instrument_id", t),
                 ("strategy_id", t), ("side", t), ("qty", r), ("order_type", t), ("limit_price", r),
                 ("stop_price", r), ("tif", t), ("action", t), ("filled_qty", r),
                 ("avg_fill_price", r), ("venue_order_id", t), ("reason", t), ("reject_reason", t),
                 ("ts_created", i)),
            ("client_order_id", "ts_last", "status"),
            lambda x: (x.client_order_id, x.ts_last, x.status.value, x.instrument_id, x.strategy_id,
                       x.side.value, x.qty, x.order_type.value, x.limit_price, x.stop_price,
                       x.tif.value, x.action.value, x.filled_qty, x.avg_fill_price, x.venue_order_id,
                       x.reason, x.reject_reason, x.ts_created),
            ts_column="ts_last",
        ),
        OrderUpdate: TableSpec(
            "exec", "order_updates",
            cols(("client_order_id", t), ("ts_event", i), ("status", t), ("venue_order_id", t),
                 ("reason", t)),
            ("client_order_id", "ts_event", "status"),
            lambda x: (x.client_order_id, x.ts_event, x.status.value, x.venue_order_id, x.reason),
            ts_column="ts_event",
        ),
        Fill: TableSpec(
            "exec", "fills",
            cols(("client_order_id", t), ("fill_id", t), ("ts_event", i), ("instrument_id", t),
                 ("strategy_id", t), ("side", t), ("qty", r), ("price", r), ("commission", r),
                 ("commission_currency", t), ("liquidity", t), ("venue_order_id", t)),
            ("client_order_id", "fill_id"),
            lambda x: (x.client_order_id, x.fill_id, x.ts_event, x.instrument_id, x.strategy_id,
                       x.side.value, x.qty, x.price, x.commission, x.commission_currency,
                       x.liquidity.value, x.venue_order_id),
            ts_column="ts_event",
        ),
        Position: TableSpec(
            "exec", "positions",
            cols(("instrument_id", t), ("ts_last", i), ("qty", r), ("avg_price", r),
                 ("realised_pnl", r), ("commissions", r), ("last_price", r), ("ts_opened", i)),
            ("instrument_id", "ts_last"),
            lambda x: (x.instrument_id, x.ts_last, x.qty, x.avg_price, x.realised_pnl, x.commissions,
                       x.last_price, x.ts_opened),
            ts_column="ts_last",
        ),
        AccountState: TableSpec(
            "exec", "accounts",
            cols(("account_id", t), ("ts_event", i), ("currency", t), ("cash", r), ("equity", r),
                 ("realised_pnl", r), ("unrealised_pnl", r), ("commissions", r), ("balances", j)),
            ("account_id", "ts_event"),
            lambda x: (x.account_id, x.ts_event, x.currency, x.cash, x.equity, x.realised_pnl,
                       x.unrealised_pnl, x.commissions, _json.encode(x.balances).decode()),
            ts_column="ts_event",
        ),
    }


def _derived_bars() -> TableSpec:
    md = _builtin()[Bar]
    return TableSpec("derived", "bars", md.columns, md.key, md.row, ts_column="ts_open")


def _records() -> dict[str, TableSpec]:
    """The record types' tables (:mod:`omnid.storage.tables`), by the type's import path."""
    return {t.type_path: TableSpec(t.group, t.name, [Column(n, k) for n, k in t.columns], t.key, t.row,
                                   ts_column=t.ts_column)
            for t in record_tables()}


#: Bars built from stored trades (``omnid data bars``): same shape as ``md.bars``, kept apart from
#: the venue's own bars.
DERIVED_BARS = _derived_bars()


class Catalog:
    """The mapping in force. One process-wide instance (:data:`CATALOG`); tests may build their own."""

    def __init__(self) -> None:
        self._by_type: dict[type[Any], TableSpec] = _builtin()
        #: Record tables by their type's import path, bound to the type when first asked for.
        self._by_path: dict[str, TableSpec] = _records()
        self._by_name: dict[str, TableSpec] = {s.full_name: s for s in self._by_type.values()}
        self._by_name.update((s.full_name, s) for s in self._by_path.values())
        self._by_name[GENERIC.full_name] = GENERIC
        self._by_name[DERIVED_BARS.full_name] = DERIVED_BARS

    def register(self, struct_type: type[Any], spec: TableSpec) -> TableSpec:
        """Record ``struct_type`` into ``spec``'s table (created at start-up if missing); returns
        the spec in force. Registering a table the catalogue already has in exactly that shape
        binds the type to the existing spec (a type that has since become built-in); any other
        clash of names raises."""
        existing = self._by_name.get(spec.full_name)
        if existing is not None and existing is not spec:
            if not existing.same_table(spec):
                raise StorageError(f"table {spec.full_name} is already registered", table=spec.full_name)
            spec = existing
        self._by_type[struct_type] = spec
        self._by_name[spec.full_name] = spec
        return spec

    def spec_for(self, struct_type: type[Any]) -> TableSpec:
        """The table for a type: its own, or the generic JSON table."""
        spec = self._by_type.get(struct_type)
        if spec is None:
            spec = self._by_path.get(f"{struct_type.__module__}.{struct_type.__qualname__}")
            if spec is None:
                return GENERIC
            self._by_type[struct_type] = spec
        return spec

    def table(self, full_name: str) -> TableSpec:
        spec = self._by_name.get(full_name)
        if spec is None:
            raise StorageError(f"no table named {full_name!r}", table=full_name)
        return spec

    def tables(self) -> list[TableSpec]:
        return list(self._by_name.values())

    def types(self) -> dict[type[Any], TableSpec]:
        """Types bound to a table so far (record types join once :meth:`spec_for` has seen them)."""
        return dict(self._by_type)

    def record_paths(self) -> dict[str, TableSpec]:
        """Import path → table of the record types (:mod:`omnid.storage.tables`)."""
        return dict(self._by_path)


CATALOG = Catalog()


def register_table(
    struct_type: type[Any],
    group: str,
    name: str,
    columns: list[tuple[str, ColumnKind]],
    key: tuple[str, ...],
    row: Callable[[Any], Row],
    *,
    ts_column: str = "",
    catalog: Catalog | None = None,
) -> TableSpec:
    """Give ``struct_type`` its own table, e.g. for a strategy's own signal record::

        register_table(Signal, "strategy", "signals",
                       [("strategy_id", "text"), ("ts_event", "int"), ("name", "text"), ...],
                       key=("strategy_id", "ts_event", "name"),
                       row=lambda s: (s.strategy_id, s.ts_event, s.name, ...), ts_column="ts_event")

    Unregistered types are still recorded, as JSON in ``strategy.records``.
    """
    spec = TableSpec(group, name, [Column(n, k) for n, k in columns], key, row, ts_column=ts_column)
    return (catalog or CATALOG).register(struct_type, spec)
