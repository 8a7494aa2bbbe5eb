"""What the execution layer writes down besides orders and fills: the things that went wrong.

A venue that sends a fill for an order we do not know, a status the state machine forbids, a
duplicate fill, a journal that failed: each becomes an :class:`ExecutionIssue`, recorded and logged,
never an exception through the engine, so one confused message cannot stop trading.
"""

from __future__ import annotations

import enum

import msgspec


class IssueKind(enum.StrEnum):
    ILLEGAL_TRANSITION = "illegal_transition"
    UNKNOWN_ORDER = "unknown_order"
    DUPLICATE_FILL = "duplicate_fill"
    BAD_FILL = "bad_fill"
    NO_ROUTE = "no_route"
    JOURNAL_FAILED = "journal_failed"
    CLIENT_FAILED = "client_failed"
    INVALID_ORDER = "invalid_order"


class ExecutionIssue(msgspec.Struct, kw_only=True, frozen=True):
    """Something the order manager refused or could not reconcile, with the order it concerns."""

    ts: int
    kind: IssueKind
    client_order_id: str
    message: str
    instrument_id: str = ""
    detail: dict[str, str] = msgspec.field(default_factory=dict)
