"""Clock: simulated timers fire in timestamp order; daily wall-time timers follow the exchange's zone."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from zoneinfo import ZoneInfo

import pytest
from omnid.calendar import to_ns
from omnid.clock import LiveClock, SimClock, TimeEvent, next_local_time

S = 1_000_000_000
IST = ZoneInfo("Asia/Kolkata")
NY = ZoneInfo("America/New_York")


def ns(year: int, month: int, day: int, h: int = 0, m: int = 0, tz: ZoneInfo = IST) -> int:
    return to_ns(dt.datetime(year, month, day, h, m, tzinfo=tz))


def test_one_shot_fires_once_at_its_time() -> None:
    clock = SimClock(0)
    seen: list[TimeEvent] = []
    clock.set_timer("a", 5 * S, seen.append)
    clock.advance_to(4 * S)
    assert seen == []
    clock.advance_to(10 * S)
    assert [(e.name, e.ts_scheduled, e.ts_fired) for e in seen] == [("a", 5 * S, 5 * S)]
    clock.advance_to(20 * S)
    assert len(seen) == 1
    assert clock.timer_names() == []


def test_timers_fire_in_timestamp_order_and_see_their_own_time() -> None:
    clock = SimClock(0)
    order: list[tuple[str, int]] = []

    def cb(e: TimeEvent) -> None:
        order.append((e.name, clock.now_ns()))

    clock.set_timer("late", 9 * S, cb)
    clock.set_timer("early", 2 * S, cb)
    clock.set_periodic("tick", 3 * S, cb)
    clock.advance_to(10 * S)
    assert order == [("early", 2 * S), ("tick", 3 * S), ("tick", 6 * S), ("late", 9 * S), ("tick", 9 * S)] or \
        order == [("early", 2 * S), ("tick", 3 * S), ("tick", 6 * S), ("tick", 9 * S), ("late", 9 * S)]
    assert clock.now_ns() == 10 * S


def test_equal_timestamps_fire_in_the_order_they_were_set() -> None:
    clock = SimClock(0)
    order: list[str] = []
    for name in ("x", "y", "z"):
        clock.set_timer(name, 5 * S, lambda e: order.append(e.name))
    clock.advance_to(5 * S)
    assert order == ["x", "y", "z"]


def test_periodic_aligned_to_interval_multiples() -> None:
    clock = SimClock(61 * S + 500)
    fired: list[int] = []
    clock.set_periodic("m", 60 * S, lambda e: fired.append(e.ts_scheduled), align=True)
    clock.advance_to(300 * S)
    assert fired == [120 * S, 180 * S, 240 * S, 300 * S]


def test_cancel_and_replace_by_name() -> None:
    clock = SimClock(0)
    fired: list[str] = []
    clock.set_timer("a", 5 * S, lambda e: fired.append("first"))
    clock.set_timer("a", 7 * S, lambda e: fired.append("second"))  # replaces
    clock.set_timer("b", 6 * S, lambda e: fired.append("b"))
    assert clock.cancel_timer("b") is True
    assert clock.cancel_timer("b") is False
    clock.advance_to(10 * S)
    assert fired == ["second"]


def test_time_never_goes_backwards() -> None:
    clock = SimClock(10 * S)
    clock.advance_to(5 * S)
    assert clock.now_ns() == 10 * S


def test_timer_set_from_a_callback_fires_in_the_same_advance() -> None:
    clock = SimClock(0)
    fired: list[int] = []

    def first(e: TimeEvent) -> None:
        fired.append(e.ts_scheduled)
        clock.set_timer("second", e.ts_scheduled + S, lambda e2: fired.append(e2.ts_scheduled))

    clock.set_timer("first", 2 * S, first)
    clock.advance_to(5 * S)
    assert fired == [2 * S, 3 * S]


def test_daily_at_1520_ist_on_weekdays_only() -> None:
    # Friday 2026-11-20 10:00 IST; next firings: Fri 15:20, then Mon 15:20 (weekend skipped).
    clock = SimClock(ns(2026, 11, 20, 10, 0))
    fired: list[int] = []
    clock.set_daily("square_off", "15:20", "Asia/Kolkata", lambda e: fired.append(e.ts_scheduled),
                    weekdays=[0, 1, 2, 3, 4])
    clock.advance_to(ns(2026, 11, 24, 0, 0))
    assert fired == [ns(2026, 11, 20, 15, 20), ns(2026, 11, 23, 15, 20)]
    # 15:20 IST is 09:50 UTC.
    assert dt.datetime.fromtimestamp(fired[0] / S, tz=dt.UTC).strftime("%H:%M") == "09:50"


def test_daily_follows_dst_in_new_york() -> None:
    # 2026-03-08 is the US spring-forward day: 15:50 New York is 20:50 UTC before, 19:50 after.
    before = next_local_time(ns(2026, 3, 6, 12, 0, NY), dt.time(15, 50), "America/New_York")
    after = next_local_time(ns(2026, 3, 9, 12, 0, NY), dt.time(15, 50), "America/New_York")
    assert dt.datetime.fromtimestamp(before / S, tz=dt.UTC).hour == 20
    assert dt.datetime.fromtimestamp(after / S, tz=dt.UTC).hour == 19


def test_bad_periodic_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="interval must be positive"):
        SimClock(0).set_periodic("x", 0, lambda e: None)


async def test_live_clock_fires_timers_on_the_loop() -> None:
    clock = LiveClock()
    fired: list[str] = []
    done = asyncio.Event()
    now = clock.now_ns()
    assert abs(now - time.time_ns()) < S
    clock.set_timer("late", now + 60_000_000, lambda e: (fired.append("late"), done.set()))
    clock.set_timer("soon", now + 20_000_000, lambda e: fired.append("soon"))
    await asyncio.wait_for(done.wait(), 2)
    assert fired == ["soon", "late"]


async def test_live_clock_periodic_and_cancel() -> None:
    clock = LiveClock()
    fired: list[int] = []
    clock.set_periodic("p", 10_000_000, lambda e: fired.append(e.ts_scheduled))
    await asyncio.sleep(0.08)
    clock.cancel_timer("p")
    n = len(fired)
    assert n >= 3
    await asyncio.sleep(0.05)
    assert len(fired) == n
    assert fired == sorted(fired)


async def test_live_clock_survives_a_raising_timer() -> None:
    loop = asyncio.get_running_loop()
    errors: list[str] = []
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx["message"]))
    clock = LiveClock()
    ok = asyncio.Event()

    def boom(_e: TimeEvent) -> None:
        raise RuntimeError("boom")

    now = clock.now_ns()
    clock.set_timer("bad", now + 5_000_000, boom)
    clock.set_timer("good", now + 15_000_000, lambda e: ok.set())
    await asyncio.wait_for(ok.wait(), 2)
    assert errors == ["timer 'bad' raised"]
