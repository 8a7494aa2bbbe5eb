"""The last trade id the feed delivered per symbol, kept on disk so a restart can fetch what it missed.

One small JSON file under the daemon's data dir, replaced atomically (write a temporary file in the
same directory, fsync, rename), written by the feed every few seconds and on a clean stop, never per
trade. It holds::

    {"v": 1, "source": "<REST base URL>", "saved_ns": <wall ns>,
     "trade": {"BTCUSDT": 123}, "aggTrade": {"BTCUSDT": 45}}

``saved_ns`` is when the feed last knew those ids to be the newest (it was subscribed and no
catch-up was pending), not when the file was written: a feed stopped while disconnected writes its
exact last ids with the time it was last live, so the next start neither fetches a trade twice nor
thinks its ids younger than they are. ``source`` ties the ids to one venue: ids from another network
(spot vs testnet, another URL) are ignored rather than fetched from.

A file that is missing, unreadable or malformed is logged with what was wrong and ignored: the feed
then starts as if for the first time. Nothing here raises into the feed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path

import msgspec

log = logging.getLogger("omnid.venues.binance.lastids")

VERSION = 1
#: The file's name under the daemon's data dir.
FILE_NAME = "binance_last_trade_ids.json"


class LastIds(msgspec.Struct, kw_only=True):
    """The file's content; ``trade`` / ``aggTrade`` map symbol → last delivered id of that stream."""

    v: int
    source: str
    saved_ns: int
    trade: dict[str, int] = msgspec.field(default_factory=dict)
    aggTrade: dict[str, int] = msgspec.field(default_factory=dict)  # named as the stream


_decoder = msgspec.json.Decoder(LastIds)


def load(path: Path, *, source: str, now_ns: int, max_age_s: float) -> LastIds | None:
    """The ids to recover from, or None (with one log line saying why) when there are none to use."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        log.info("binance feed: no last-trade-id file %s (first start?): trades missed while omnid was "
                 "down cannot be fetched this time", path)
        return None
    except OSError as exc:
        log.warning("binance feed: cannot read the last-trade-id file %s (%s); starting without "
                    "recovering trades missed while omnid was down", path, exc.strerror or exc)
        return None
    try:
        ids = _decoder.decode(raw)
        problem = _problem(ids)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        problem = str(exc)
    if problem:
        log.warning("binance feed: the last-trade-id file %s is corrupt (%s); ignoring it and starting "
                    "without recovering trades missed while omnid was down", path, problem)
        return None
    if ids.source != source:
        log.warning("binance feed: the last-trade-id file %s is for %s, this feed uses %s; ignoring it",
                    path, ids.source, source)
        return None
    age_s = (now_ns - ids.saved_ns) / 1e9
    if age_s > max_age_s:
        log.warning("binance feed: last trade ids in %s are %.0fs old, more than recover_max_age_s = %g: "
                    "not fetching trades missed while omnid was down", path, age_s, max_age_s)
        return None
    return ids


def _problem(ids: LastIds) -> str:
    if ids.v != VERSION:
        return f"version {ids.v}, expected {VERSION}"
    for name, table in (("trade", ids.trade), ("aggTrade", ids.aggTrade)):
        bad = [s for s, i in table.items() if i < 0 or not s]
        if bad:
            return f"{name} ids must be >= 0 with a symbol (bad: {', '.join(bad)})"
    return ""


class LastIdsFile:
    """Writes the file atomically; safe to call from a worker thread and the loop at once (the write
    with the newest sequence number wins, an older snapshot never replaces a newer one)."""

    def __init__(self, path: Path, source: str) -> None:
        self.path = path
        self.source = source
        self._lock = threading.Lock()
        self._seq = 0
        self._written_seq = 0
        self.writes = 0
        self.errors = 0

    def snapshot(self, trade: dict[str, int], agg: dict[str, int], saved_ns: int) -> tuple[int, bytes]:
        """Encode now (on the loop, so the dicts cannot change underneath); write later."""
        self._seq += 1
        body = msgspec.json.encode(LastIds(v=VERSION, source=self.source, saved_ns=saved_ns,
                                           trade=dict(trade), aggTrade=dict(agg)))
        return self._seq, body

    def write(self, seq: int, body: bytes) -> bool:
        """Replace the file with ``body`` unless a newer snapshot is already on disk; never raises."""
        with self._lock:
            if seq <= self._written_seq:
                return False
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with open(tmp, "wb") as f:
                    f.write(body)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except OSError as exc:
                self.errors += 1
                if self.errors <= 3 or self.errors % 100 == 0:
                    log.warning("binance feed: cannot write the last-trade-id file %s (%s); a restart may "
                                "not recover the trades it misses", self.path, exc.strerror or exc)
                with contextlib.suppress(OSError):
                    tmp.unlink(missing_ok=True)
                return False
            self._written_seq = seq
            self.writes += 1
            return True
