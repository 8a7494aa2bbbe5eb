"""The paper venue: :class:`PaperBroker` fills orders from the engine's market data.

Loaded when first asked for: ``omnid.config`` imports ``omnid.venues.paper.config``, and the CLI's
light commands should not pay for the broker (and the clock and asyncio behind it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from omnid.lazy import lazy_exports

if TYPE_CHECKING:
    from omnid.venues.paper.broker import PaperBroker
    from omnid.venues.paper.config import PaperConfig

_WHERE = {"PaperBroker": "broker", "PaperConfig": "config"}

__all__ = ["PaperBroker", "PaperConfig"]

__getattr__ = lazy_exports(__name__, _WHERE)
