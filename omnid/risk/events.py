"""What the risk gate writes down: denials, halts and resumes, and its status for the admin socket.

A denial is an event, not an exception: the engine records it and carries on, so a backtest shows
every order that risk stopped, with the rule and the numbers behind it.
"""

from __future__ import annotations

import msgspec

from omnid.model import IntentAction, Side


class RiskDenial(msgspec.Struct, kw_only=True):
    """An intent the gate refused: which rule, a sentence for a human, and the numbers behind it."""

    ts: int
    strategy_id: str
    instrument_id: str
    side: Side
    rule: str
    message: str
    numbers: dict[str, float] = msgspec.field(default_factory=dict)
    action: IntentAction = IntentAction.OPEN


class RiskHaltEvent(msgspec.Struct, kw_only=True):
    """New entries were halted (``halted``) or resumed, by whom/what (``source``) and why."""

    ts: int
    halted: bool
    source: str
    reason: str
    numbers: dict[str, float] = msgspec.field(default_factory=dict)


class RiskStatus(msgspec.Struct, kw_only=True):
    """A snapshot for ``omnid status`` and the dashboard."""

    ts: int
    halted: bool
    halts: dict[str, str]
    open_positions: int
    pending_orders: int
    orders_in_window: int
    denials: int
    approvals: int
    managed_exits: int
