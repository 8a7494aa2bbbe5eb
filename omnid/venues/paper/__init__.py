"""The paper venue: :class:`PaperBroker` fills orders from the engine's market data.

Loaded when first asked for: ``omnid.config`` imports ``omnid.venues.paper.config``, and the CLI's
light commands should not pay for the broker (and the clock and asyncio behind it).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omnid.venues.paper.broker import PaperBroker
    from omnid.venues.paper.config import PaperConfig

_WHERE = {"PaperBroker": "broker", "PaperConfig": "config"}

__all__ = ["PaperBroker", "PaperConfig"]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'omnid.venues.paper' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"omnid.venues.paper.{module}"), name)
    globals()[name] = value
    return value
