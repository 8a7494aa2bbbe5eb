"""The admin socket's wire protocol: newline-delimited JSON, one request → one reply.

A request is ``{"cmd": "status"}`` (plus ``"strategy"`` for pause/resume and an optional ``"id"``
echoed back). Every reply carries the protocol version ``v``; ``ok`` says whether ``data`` or
``error`` is set. Clients must check ``v`` and refuse a major version they do not know.
"""

from __future__ import annotations

from typing import Any

import msgspec

PROTOCOL_VERSION = 1

#: The commands the daemon answers.
COMMANDS = frozenset(
    {"status", "positions", "orders", "pnl", "pause", "resume", "flatten", "reload", "stop", "ping"}
)


class AdminRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    cmd: str
    strategy: str | None = None
    id: int | str | None = None


class AdminError(msgspec.Struct):
    #: A stable code for scripts: bad_request, unknown_command, not_found, failed, stopping.
    code: str
    message: str


class AdminReply(msgspec.Struct, omit_defaults=True):
    v: int
    ok: bool
    cmd: str = ""
    id: int | str | None = None
    data: Any = None
    error: AdminError | None = None


class FeedStatus(msgspec.Struct, kw_only=True):
    """One market-data feed as status shows it."""

    name: str
    #: connecting | connected | reconnecting | stopped | failed
    state: str
    messages: int = 0
    #: Messages per second over the last few seconds.
    rate: float = 0.0
    #: Seconds since the last message (None before the first).
    last_age_s: float | None = None
    reconnects: int = 0
    instruments: list[str] = msgspec.field(default_factory=list)
    #: Trade id ranges the feed missed and could not fetch (each also logged and alerted); feeds that
    #: cannot tell leave 0.
    trade_gaps_lost: int = 0
    #: Catch-ups (after a reconnect or a restart) that fetched every missed trade.
    trade_gaps_refetched: int = 0
    #: The latest lost ranges, most recent last, a few at most: "BTCUSDT trades 1001-1050".
    lost_trade_ranges: list[str] = msgspec.field(default_factory=list)


class AlertStatus(msgspec.Struct, kw_only=True):
    queued: int = 0
    sent: int = 0
    failed: int = 0
    dropped: int = 0
    channels: list[str] = msgspec.field(default_factory=list)


encoder = msgspec.json.Encoder()
request_decoder = msgspec.json.Decoder(AdminRequest)
reply_decoder = msgspec.json.Decoder(AdminReply)


def encode_reply(reply: AdminReply) -> bytes:
    return encoder.encode(reply) + b"\n"


def error_reply(code: str, message: str, *, cmd: str = "", req_id: int | str | None = None) -> AdminReply:
    return AdminReply(v=PROTOCOL_VERSION, ok=False, cmd=cmd, id=req_id, error=AdminError(code, message))


def to_builtins(obj: Any) -> Any:
    """Structs → plain JSON-able values (the reply's ``data`` is always plain)."""
    return msgspec.to_builtins(obj)
