"""A local order book per instrument, kept from snapshots and deltas, for book features.

Levels are kept sorted best first as parallel lists (bisect to find a price, list insert to add),
which for the few hundred levels venues send is faster than a tree and needs no dependency. The
depth kept is capped (``max_levels`` per side; the worst levels are dropped), so memory is bounded
however long the stream runs.
"""

from __future__ import annotations

from bisect import bisect_left

from omnid.errors import DataError
from omnid.model import BookDelta, BookLevel, BookSnapshot


class LocalBook:
    """Bid and ask levels, best first. ``bid_sizes[0]``/``ask_sizes[0]`` are the top of book."""

    __slots__ = ("_ask_keys", "_bid_keys", "ask_sizes", "bid_sizes", "instrument_id", "max_levels",
                 "ts_event")

    def __init__(self, instrument_id: str, max_levels: int = 1000) -> None:
        self.instrument_id = instrument_id
        self.max_levels = max_levels
        self._bid_keys: list[float] = []  # negated prices, ascending = best bid first
        self._ask_keys: list[float] = []  # prices ascending = best ask first
        self.bid_sizes: list[float] = []
        self.ask_sizes: list[float] = []
        self.ts_event = 0

    @property
    def bids(self) -> list[tuple[float, float]]:
        return [(-k, s) for k, s in zip(self._bid_keys, self.bid_sizes, strict=True)]

    @property
    def asks(self) -> list[tuple[float, float]]:
        return list(zip(self._ask_keys, self.ask_sizes, strict=True))

    def apply_snapshot(self, snap: BookSnapshot) -> None:
        """Replace the book with ``snap``'s levels (a bad level rejects the snapshot, book unchanged)."""
        self._check(snap.bids, "bid")
        self._check(snap.asks, "ask")
        self._bid_keys.clear()
        self.bid_sizes.clear()
        self._ask_keys.clear()
        self.ask_sizes.clear()
        self._apply(snap.bids, self._bid_keys, self.bid_sizes, -1.0)
        self._apply(snap.asks, self._ask_keys, self.ask_sizes, 1.0)
        self.ts_event = snap.ts_event

    def apply_delta(self, delta: BookDelta) -> None:
        """Set each level's size; a size of 0 removes the level. A bad level rejects the whole
        delta before anything changes."""
        self._check(delta.bids, "bid")
        self._check(delta.asks, "ask")
        self._apply(delta.bids, self._bid_keys, self.bid_sizes, -1.0)
        self._apply(delta.asks, self._ask_keys, self.ask_sizes, 1.0)
        self.ts_event = delta.ts_event

    def _check(self, levels: list[BookLevel], side: str) -> None:
        for lv in levels:
            price = lv.price
            size = lv.size
            if price - price or size - size or size < 0.0:
                raise DataError(
                    f"{self.instrument_id}: book {side} level {price} x {size} is not a finite "
                    "price with a size >= 0",
                    instrument_id=self.instrument_id, field=f"{side}s", price=price, size=size,
                )

    def _apply(self, levels: list[BookLevel], keys: list[float], sizes: list[float], sign: float) -> None:
        for lv in levels:
            price = lv.price
            size = lv.size
            key = price * sign
            j = bisect_left(keys, key)
            if j < len(keys) and keys[j] == key:
                if size == 0.0:
                    del keys[j]
                    del sizes[j]
                else:
                    sizes[j] = size
            elif size != 0.0:
                keys.insert(j, key)
                sizes.insert(j, size)
                if len(keys) > self.max_levels:
                    keys.pop()
                    sizes.pop()
