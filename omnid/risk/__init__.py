"""The risk gate (pre-trade checks, sizing, kill switch) and managed exits (stops, square-off).

Import the gate from here; ``omnid.risk.config`` stays free of the rest so that ``omnid.config``
can import it without pulling the gate in.
"""

from omnid.risk.config import ExitsConfig, RiskConfig, SizingConfig
from omnid.risk.events import RiskDenial, RiskHaltEvent, RiskStatus
from omnid.risk.exits import ExitLevels, ExitManager
from omnid.risk.gate import RiskGate

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
