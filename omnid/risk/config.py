"""``[risk]``: the pre-trade gate's limits, position sizing and managed exits.

Every limit is off when it is 0 (or empty), so a fresh config trades with sizing and sanity checks
only. Percentages are written as percent (``10`` means 10 %) because that is how people say them;
the gate converts them to fractions once, at construction.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from omnid.calendar import parse_hhmm, zone
from omnid.configbase import Section
from omnid.errors import ConfigError

SizingMode = Literal["fixed", "fraction", "risk_per_trade", "all_in"]


def _check_times(table: dict[str, str], key: str) -> None:
    for name, hhmm in table.items():
        try:
            parse_hhmm(hhmm, key=f"{key}.{name}")
        except ConfigError as exc:
            raise ValueError(f"{key}.{name}: expected HH:MM or HH:MM:SS, got {hhmm!r}") from exc


class SizingConfig(Section):
    """How an intent with ``qty == 0`` is sized (an intent with a quantity keeps it)."""

    mode: SizingMode = "all_in"
    fixed_qty: float = 1.0
    fraction_pct: float = 10.0
    risk_per_trade_pct: float = 1.0
    commission_rate: float = 0.0
    #: With ``mode = "all_in"``: size market entries again at the fill, from the free funds and the
    #: fill price (what backtesting.py does, and what "all in" means when the next price gaps: never
    #: more than the cash, never cash left idle). Only the paper broker can; a live venue gets the
    #: quantity sized at the decision. ``omnid backtest`` turns it on.
    at_fill: bool = False

    def __post_init__(self) -> None:
        if self.at_fill and self.mode != "all_in":
            raise ValueError(f'sizing.at_fill needs mode = "all_in", not {self.mode!r}')
        if not self.fixed_qty > 0:
            raise ValueError(f"sizing.fixed_qty must be > 0, got {self.fixed_qty}")
        if not 0 <= self.fraction_pct <= 100:
            raise ValueError(f"sizing.fraction_pct must be within 0..100, got {self.fraction_pct}")
        if not 0 < self.risk_per_trade_pct <= 100:
            raise ValueError(
                f"sizing.risk_per_trade_pct must be within (0, 100], got {self.risk_per_trade_pct}"
            )
        if not 0 <= self.commission_rate < 1:
            raise ValueError(f"sizing.commission_rate must be within [0, 1), got {self.commission_rate}")


class ExitsConfig(Section):
    """Default managed exits (percent of the entry price) and intraday square-off times."""

    stop_loss_pct: float = 0.0
    take_profit_pct: float = 0.0
    trailing_stop_pct: float = 0.0
    square_off: dict[str, str] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in ("stop_loss_pct", "trailing_stop_pct"):
            v = getattr(self, key)
            if not 0 <= v < 100:
                raise ValueError(f"exits.{key} must be within [0, 100), got {v}")
        if self.take_profit_pct < 0:
            raise ValueError(f"exits.take_profit_pct must be >= 0, got {self.take_profit_pct}")
        _check_times(self.square_off, "exits.square_off")


class RiskConfig(Section):
    """The risk gate. Each limit is off when 0; see omnid.toml.example for every key's meaning."""

    sizing: SizingConfig = msgspec.field(default_factory=SizingConfig)
    exits: ExitsConfig = msgspec.field(default_factory=ExitsConfig)
    session_window: bool = True
    entry_cutoff: dict[str, str] = msgspec.field(default_factory=dict)
    max_open_positions: int = 0
    max_symbol_exposure: float = 0.0
    max_symbol_exposure_pct: float = 0.0
    max_gross_exposure: float = 0.0
    max_gross_exposure_pct: float = 0.0
    max_daily_loss: float = 0.0
    max_daily_loss_pct: float = 0.0
    max_drawdown_pct: float = 0.0
    flatten_on_halt: bool = False
    day_timezone: str = ""
    limits_check_seconds: float = 1.0
    max_orders: int = 0
    rate_window_seconds: float = 1.0
    price_collar_pct: float = 0.0
    duplicate_guard: bool = True
    duplicate_window_seconds: float = 0.0

    def __post_init__(self) -> None:
        for key in (
            "max_open_positions",
            "max_symbol_exposure",
            "max_symbol_exposure_pct",
            "max_gross_exposure",
            "max_gross_exposure_pct",
            "max_daily_loss",
            "max_daily_loss_pct",
            "max_drawdown_pct",
            "max_orders",
            "price_collar_pct",
            "duplicate_window_seconds",
        ):
            v = getattr(self, key)
            if v < 0:
                raise ValueError(f"{key} must be >= 0 (0 turns the limit off), got {v}")
        if self.max_drawdown_pct >= 100 or self.max_daily_loss_pct >= 100:
            raise ValueError("max_drawdown_pct and max_daily_loss_pct must be below 100")
        if not self.rate_window_seconds > 0:
            raise ValueError(f"rate_window_seconds must be > 0, got {self.rate_window_seconds}")
        if self.limits_check_seconds < 0:
            raise ValueError(f"limits_check_seconds must be >= 0 (0: only on entries and fills), "
                             f"got {self.limits_check_seconds}")
        if self.day_timezone:
            try:
                zone(self.day_timezone)
            except ConfigError as exc:
                raise ValueError(f"day_timezone: unknown time zone {self.day_timezone!r}") from exc
        _check_times(self.entry_cutoff, "entry_cutoff")
