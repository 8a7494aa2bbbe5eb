"""Typed tables for the records other parts write down: risk denials and halts, scanner rankings,
strategy errors and state changes, execution issues, rejected market events, reconcile
adjustments and alert outcomes. Without these they land as JSON in ``strategy.records``, and "all
risk denials of strategy X yesterday, with the rule and the numbers" means parsing JSON.

The record types are named by their import path, not imported: storage stays below risk,
strategies, the engine and ops (the row functions only read attributes; mypy checks them against
the real types), the SQLite and PostgreSQL writers do not pull in the engine or aiohttp, and no
import cycle can form. :class:`omnid.storage.catalog.Catalog` binds a path to its table the first
time it sees the type; ``tests/storage/test_tables.py`` checks every path names a real type.

Keys: each table's natural key, plus ``digest`` (a hash of the row's other values) wherever two
distinct records could share the natural columns (two denials of one strategy, rule and instant
for two intents). The same record written twice has the same digest, so a spool replay or a
retried batch stores it once; long text (messages, reasons) stays out of keys, where PostgreSQL's
index entry limit (~2.7 kB) would refuse the row.

Rows are made safe here rather than refused by a sink (a refused row costs its whole batch in
SQLite, and PostgreSQL cannot hold NUL characters in text or ``\\u0000`` in ``jsonb``): NUL and
unencodable surrogates become U+FFFD, NaN and infinities inside JSON columns become the strings
``"NaN"``, ``"Infinity"``, ``"-Infinity"`` (JSON has no such numbers and would otherwise write
``null``). A timestamp outside 64 bits cannot be stored: its row function raises, and the sink's
row builder logs it and leaves that record out, keeping the rest of the batch.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec

from omnid.errors import StorageError

if TYPE_CHECKING:
    from omnid.engine import RejectedEvent
    from omnid.execution.events import ExecutionIssue
    from omnid.ops.alerts import AlertOutcome
    from omnid.portfolio import CashAdjustment, PositionAdjustment
    from omnid.risk.events import RiskDenial, RiskHaltEvent
    from omnid.storage.catalog import ColumnKind
    from omnid.strategies.base import StrategyErrorRecord, StrategyStateChange
    from omnid.strategies.builtin.scanner import ScanRanking

_json = msgspec.json.Encoder()
_I64 = 1 << 63


class RecordTable(NamedTuple):
    """One record type's table, before the catalogue makes it a ``TableSpec``."""

    type_path: str  # "module.QualName" of the struct type
    group: str
    name: str
    columns: list[tuple[str, ColumnKind]]
    key: tuple[str, ...]
    row: Callable[[Any], tuple[Any, ...]]
    ts_column: str = "ts_event"


def _ts(v: int) -> int:
    """An integer-ns timestamp that fits ``bigint``; raises (the row is left out) otherwise."""
    i = int(v)
    if not -_I64 <= i < _I64:
        raise StorageError(f"timestamp {i} does not fit in 64 bits")
    return i


def _text(s: str) -> str:
    """``s`` as every sink can store it: no NUL, valid UTF-8."""
    if "\x00" in s:
        s = s.replace("\x00", "\ufffd")
    if not s.isascii():
        try:
            s.encode()
        except UnicodeEncodeError:
            s = s.encode("utf-8", "replace").decode()
    return s


def _clean(v: Any) -> Any:
    """A JSON-able copy of builtins with text made safe and non-finite floats spelled out."""
    if isinstance(v, str):
        return _text(v)
    if isinstance(v, float):
        if math.isfinite(v):
            return v
        return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    if isinstance(v, dict):
        return {_text(str(k)): _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    return v


def _jsontext(v: Any) -> str:
    """JSON text of ``v`` for a ``json`` column. msgspec's encoding is kept unless it hid a NaN
    (as ``null``), wrote ``\\u0000`` or met a lone surrogate: then the value is cleaned first."""
    try:
        out = _json.encode(v)
    except UnicodeEncodeError:
        return _json.encode(_clean(msgspec.to_builtins(v))).decode()
    if b"null" in out or b"\\u0000" in out:
        return _json.encode(_clean(msgspec.to_builtins(v))).decode()
    return out.decode()


def _digest(values: tuple[Any, ...]) -> str:
    """A stable hash of a row's (already cleaned) values: equal records, equal digests."""
    return hashlib.blake2b(_json.encode(values), digest_size=12).hexdigest()


def _with_digest(values: tuple[Any, ...]) -> tuple[Any, ...]:
    return (*values, _digest(values))


def _denial(d: RiskDenial) -> tuple[Any, ...]:
    return _with_digest((_text(d.strategy_id), _ts(d.ts), _text(d.instrument_id), _text(d.rule),
                         d.side.value, d.action.value, _text(d.message), _jsontext(d.numbers)))


def _halt(h: RiskHaltEvent) -> tuple[Any, ...]:
    return _with_digest((_ts(h.ts), _text(h.source), 1 if h.halted else 0, _text(h.reason),
                         _jsontext(h.numbers)))


def _scan(r: ScanRanking) -> tuple[Any, ...]:
    top = r.ranking[0] if r.ranking else None
    return (_text(r.scanner), _ts(r.ts_event), _text(r.target), _text(r.score), _jsontext(r.selected),
            len(r.ranking), _text(top.instrument_id) if top else None, top.score if top else None,
            _jsontext(r.ranking), _jsontext(r.unscored))


def _strategy_error(e: StrategyErrorRecord) -> tuple[Any, ...]:
    return (_text(e.strategy_id), _ts(e.ts_event), _text(e.hook), _text(e.kind), _text(e.error_type),
            _text(e.message), _jsontext(e.traceback))


def _state(s: StrategyStateChange) -> tuple[Any, ...]:
    return _with_digest((_text(s.strategy_id), _ts(s.ts_event), _text(s.state), _text(s.reason)))


def _issue(i: ExecutionIssue) -> tuple[Any, ...]:
    return _with_digest((_text(i.client_order_id), _ts(i.ts), i.kind.value, _text(i.instrument_id),
                         _text(i.message), _jsontext(i.detail)))


def _rejected(r: RejectedEvent) -> tuple[Any, ...]:
    return _with_digest((_text(r.instrument_id), _ts(r.ts_event), _text(r.kind), _text(r.reason)))


def _cash(a: CashAdjustment) -> tuple[Any, ...]:
    return (_text(a.currency), _ts(a.ts_event), _text(a.cash_before), _text(a.cash_after), _text(a.reason))


def _position(a: PositionAdjustment) -> tuple[Any, ...]:
    return (_text(a.instrument_id), _ts(a.ts_event), _text(a.qty_before), _text(a.qty_after),
            _text(a.price), _text(a.cost_change), _text(a.reason))


def _alert(a: AlertOutcome) -> tuple[Any, ...]:
    return _with_digest((_ts(a.ts_event), _text(a.kind), _text(a.channel), _text(a.outcome),
                         int(a.attempts), _text(a.error), _text(a.text), _jsontext(a.context),
                         _ts(a.ts_done)))


def record_tables() -> list[RecordTable]:
    """Every record type's table, as the catalogue builds it (a fresh list per catalogue)."""
    t: ColumnKind = "text"
    r: ColumnKind = "real"
    i: ColumnKind = "int"
    j: ColumnKind = "json"
    return [
        RecordTable(
            "omnid.risk.events.RiskDenial", "strategy", "denials",
            [("strategy_id", t), ("ts_event", i), ("instrument_id", t), ("rule", t), ("side", t),
             ("action", t), ("message", t), ("numbers", j), ("digest", t)],
            ("strategy_id", "ts_event", "instrument_id", "rule", "digest"), _denial),
        RecordTable(
            "omnid.risk.events.RiskHaltEvent", "strategy", "halts",
            [("ts_event", i), ("source", t), ("halted", i), ("reason", t), ("numbers", j), ("digest", t)],
            ("ts_event", "source", "digest"), _halt),
        # One row per scan: "what did the scanner pick at 10:15" is one row (``selected``), and a
        # scan's ranking is one snapshot; per-instrument questions unnest ``ranking``.
        RecordTable(
            "omnid.strategies.builtin.scanner.ScanRanking", "strategy", "scans",
            [("scanner", t), ("ts_event", i), ("target", t), ("score_name", t), ("selected", j),
             ("ranked", i), ("top_instrument_id", t), ("top_score", r), ("ranking", j), ("unscored", j)],
            ("scanner", "ts_event"), _scan),
        RecordTable(
            "omnid.strategies.base.StrategyErrorRecord", "strategy", "errors",
            [("strategy_id", t), ("ts_event", i), ("hook", t), ("kind", t), ("error_type", t),
             ("message", t), ("traceback", j)],
            ("strategy_id", "ts_event", "hook"), _strategy_error),
        RecordTable(
            "omnid.strategies.base.StrategyStateChange", "strategy", "states",
            [("strategy_id", t), ("ts_event", i), ("state", t), ("reason", t), ("digest", t)],
            ("strategy_id", "ts_event", "state", "digest"), _state),
        RecordTable(
            "omnid.execution.events.ExecutionIssue", "exec", "issues",
            [("client_order_id", t), ("ts_event", i), ("kind", t), ("instrument_id", t), ("message", t),
             ("detail", j), ("digest", t)],
            ("client_order_id", "ts_event", "kind", "digest"), _issue),
        # Raw input refused before anything used it: it belongs beside the raw data (``derived``
        # holds what is computed, and can be recomputed, from stored market data).
        RecordTable(
            "omnid.engine.RejectedEvent", "md", "rejected_events",
            [("instrument_id", t), ("ts_event", i), ("kind", t), ("reason", t), ("digest", t)],
            ("instrument_id", "ts_event", "kind", "digest"), _rejected),
        # Decimals stay exact text, as booked (``::numeric`` in PostgreSQL). Same shape and key as
        # the tables omnid/ops/engine_core.py registered first (stores made since then have them).
        RecordTable(
            "omnid.portfolio.CashAdjustment", "exec", "cash_adjustments",
            [("currency", t), ("ts_event", i), ("cash_before", t), ("cash_after", t), ("reason", t)],
            ("currency", "ts_event", "cash_after"), _cash),
        RecordTable(
            "omnid.portfolio.PositionAdjustment", "exec", "position_adjustments",
            [("instrument_id", t), ("ts_event", i), ("qty_before", t), ("qty_after", t), ("price", t),
             ("cost_change", t), ("reason", t)],
            ("instrument_id", "ts_event", "qty_after"), _position),
        # What the daemon told the outside world, and whether it arrived: beside orders and fills.
        RecordTable(
            "omnid.ops.alerts.AlertOutcome", "exec", "alerts",
            [("ts_event", i), ("kind", t), ("channel", t), ("outcome", t), ("attempts", i), ("error", t),
             ("text", t), ("context", j), ("ts_done", i), ("digest", t)],
            ("ts_event", "kind", "channel", "digest"), _alert),
    ]
