"""The risk gate (pre-trade checks, sizing, kill switch) and managed exits (stops, square-off).

Import the gate from here. The names are loaded when first asked for, so that ``omnid.config``
(which imports ``omnid.risk.config``, and with it this package) does not pull in the gate, the exit
manager, the clock and asyncio: every ``omnid status`` would pay for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from omnid.lazy import lazy_exports

if TYPE_CHECKING:
    from omnid.risk.config import ExitsConfig, RiskConfig, SizingConfig
    from omnid.risk.events import RiskDenial, RiskHaltEvent, RiskStatus
    from omnid.risk.exits import ExitLevels, ExitManager
    from omnid.risk.gate import RiskGate

_WHERE = {
    "ExitLevels": "exits",
    "ExitManager": "exits",
    "ExitsConfig": "config",
    "RiskConfig": "config",
    "RiskDenial": "events",
    "RiskGate": "gate",
    "RiskHaltEvent": "events",
    "RiskStatus": "events",
    "SizingConfig": "config",
}

__all__ = [
    "ExitLevels",
    "ExitManager",
    "ExitsConfig",
    "RiskConfig",
    "RiskDenial",
    "RiskGate",
    "RiskHaltEvent",
    "RiskStatus",
    "SizingConfig",
]

__getattr__ = lazy_exports(__name__, _WHERE)
