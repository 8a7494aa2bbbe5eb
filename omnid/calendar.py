"""Trading calendars: when an instrument's session opens and closes, in its exchange's time zone.

The feature engine asks "which session does this timestamp belong to?" on every tick (session VWAP
resets at the open), so the answer is cached per session and the per-tick check is two integer
comparisons. Time zone arithmetic (zoneinfo) only runs when a tick crosses into a new session.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from omnid.errors import ConfigError

NS_PER_SECOND = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_SECOND


def parse_hhmm(text: str, *, key: str = "time") -> dt.time:
    """Parse ``HH:MM`` or ``HH:MM:SS`` into a time, with an error that names the key."""
    try:
        parts = [int(p) for p in text.split(":")]
        if len(parts) not in (2, 3):
            raise ValueError(text)
        return dt.time(parts[0], parts[1], parts[2] if len(parts) == 3 else 0)
    except (ValueError, TypeError) as exc:
        raise ConfigError("calendar", [(key, f"expected HH:MM or HH:MM:SS, got {text!r}")]) from exc


def zone(name: str) -> ZoneInfo:
    """Look up a time zone, naming it if the system does not know it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError("calendar", [("tz", f"unknown time zone {name!r}")]) from exc


class TradingCalendar(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One regular session a day on the listed weekdays, minus holidays; or always open (crypto).

    ``open``/``close`` are local wall times in ``tz``. ``weekdays`` uses Monday=0. ``holidays``
    are ISO dates (``2026-01-26``). A crypto calendar has ``always_open = true`` and its
    "session" is the UTC day, so session VWAP resets at 00:00 UTC as venues do.
    """

    tz: str = "UTC"
    open: str = "00:00"
    close: str = "24:00"
    weekdays: list[int] = msgspec.field(default_factory=lambda: [0, 1, 2, 3, 4, 5, 6])
    holidays: list[str] = msgspec.field(default_factory=list)
    always_open: bool = True

    def session_bounds(self, ts_ns: int) -> tuple[int, int] | None:
        """The (open, close) ns of the session whose day contains ``ts_ns`` (local date), if any.

        ``None`` on a weekend or holiday. For an always-open calendar it is the UTC day.
        """
        if self.always_open:
            start = ts_ns - ts_ns % NS_PER_DAY
            return start, start + NS_PER_DAY
        tzinfo = zone(self.tz)
        local = dt.datetime.fromtimestamp(ts_ns / NS_PER_SECOND, tz=tzinfo)
        day = local.date()
        if day.weekday() not in self.weekdays or day.isoformat() in self.holidays:
            return None
        return self._bounds_on(day, tzinfo)

    def _bounds_on(self, day: dt.date, tzinfo: ZoneInfo) -> tuple[int, int]:
        o = parse_hhmm(self.open, key="open")
        if self.close in ("24:00", "24:00:00"):
            c_dt = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=tzinfo)
        else:
            c_dt = dt.datetime.combine(day, parse_hhmm(self.close, key="close"), tzinfo=tzinfo)
        o_dt = dt.datetime.combine(day, o, tzinfo=tzinfo)
        return to_ns(o_dt), to_ns(c_dt)

    def is_open(self, ts_ns: int) -> bool:
        """True when ``ts_ns`` falls inside a session."""
        bounds = self.session_bounds(ts_ns)
        return bounds is not None and bounds[0] <= ts_ns < bounds[1]

    def session_start(self, ts_ns: int) -> int:
        """The open of the session that ``ts_ns`` belongs to (the latest open at or before it).

        Outside a session (pre-open, weekend), this is the latest open before ``ts_ns``, so that a
        feature keyed on it stays constant until the next session opens.
        """
        if self.always_open:
            return ts_ns - ts_ns % NS_PER_DAY
        tzinfo = zone(self.tz)
        day = dt.datetime.fromtimestamp(ts_ns / NS_PER_SECOND, tz=tzinfo).date()
        for back in range(0, 15):
            d = day - dt.timedelta(days=back)
            if d.weekday() not in self.weekdays or d.isoformat() in self.holidays:
                continue
            start, _ = self._bounds_on(d, tzinfo)
            if start <= ts_ns:
                return start
        return ts_ns - ts_ns % NS_PER_DAY

    def next_session_start(self, ts_ns: int) -> int:
        """The first session open strictly after ``ts_ns``."""
        if self.always_open:
            return ts_ns - ts_ns % NS_PER_DAY + NS_PER_DAY
        tzinfo = zone(self.tz)
        day = dt.datetime.fromtimestamp(ts_ns / NS_PER_SECOND, tz=tzinfo).date()
        for ahead in range(0, 15):
            d = day + dt.timedelta(days=ahead)
            if d.weekday() not in self.weekdays or d.isoformat() in self.holidays:
                continue
            start, _ = self._bounds_on(d, tzinfo)
            if start > ts_ns:
                return start
        return ts_ns + NS_PER_DAY

    def local_time_on(self, ts_ns: int, hhmm: str) -> int:
        """The ns timestamp of local wall time ``hhmm`` on the local date of ``ts_ns``."""
        tzinfo = zone(self.tz)
        day = dt.datetime.fromtimestamp(ts_ns / NS_PER_SECOND, tz=tzinfo).date()
        return to_ns(dt.datetime.combine(day, parse_hhmm(hhmm), tzinfo=tzinfo))


def to_ns(moment: dt.datetime) -> int:
    """An aware datetime as integer ns since the epoch, exact (no float rounding)."""
    delta = moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * NS_PER_SECOND + delta.microseconds * 1000


CRYPTO_24_7 = TradingCalendar()
NSE_EQUITY = TradingCalendar(
    tz="Asia/Kolkata", open="09:15", close="15:30", weekdays=[0, 1, 2, 3, 4], always_open=False
)
US_EQUITY = TradingCalendar(
    tz="America/New_York", open="09:30", close="16:00", weekdays=[0, 1, 2, 3, 4], always_open=False
)
