"""One notion of time for the whole core.

Nothing in the core reads the wall clock: it asks a :class:`Clock`. The live daemon passes a
:class:`LiveClock` (wall time, timers on the asyncio loop); backtests and simulations pass a
:class:`SimClock` that the replay advances to each event's timestamp, firing every timer that falls
due on the way, in timestamp order. That is what lets backtest and live share every line of
strategy, risk and portfolio code.

Timers are named (one name, one timer: setting a name again replaces it) and come in three kinds:
one-shot at a timestamp, periodic every N ns, and daily at a local wall time in a time zone
(``15:20`` ``Asia/Kolkata``), which follows DST changes and may skip weekends.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

import msgspec

from omnid.calendar import NS_PER_SECOND, parse_hhmm, to_ns, zone

if TYPE_CHECKING:
    import asyncio


class TimeEvent(msgspec.Struct, frozen=True):
    """Handed to a timer's callback: which timer, when it was due, and when it actually ran."""

    name: str
    ts_scheduled: int
    ts_fired: int


TimerCallback = Callable[[TimeEvent], None]


class Clock(Protocol):
    """What the core may ask of time."""

    def now_ns(self) -> int:
        """Current time, integer ns since the epoch, UTC."""
        ...

    def set_timer(self, name: str, at_ns: int, callback: TimerCallback) -> None:
        """Fire ``callback`` once at ``at_ns`` (immediately on the next advance if already past)."""
        ...

    def set_periodic(
        self,
        name: str,
        interval_ns: int,
        callback: TimerCallback,
        *,
        start_ns: int | None = None,
        align: bool = False,
    ) -> None:
        """Fire every ``interval_ns``; ``align`` puts firings on multiples of the interval."""
        ...

    def set_daily(
        self,
        name: str,
        local_time: str,
        tz: str,
        callback: TimerCallback,
        *,
        weekdays: Sequence[int] | None = None,
    ) -> None:
        """Fire every day at ``local_time`` (``HH:MM[:SS]``) in ``tz``; optionally only on weekdays."""
        ...

    def cancel_timer(self, name: str) -> bool:
        """Cancel a timer by name; False if there was none."""
        ...

    def timer_names(self) -> list[str]:
        """Names of the timers still pending."""
        ...


class _Timer:
    __slots__ = ("callback", "interval_ns", "local", "name", "next_ns", "tz", "weekdays")

    def __init__(
        self,
        name: str,
        next_ns: int,
        callback: TimerCallback,
        interval_ns: int = 0,
        local: dt.time | None = None,
        tz: str = "UTC",
        weekdays: frozenset[int] | None = None,
    ) -> None:
        self.name = name
        self.next_ns = next_ns
        self.callback = callback
        self.interval_ns = interval_ns
        self.local = local
        self.tz = tz
        self.weekdays = weekdays

    def following(self) -> int | None:
        """When this timer fires after its current ``next_ns``; None for a one-shot."""
        if self.interval_ns:
            return self.next_ns + self.interval_ns
        if self.local is not None:
            return next_local_time(self.next_ns, self.local, self.tz, self.weekdays)
        return None


def next_local_time(
    after_ns: int, local: dt.time, tz: str, weekdays: frozenset[int] | None = None
) -> int:
    """The first instant strictly after ``after_ns`` whose wall time in ``tz`` is ``local``."""
    tzinfo = zone(tz)
    day = dt.datetime.fromtimestamp(after_ns / NS_PER_SECOND, tz=tzinfo).date()
    for ahead in range(0, 16):
        d = day + dt.timedelta(days=ahead)
        if weekdays is not None and d.weekday() not in weekdays:
            continue
        at = to_ns(dt.datetime.combine(d, local, tzinfo=tzinfo))
        if at > after_ns:
            return at
    raise ValueError(f"no weekday in {sorted(weekdays or [])} within two weeks")


#: Later than any timestamp: "no timer due".
NEVER_NS = (1 << 63) - 1


class _TimerBook:
    """Named timers in a heap, shared by both clocks. Cancellation is lazy (a stale heap entry is
    skipped when its timer object is no longer the one registered under its name)."""

    def __init__(self) -> None:
        self._timers: dict[str, _Timer] = {}
        self._heap: list[tuple[int, int, _Timer]] = []
        self._seq = itertools.count()
        #: No timer is due before this time (it may be earlier than the heap's top, never later):
        #: a replay loop compares an event's time with it and skips :meth:`SimClock.advance_to`.
        self.due_ns = NEVER_NS

    def now_ns(self) -> int:
        raise NotImplementedError

    def _push(self, timer: _Timer) -> None:
        self._timers[timer.name] = timer
        heapq.heappush(self._heap, (timer.next_ns, next(self._seq), timer))
        self.due_ns = min(self.due_ns, timer.next_ns)
        self._scheduled(timer)

    def _scheduled(self, timer: _Timer) -> None:
        """Hook for the live clock to arm the loop."""

    def set_timer(self, name: str, at_ns: int, callback: TimerCallback) -> None:
        self._push(_Timer(name, at_ns, callback))

    def set_periodic(
        self,
        name: str,
        interval_ns: int,
        callback: TimerCallback,
        *,
        start_ns: int | None = None,
        align: bool = False,
    ) -> None:
        if interval_ns <= 0:
            raise ValueError(f"timer {name!r}: interval must be positive, got {interval_ns}")
        now = self.now_ns()
        first = start_ns if start_ns is not None else now + interval_ns
        if align:
            first = first - first % interval_ns
            if first <= now:
                first += interval_ns * ((now - first) // interval_ns + 1)
        self._push(_Timer(name, first, callback, interval_ns=interval_ns))

    def set_daily(
        self,
        name: str,
        local_time: str,
        tz: str,
        callback: TimerCallback,
        *,
        weekdays: Sequence[int] | None = None,
    ) -> None:
        local = parse_hhmm(local_time, key=f"timer {name}")
        days = frozenset(weekdays) if weekdays is not None else None
        first = next_local_time(self.now_ns(), local, tz, days)
        self._push(_Timer(name, first, callback, local=local, tz=tz, weekdays=days))

    def cancel_timer(self, name: str) -> bool:
        return self._timers.pop(name, None) is not None

    def timer_names(self) -> list[str]:
        return sorted(self._timers)

    def next_timer_ns(self) -> int | None:
        """When the earliest live timer is due, if any."""
        while self._heap:
            ts, _, timer = self._heap[0]
            if self._timers.get(timer.name) is timer and timer.next_ns == ts:
                return ts
            heapq.heappop(self._heap)
        return None

    def _pop_due(self, until_ns: int) -> _Timer | None:
        """Pop the next live timer due at or before ``until_ns``."""
        while self._heap and self._heap[0][0] <= until_ns:
            ts, _, timer = heapq.heappop(self._heap)
            if self._timers.get(timer.name) is timer and timer.next_ns == ts:
                return timer
        return None

    def _reschedule(self, timer: _Timer) -> None:
        following = timer.following()
        if following is None:
            if self._timers.get(timer.name) is timer:
                del self._timers[timer.name]
            return
        timer.next_ns = following
        heapq.heappush(self._heap, (following, next(self._seq), timer))
        self.due_ns = min(self.due_ns, following)
        self._scheduled(timer)


class SimClock(_TimerBook):
    """Simulated time, advanced by the replay. Never goes backwards.

    The replay loop (:func:`omnid.sim.replay.replay_ticks`) calls :meth:`advance_to` only for an
    event at or after ``due_ns``; for the others it sets ``_now`` itself (a call saved per event).
    """

    def __init__(self, start_ns: int = 0) -> None:
        super().__init__()
        self._now = start_ns

    def now_ns(self) -> int:
        return self._now

    def advance_to(self, ts_ns: int) -> None:
        """Move time to ``ts_ns``, firing every timer due on the way in timestamp order.

        Each callback sees the clock at its own scheduled time. An earlier ``ts_ns`` than now is
        ignored (time is monotonic; replayed events with equal or late stamps do not rewind it).
        """
        heap = self._heap
        if heap and heap[0][0] <= ts_ns:
            self._fire_due(ts_ns)
        self.due_ns = heap[0][0] if heap else NEVER_NS
        # A comparison, not max(): this runs once per replayed event and the call costs ~70 ns more.
        if ts_ns > self._now:  # noqa: PLR1730
            self._now = ts_ns

    def _fire_due(self, ts_ns: int) -> None:
        while (timer := self._pop_due(ts_ns)) is not None:
            due = timer.next_ns
            self._now = max(self._now, due)
            self._reschedule(timer)
            timer.callback(TimeEvent(timer.name, due, self._now))


class LiveClock(_TimerBook):
    """Wall-clock time; timers run as callbacks on the asyncio loop that is running when set.

    A callback that raises is reported to the loop's exception handler and does not stop other
    timers; a periodic timer that falls behind (a stalled loop) fires once and catches up to the
    next slot after now rather than firing a burst.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__()
        self._loop = loop
        self._handle: asyncio.TimerHandle | None = None
        self._armed_for: int | None = None

    def now_ns(self) -> int:
        return time.time_ns()

    def _get_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            import asyncio  # here, not at the top: the CLI's light commands import this module

            self._loop = asyncio.get_running_loop()
        return self._loop

    def _scheduled(self, timer: _Timer) -> None:
        self._arm()

    def cancel_timer(self, name: str) -> bool:
        found = super().cancel_timer(name)
        if found:
            self._arm()
        return found

    def _arm(self) -> None:
        nxt = self.next_timer_ns()
        if nxt is None:
            if self._handle is not None:
                self._handle.cancel()
                self._handle = self._armed_for = None
            return
        if self._armed_for == nxt and self._handle is not None:
            return
        if self._handle is not None:
            self._handle.cancel()
        delay = max((nxt - time.time_ns()) / NS_PER_SECOND, 0.0)
        self._armed_for = nxt
        self._handle = self._get_loop().call_later(delay, self._on_wake)

    def _on_wake(self) -> None:
        self._handle = self._armed_for = None
        now = time.time_ns()
        while (timer := self._pop_due(now)) is not None:
            due = timer.next_ns
            if timer.interval_ns and now - due >= timer.interval_ns:
                # Behind by at least one period: skip the missed slots instead of a burst.
                timer.next_ns = due + timer.interval_ns * ((now - due) // timer.interval_ns)
                due = timer.next_ns
            self._reschedule(timer)
            try:
                timer.callback(TimeEvent(timer.name, due, now))
            except Exception as exc:  # a timer must not take the others down
                self._get_loop().call_exception_handler(
                    {"message": f"timer {timer.name!r} raised", "exception": exc}
                )
        self._arm()
