"""Client order ids: deterministic, unique, short enough for every venue, and resumable.

An id is ``<session>-<strategy tag>-<sequence>``, e.g. ``r1-smacross-42``. The sequence is one
counter per order manager (so ids are unique even when two strategy ids share a tag), the same
inputs give the same ids (backtests are repeatable), and after a restart the manager resumes the
counter past the highest sequence in the journal, so no id is ever reused. Ids stay within
Binance's ``newClientOrderId`` rule (at most 36 characters of ``[.A-Z:/a-z0-9_-]``), which is the
strictest of the venues omnid speaks.
"""

from __future__ import annotations

import re

from omnid.errors import ConfigError

MAX_LEN = 36
_SESSION_RE = re.compile(r"^[A-Za-z0-9]{1,8}$")
_TAG_CLEAN = re.compile(r"[^A-Za-z0-9]")
_TAG_LEN = 12


def strategy_tag(strategy_id: str) -> str:
    """The strategy id reduced to at most 12 letters/digits (``sma_cross:BTC`` → ``smacrossBTC``)."""
    return _TAG_CLEAN.sub("", strategy_id)[:_TAG_LEN] or "x"


def parse_client_order_id(client_order_id: str) -> tuple[str, str, int] | None:
    """``(session, tag, sequence)`` of an id this module made; None for anything else."""
    parts = client_order_id.split("-")
    if len(parts) != 3 or not parts[2].isdigit():
        return None
    return parts[0], parts[1], int(parts[2])


class ClientOrderIds:
    """Makes the ids for one session. ``observe`` moves the counter past an id seen in the journal."""

    __slots__ = ("_next", "_tags", "session")

    def __init__(self, session: str, *, start: int = 1) -> None:
        if not _SESSION_RE.match(session):
            raise ConfigError("execution", [("session", f"must be 1-8 letters or digits, got {session!r}")])
        if start < 1:
            raise ConfigError("execution", [("start", f"sequence starts at 1 or more, got {start}")])
        self.session = session
        self._next = start
        self._tags: dict[str, str] = {}

    @property
    def next_sequence(self) -> int:
        return self._next

    def next(self, strategy_id: str) -> str:
        """A new id for an order of ``strategy_id``."""
        seq = self._next
        self._next = seq + 1
        tag = self._tags.get(strategy_id)
        if tag is None:
            tag = self._tags[strategy_id] = strategy_tag(strategy_id)
        return f"{self.session}-{tag}-{seq}"

    def skip_past(self, sequence: int) -> None:
        """Never hand out ``sequence`` or anything below it."""
        if sequence >= self._next:
            self._next = sequence + 1

    def observe(self, client_order_id: str) -> bool:
        """Resume past ``client_order_id`` if it is one of this session's; True when it was."""
        parsed = parse_client_order_id(client_order_id)
        if parsed is None or parsed[0] != self.session:
            return False
        if parsed[2] >= self._next:
            self._next = parsed[2] + 1
        return True
