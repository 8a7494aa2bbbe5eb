"""The write-ahead journal seam: every order is appended here before any client sees it.

The storage part implements the durable file journal; the order manager needs only ``append``.
``append`` must either make the item durable (or at least ordered ahead of the send) or raise: a
raise stops the order from being sent (it is rejected and the failure recorded).
"""

from __future__ import annotations

from typing import Protocol

import msgspec


class Journal(Protocol):
    def append(self, item: msgspec.Struct) -> None:
        """Write ``item`` ahead of the send; raise if it could not be written."""
        ...


class MemoryJournal:
    """A journal in a list, encoded at append time (so later changes to an order do not leak in):
    for backtests that want the order trail without a file."""

    def __init__(self) -> None:
        self.entries: list[bytes] = []
        self._enc = msgspec.msgpack.Encoder()

    def append(self, item: msgspec.Struct) -> None:
        self.entries.append(self._enc.encode(item))
