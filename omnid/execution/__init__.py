"""Order management and routing: intents become journaled orders, routed by venue to clients.

- :class:`OrderManager` (``manager.py``): ids, the journal, the state machine, fills into the
  portfolio, recording; it is the router's :class:`~omnid.ports.ExecutionEvents`.
- :class:`Router` (``router.py``): venue → :class:`~omnid.ports.ExecutionClient`.
- :class:`ClientOrderIds` (``ids.py``): deterministic, resumable client order ids.
- :class:`Journal` (``journal.py``): the write-ahead seam the storage part implements.
- The paper broker is a venue like any other: :mod:`omnid.venues.paper`.
"""

from omnid.execution.events import ExecutionIssue, IssueKind
from omnid.execution.ids import ClientOrderIds, parse_client_order_id
from omnid.execution.journal import Journal, MemoryJournal
from omnid.execution.manager import OrderManager
from omnid.execution.router import Router, venue_of

__all__ = [
    "ClientOrderIds",
    "ExecutionIssue",
    "IssueKind",
    "Journal",
    "MemoryJournal",
    "OrderManager",
    "Router",
    "parse_client_order_id",
    "venue_of",
]
