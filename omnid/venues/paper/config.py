"""The ``[paper]`` section: how the paper broker fills, slips and charges."""

from __future__ import annotations

import math

import msgspec

from omnid.configbase import Section

ORDER_TYPES = ("market", "limit", "stop", "stop_limit", "limit_maker")
DATA_KINDS = ("trade", "quote", "bar")


class PaperConfig(Section):
    """Fill model of the paper broker. Commission parts add up: rate × notional + per unit × qty,
    plus ``commission_per_order`` once on an order's first fill."""

    venue: str = "PAPER"
    slippage_bps: float = 0.0
    slippage_ticks: int = 0
    commission_rate: float = 0.0
    commission_per_unit: float = 0.0
    commission_per_order: float = 0.0
    commission_currency: str = ""
    limit_by_volume: bool = True
    participation: float = 1.0
    fill_on: list[str] = msgspec.field(default_factory=lambda: list(DATA_KINDS))
    limit_fill_on_touch: bool = True
    allow_short: bool = True
    order_types: list[str] = msgspec.field(default_factory=lambda: list(ORDER_TYPES))

    def __post_init__(self) -> None:
        if not self.venue or "." in self.venue:
            raise ValueError(f"venue must be a non-empty name without dots, got {self.venue!r}")
        for key in ("slippage_bps", "commission_rate", "commission_per_unit", "commission_per_order"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{key} must be a finite number >= 0, got {value!r}")
        if self.slippage_ticks < 0:
            raise ValueError(f"slippage_ticks must be >= 0, got {self.slippage_ticks}")
        if not (math.isfinite(self.participation) and 0 < self.participation <= 1):
            raise ValueError(f"participation must be in (0, 1], got {self.participation!r}")
        bad = [k for k in self.fill_on if k not in DATA_KINDS]
        if bad or not self.fill_on:
            raise ValueError(f"fill_on must list some of {list(DATA_KINDS)}, got {self.fill_on!r}")
        bad = [k for k in self.order_types if k not in ORDER_TYPES]
        if bad or "market" not in self.order_types:
            raise ValueError(
                f"order_types must include 'market' and only {list(ORDER_TYPES)}, got {self.order_types!r}"
            )
