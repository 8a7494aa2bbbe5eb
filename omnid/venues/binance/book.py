"""A local order book kept in step with Binance's diff stream, with no I/O of its own.

The procedure is the one web-socket-streams.md documents ("How to manage a local order book
correctly"): buffer diffs, take a REST snapshot, refetch it if its ``lastUpdateId`` is older than
the first buffered ``U``, drop buffered diffs with ``u <= lastUpdateId``, then apply the rest;
after that a diff with ``u`` below the book's id is stale and ignored, and one whose ``U`` is past
the book's id + 1 means events were missed: discard the book and start again. The feed does the
fetching; this class only decides, so it is tested by feeding it structs.
"""

from __future__ import annotations

import enum

from omnid.model import BookDelta, BookLevel, BookSnapshot


class SyncState(enum.Enum):
    BUFFERING = "buffering"  # waiting for a snapshot
    SYNCED = "synced"


class DiffResult(enum.Enum):
    BUFFERED = "buffered"
    APPLIED = "applied"
    STALE = "stale"
    GAP = "gap"  # the book was discarded; fetch a new snapshot


class SnapshotResult(enum.Enum):
    SYNCED = "synced"
    TOO_OLD = "too_old"  # fetch again: the snapshot predates the first buffered diff


class LocalBook:
    """One symbol's book: price → size per side, plus the sync state and its buffer."""

    __slots__ = ("asks", "bids", "buffer", "first_buffered_u", "instrument_id", "max_buffer", "state",
                 "update_id")

    def __init__(self, instrument_id: str, *, max_buffer: int = 10_000) -> None:
        self.instrument_id = instrument_id
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.update_id = 0
        self.state = SyncState.BUFFERING
        self.buffer: list[BookDelta] = []
        self.first_buffered_u = 0
        self.max_buffer = max_buffer

    def reset(self) -> None:
        """Discard everything and wait for a new snapshot (after a gap or a reconnect)."""
        self.bids.clear()
        self.asks.clear()
        self.update_id = 0
        self.state = SyncState.BUFFERING
        self.buffer.clear()
        self.first_buffered_u = 0

    def on_diff(self, d: BookDelta) -> DiffResult:
        if self.state is SyncState.BUFFERING:
            if not self.buffer:
                self.first_buffered_u = d.first_update_id
            self.buffer.append(d)
            if len(self.buffer) > self.max_buffer:  # a snapshot that never comes must not eat memory
                del self.buffer[0]
                self.first_buffered_u = self.buffer[0].first_update_id
            return DiffResult.BUFFERED
        if d.update_id <= self.update_id:  # the doc ignores u < book id; u == book id is a repeat
            return DiffResult.STALE
        if d.first_update_id > self.update_id + 1:
            self.reset()
            return DiffResult.GAP
        self._apply(d)
        return DiffResult.APPLIED

    def on_snapshot(self, snap: BookSnapshot) -> tuple[SnapshotResult, list[BookDelta]]:
        """Take a snapshot; return the buffered diffs that were applied on top of it."""
        if self.buffer and snap.update_id < self.first_buffered_u:
            return SnapshotResult.TOO_OLD, []
        self.bids = {lv.price: lv.size for lv in snap.bids if lv.size > 0}
        self.asks = {lv.price: lv.size for lv in snap.asks if lv.size > 0}
        self.update_id = snap.update_id
        self.state = SyncState.SYNCED
        pending, self.buffer = self.buffer, []
        applied: list[BookDelta] = []
        for d in pending:
            if d.update_id <= self.update_id:
                continue
            if d.first_update_id > self.update_id + 1:
                self.reset()  # the buffer itself has a hole: start over
                return SnapshotResult.TOO_OLD, []
            self._apply(d)
            applied.append(d)
        return SnapshotResult.SYNCED, applied

    def _apply(self, d: BookDelta) -> None:
        bids, asks = self.bids, self.asks
        for lv in d.bids:
            if lv.size == 0.0:
                bids.pop(lv.price, None)
            else:
                bids[lv.price] = lv.size
        for lv in d.asks:
            if lv.size == 0.0:
                asks.pop(lv.price, None)
            else:
                asks[lv.price] = lv.size
        self.update_id = d.update_id

    def best_bid(self) -> float | None:
        return max(self.bids) if self.bids else None

    def best_ask(self) -> float | None:
        return min(self.asks) if self.asks else None

    def snapshot(self, levels: int, ts_event: int, ts_init: int) -> BookSnapshot:
        """The top ``levels`` of each side, best first."""
        bids = sorted(self.bids.items(), key=lambda kv: -kv[0])[:levels]
        asks = sorted(self.asks.items())[:levels]
        return BookSnapshot(
            self.instrument_id,
            [BookLevel(p, s) for p, s in bids],
            [BookLevel(p, s) for p, s in asks],
            ts_event,
            ts_init,
            self.update_id,
        )
