"""Trading calendars: sessions in the exchange's zone, weekends and holidays, crypto UTC days."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from omnid.calendar import CRYPTO_24_7, NSE_EQUITY, US_EQUITY, TradingCalendar, to_ns
from omnid.errors import ConfigError

IST = ZoneInfo("Asia/Kolkata")
NY = ZoneInfo("America/New_York")


def ns(y: int, mo: int, d: int, h: int, mi: int, tz: ZoneInfo) -> int:
    return to_ns(dt.datetime(y, mo, d, h, mi, tzinfo=tz))


def test_nse_session_bounds_and_is_open() -> None:
    t = ns(2026, 11, 20, 12, 0, IST)  # a Friday
    assert NSE_EQUITY.session_bounds(t) == (ns(2026, 11, 20, 9, 15, IST), ns(2026, 11, 20, 15, 30, IST))
    assert NSE_EQUITY.is_open(t)
    assert not NSE_EQUITY.is_open(ns(2026, 11, 20, 9, 14, IST))
    assert NSE_EQUITY.is_open(ns(2026, 11, 20, 9, 15, IST))
    assert not NSE_EQUITY.is_open(ns(2026, 11, 20, 15, 30, IST))
    assert not NSE_EQUITY.is_open(ns(2026, 11, 21, 12, 0, IST))  # Saturday
    assert NSE_EQUITY.session_bounds(ns(2026, 11, 21, 12, 0, IST)) is None


def test_holiday_has_no_session_and_session_start_looks_back() -> None:
    cal = TradingCalendar(tz="Asia/Kolkata", open="09:15", close="15:30", weekdays=[0, 1, 2, 3, 4],
                          holidays=["2026-01-26"], always_open=False)
    assert not cal.is_open(ns(2026, 1, 26, 11, 0, IST))
    # On the holiday, the session in force is still Friday's.
    assert cal.session_start(ns(2026, 1, 26, 11, 0, IST)) == ns(2026, 1, 23, 9, 15, IST)
    assert cal.next_session_start(ns(2026, 1, 23, 16, 0, IST)) == ns(2026, 1, 27, 9, 15, IST)


def test_us_session_in_utc_moves_with_dst() -> None:
    winter = US_EQUITY.session_bounds(ns(2026, 1, 15, 12, 0, NY))
    summer = US_EQUITY.session_bounds(ns(2026, 7, 15, 12, 0, NY))
    assert winter is not None and summer is not None
    assert dt.datetime.fromtimestamp(winter[0] / 1e9, tz=dt.UTC).hour == 14
    assert dt.datetime.fromtimestamp(summer[0] / 1e9, tz=dt.UTC).hour == 13


def test_crypto_sessions_are_utc_days() -> None:
    t = ns(2026, 11, 22, 5, 30, ZoneInfo("UTC"))
    start, end = CRYPTO_24_7.session_bounds(t) or (0, 0)
    assert start == ns(2026, 11, 22, 0, 0, ZoneInfo("UTC"))
    assert end - start == 86_400 * 10**9
    assert CRYPTO_24_7.is_open(t)
    assert CRYPTO_24_7.session_start(t) == start


def test_local_time_on_the_day() -> None:
    t = ns(2026, 11, 20, 10, 0, IST)
    assert NSE_EQUITY.local_time_on(t, "15:20") == ns(2026, 11, 20, 15, 20, IST)


def test_bad_zone_and_time_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Olympus'"):
        TradingCalendar(tz="Mars/Olympus", always_open=False).is_open(0)
    with pytest.raises(ConfigError, match="expected HH:MM"):
        TradingCalendar(tz="UTC", open="nine", always_open=False).session_bounds(ns(2026, 11, 20, 10, 0, IST))
