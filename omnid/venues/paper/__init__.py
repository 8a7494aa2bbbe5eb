"""The paper venue: :class:`PaperBroker` fills orders from the engine's market data."""

from omnid.venues.paper.broker import PaperBroker
from omnid.venues.paper.config import PaperConfig

__all__ = ["PaperBroker", "PaperConfig"]
