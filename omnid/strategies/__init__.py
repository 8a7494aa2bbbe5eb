"""Strategies: the Strategy API (:mod:`.base`), the kind registry, config, and the built-ins.

Importing this package registers the built-in kinds (``momentum``, ``sma_cross``, ``pairs``,
``scanner``).
"""

from omnid.strategies import builtin as builtin
from omnid.strategies.base import (
    FeatureSource,
    Indicator,
    Intents,
    Strategy,
    StrategyContext,
    StrategyErrorRecord,
    StrategyParams,
    StrategyRunner,
)
from omnid.strategies.registry import STRATEGY_KINDS, register, strategy_class

__all__ = [
    "STRATEGY_KINDS",
    "FeatureSource",
    "Indicator",
    "Intents",
    "Strategy",
    "StrategyContext",
    "StrategyErrorRecord",
    "StrategyParams",
    "StrategyRunner",
    "register",
    "strategy_class",
]
