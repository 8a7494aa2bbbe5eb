"""The write-ahead order journal: every order is written down before it is sent.

An append-only local file of framed records (``<u32 length><u32 crc32><payload>``, see
:mod:`omnid.storage.framing`); a payload is a one-byte type tag then the struct as msgpack. The
order manager appends the intent, the order (before ``submit``), each acknowledgement or other
update, and each fill; the portfolio's exact ledger may be appended as a checkpoint, and a
position or cash set to a venue's number at reconcile (``PositionAdjustment``, ``CashAdjustment``).

Each append is one ``write(2)`` on an ``O_APPEND`` descriptor, so once :meth:`Journal.append`
returns the record survives ``kill -9`` (it is in the page cache). Surviving a power cut needs
``fsync``; the policy decides when:

- ``orders`` (default): an :class:`Order` record is fsynced before ``append`` returns, so anything
  the broker has seen is on disk; other records are fsynced with the next order or once
  ``fsync_interval_ms`` has passed (the broker is the second source of truth for those).
- ``always``: every record. ``interval``: at most every ``fsync_interval_ms``. ``never``: the OS.

On open, a torn last record (the process died mid-write) is detected by its length or CRC and
truncated away; damage followed by good records is corruption and raises
:class:`JournalCorruptError` (a human must look: the journal is the record of what was sent).

:func:`replay` rebuilds open orders, every order's last state, fills, the portfolio ledger
(from the last checkpoint plus later fills, through :class:`omnid.portfolio.Portfolio`) and the
highest client-order-id sequence used, so a restart never reuses or resubmits an id.

Contract for writers: an :class:`Order` record replaces everything known about that order
(status, filled quantity); :class:`OrderUpdate` and :class:`Fill` records that follow are applied
on top of it. So journal the order before sending it, then the broker's updates and fills as they
arrive; journal the order again only as a full snapshot.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import msgspec

from omnid.errors import FatalError, IllegalTransition, StorageError
from omnid.model import Fill, Order, OrderIntent
from omnid.portfolio import CashAdjustment, LedgerSnapshot, Portfolio, PositionAdjustment
from omnid.ports import OrderUpdate
from omnid.storage.framing import frame, scan

log = logging.getLogger("omnid.journal")

FsyncPolicy = Literal["always", "orders", "interval", "never"]


class SeqMark(msgspec.Struct, frozen=True):
    """The highest client-order-id sequence used so far (kept across :meth:`Journal.compact`)."""

    last_seq: int
    ts_event: int = 0


class JournalCorruptError(FatalError):
    """The journal has damage before its end: do not trade until a human has looked."""


#: Tag byte → record type. Tags are part of the file format: never renumber, only add.
RECORD_TYPES: dict[int, type[msgspec.Struct]] = {
    1: OrderIntent,
    2: Order,
    3: OrderUpdate,
    4: Fill,
    5: LedgerSnapshot,
    6: SeqMark,
    7: PositionAdjustment,
    8: CashAdjustment,
}
_TAGS: dict[type[Any], int] = {t: k for k, t in RECORD_TYPES.items()}
_DECODERS = {k: msgspec.msgpack.Decoder(t) for k, t in RECORD_TYPES.items()}
_enc = msgspec.msgpack.Encoder()


def register_record_type(tag: int, typ: type[msgspec.Struct]) -> None:
    """Let another part journal its own struct (tags 1-31 are reserved for storage)."""
    if tag < 32 or tag > 255:
        raise StorageError(f"journal tag {tag} for {typ.__name__}: use 32..255", tag=tag)
    if RECORD_TYPES.get(tag, typ) is not typ:
        raise StorageError(f"journal tag {tag} is taken by {RECORD_TYPES[tag].__name__}", tag=tag)
    RECORD_TYPES[tag] = typ
    _TAGS[typ] = tag
    _DECODERS[tag] = msgspec.msgpack.Decoder(typ)


def encode_record(item: msgspec.Struct) -> bytes:
    tag = _TAGS.get(type(item))
    if tag is None:
        raise StorageError(f"the journal has no tag for {type(item).__name__}", type=type(item).__name__)
    return bytes((tag,)) + _enc.encode(item)


def decode_record(payload: bytes, *, where: str = "") -> Any:
    if not payload:
        raise JournalCorruptError(f"journal {where}: empty record")
    dec = _DECODERS.get(payload[0])
    if dec is None:
        raise JournalCorruptError(f"journal {where}: unknown record tag {payload[0]}", tag=payload[0])
    try:
        return dec.decode(payload[1:])
    except msgspec.DecodeError as exc:
        raise JournalCorruptError(f"journal {where}: record does not decode: {exc}") from exc


class ScanResult(msgspec.Struct):
    records: list[Any]
    truncated_bytes: int


def read_journal(path: Path, *, repair: bool = True) -> ScanResult:
    """Every record in ``path``. A torn tail is truncated away (``repair``) or ignored."""
    if not path.exists():
        return ScanResult([], 0)
    data = path.read_bytes()
    found = scan(data)
    if found.problem and not found.torn:
        raise JournalCorruptError(
            f"journal {path}: {found.problem} at byte {found.bad_offset} with records after it",
            path=str(path), offset=found.bad_offset,
        )
    cut = len(data) - found.good_end
    if cut and repair:
        log.warning("journal %s: torn tail (%s), truncating %d bytes at %d",
                    path, found.problem, cut, found.good_end)
        with path.open("r+b") as f:
            f.truncate(found.good_end)
            os.fsync(f.fileno())
    records = [decode_record(p, where=f"{path}#{i}") for i, p in enumerate(found.payloads)]
    return ScanResult(records, cut)


class Journal:
    """Append-only, framed, fsynced by policy. Not thread-safe: the core's one thread appends."""

    def __init__(
        self, path: Path, *, fsync: FsyncPolicy = "orders", fsync_interval_ms: int = 200
    ) -> None:
        self.path = path
        self.policy = fsync
        self.interval_s = fsync_interval_ms / 1000
        path.parent.mkdir(parents=True, exist_ok=True)
        self.recovered = read_journal(path)  # repairs a torn tail before we append after it
        self._fd = self._open()
        self._dirty = False
        self._last_sync = time.monotonic()
        self.appends = 0
        self.fsyncs = 0

    def _open(self) -> int:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        _fsync_dir(self.path.parent)
        return fd

    def append(self, item: msgspec.Struct) -> None:
        """Write ``item``; on return it survives kill -9, and power loss if the policy says so.

        Raises :class:`StorageError` if the disk refuses: the caller must not send the order then.
        """
        data = frame(encode_record(item))
        try:
            n = os.write(self._fd, data)
            if n != len(data):
                raise OSError(f"short write: {n} of {len(data)} bytes")
        except OSError as exc:
            raise StorageError(f"journal {self.path}: write failed: {exc}", path=str(self.path)) from exc
        self.appends += 1
        self._dirty = True
        policy = self.policy
        must = policy == "always" or (policy == "orders" and type(item) is Order)
        due = policy in ("orders", "interval") and time.monotonic() - self._last_sync >= self.interval_s
        if must or due:
            self.sync()

    def sync(self) -> None:
        """fsync now if anything is unsynced (the daemon also calls this on a timer and at exit)."""
        if not self._dirty:
            return
        try:
            _datasync(self._fd)
        except OSError as exc:
            raise StorageError(f"journal {self.path}: fsync failed: {exc}", path=str(self.path)) from exc
        self._dirty = False
        self._last_sync = time.monotonic()
        self.fsyncs += 1

    def records(self) -> Iterator[Any]:
        """Every record now in the file, in order."""
        yield from read_journal(self.path, repair=False).records

    def compact(self, ledger: LedgerSnapshot | None, orders: list[Order], last_seq: int) -> None:
        """Replace the file with a checkpoint: the ledger, the orders still open, the id sequence.

        Written to a temporary file, fsynced and renamed over the journal, so a crash at any point
        leaves either the old journal or the new one, whole.
        """
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        with tmp.open("wb") as f:
            f.write(frame(encode_record(SeqMark(last_seq))))
            if ledger is not None:
                f.write(frame(encode_record(ledger)))
            for o in orders:
                f.write(frame(encode_record(o)))
            f.flush()
            os.fsync(f.fileno())
        os.close(self._fd)
        os.replace(tmp, self.path)
        self._fd = self._open()
        self._dirty = False

    def close(self) -> None:
        if self._fd >= 0:
            self.sync()
            os.close(self._fd)
            self._fd = -1


#: fdatasync where there is one: it still flushes the size of an appended file (needed to read the
#: data back) but skips the mtime update, so it is cheaper than fsync for an append-only file.
_datasync = getattr(os, "fdatasync", os.fsync)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_TRAILING_INT = re.compile(r"(\d+)$")


def default_seq(client_order_id: str) -> int | None:
    """The sequence in an id: its trailing digits (``omnid-s1-000042`` → 42), or None."""
    m = _TRAILING_INT.search(client_order_id)
    return int(m.group(1)) if m else None


class JournalState(msgspec.Struct, kw_only=True):
    """What the journal says, rebuilt."""

    orders: dict[str, Order]
    fills: list[Fill]
    intents: list[OrderIntent]
    ledger: LedgerSnapshot | None
    fills_after_ledger: list[Fill]
    last_seq: int
    problems: list[str]
    #: Fills and adjustments (position or cash set to a venue's number) after the last ledger
    #: checkpoint, in journal order: what :meth:`restore_portfolio` applies.
    after_ledger: list[Fill | PositionAdjustment | CashAdjustment] = msgspec.field(default_factory=list)

    @property
    def open_orders(self) -> list[Order]:
        return [o for o in self.orders.values() if o.is_open]

    def restore_portfolio(self, portfolio: Portfolio) -> None:
        """Put ``portfolio`` where the journal left it: the last ledger checkpoint, then every fill
        and adjustment journaled after it, in order."""
        if self.ledger is not None:
            portfolio.restore(self.ledger)
        for rec in self.after_ledger:
            if isinstance(rec, Fill):
                portfolio.apply_fill(rec)
            else:
                portfolio.apply_adjustment(rec)


def replay(
    records: list[Any] | Path, *, seq_of: Callable[[str], int | None] = default_seq
) -> JournalState:
    """Rebuild orders, fills, the ledger and the id sequence from journal records (or a file).

    A fill journaled twice (same order, same fill id) counts once. An update the state machine
    forbids (a late ack after a fill) is noted in ``problems`` and skipped, never raised.
    """
    if isinstance(records, Path):
        records = read_journal(records).records
    orders: dict[str, Order] = {}
    fills: list[Fill] = []
    intents: list[OrderIntent] = []
    after: list[Fill] = []
    after_all: list[Fill | PositionAdjustment | CashAdjustment] = []
    seen_fills: set[tuple[str, str]] = set()
    ledger: LedgerSnapshot | None = None
    last_seq = 0
    problems: list[str] = []
    for rec in records:
        t = type(rec)
        if t is Order:
            orders[rec.client_order_id] = msgspec.structs.replace(rec)
            s = seq_of(rec.client_order_id)
            if s is not None and s > last_seq:
                last_seq = s
        elif t is OrderUpdate:
            o = orders.get(rec.client_order_id)
            if o is None:
                problems.append(f"update for unknown order {rec.client_order_id}")
                continue
            if rec.venue_order_id:
                o.venue_order_id = rec.venue_order_id
            if rec.status is not o.status:
                try:
                    o.transition(rec.status, rec.ts_event, reason=rec.reason)
                except IllegalTransition as exc:
                    problems.append(str(exc))
        elif t is Fill:
            key = (rec.client_order_id, rec.fill_id)
            if key in seen_fills:
                continue
            seen_fills.add(key)
            fills.append(rec)
            after.append(rec)
            after_all.append(rec)
            o = orders.get(rec.client_order_id)
            if o is None:
                problems.append(f"fill {rec.fill_id} for unknown order {rec.client_order_id}")
            elif o.is_open:
                try:
                    o.apply_fill(rec.qty, rec.price, rec.ts_event)
                except IllegalTransition as exc:
                    problems.append(str(exc))
            else:
                problems.append(f"fill {rec.fill_id} for order {o.client_order_id} in {o.status.value}")
        elif t is OrderIntent:
            intents.append(rec)
        elif t is LedgerSnapshot:
            ledger = rec
            after = []
            after_all = []
        elif t is PositionAdjustment or t is CashAdjustment:
            after_all.append(rec)
        elif t is SeqMark:
            last_seq = max(last_seq, rec.last_seq)
    return JournalState(orders=orders, fills=fills, intents=intents, ledger=ledger,
                        fills_after_ledger=after, last_seq=last_seq, problems=problems,
                        after_ledger=after_all)
