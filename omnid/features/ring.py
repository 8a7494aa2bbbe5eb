"""A fixed-capacity float ring buffer: the memory of every windowed indicator.

Preallocated once as a plain Python list of floats (DESIGN.md: list rings beat numpy per element),
so memory is fixed at construction and independent of how long a stream runs.
"""

from __future__ import annotations

import math

from omnid.errors import ConfigError


class Ring:
    """The last ``capacity`` floats pushed. ``push`` returns the value it overwrote (0.0 until full)."""

    __slots__ = ("_buf", "_i", "capacity", "count")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ConfigError("features", [("capacity", f"a ring needs capacity >= 1, got {capacity}")])
        self.capacity = capacity
        self._buf = [0.0] * capacity
        self._i = 0
        #: Values pushed so far, capped at ``capacity``.
        self.count = 0

    def push(self, x: float) -> float:
        """Append ``x``; return the value that fell out of the window (0.0 while filling)."""
        i = self._i
        buf = self._buf
        old = buf[i]
        buf[i] = x
        i += 1
        self._i = 0 if i == self.capacity else i
        if self.count < self.capacity:
            self.count += 1
        return old

    @property
    def full(self) -> bool:
        return self.count == self.capacity

    def last(self, back: int = 0) -> float:
        """The value pushed ``back`` pushes ago (0 = newest). NaN if there is none."""
        if back >= self.count or back < 0:
            return math.nan
        return self._buf[(self._i - 1 - back) % self.capacity]

    def values(self) -> list[float]:
        """Oldest to newest (allocates: for checks and resums, not the hot path)."""
        if self.count < self.capacity:
            return self._buf[: self.count]
        return self._buf[self._i :] + self._buf[: self._i]

    def clear(self) -> None:
        for k in range(self.capacity):
            self._buf[k] = 0.0
        self._i = 0
        self.count = 0
