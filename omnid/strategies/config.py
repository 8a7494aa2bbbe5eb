"""``[[strategies]]``: which strategies run, on what, with which parameters.

Each table names one strategy instance; ``params`` is checked against the kind's params struct when
the config loads, so an unknown or mistyped parameter is a config error naming the strategy and the
key, found by ``omnid config check`` before anything runs.
"""

from __future__ import annotations

from typing import Any

import msgspec

from omnid.configbase import Section
from omnid.errors import ConfigError
from omnid.features.engine import parse_source
from omnid.strategies.base import decode_params
from omnid.strategies.registry import known_kinds, strategy_class


class StrategyConfig(Section):
    """One strategy instance: ``name`` (unique), ``kind`` (a registered class), the instruments
    (``SYMBOL.VENUE`` ids, or bare symbols when unambiguous), and its ``params``."""

    name: str
    kind: str
    instruments: list[str]
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    enabled: bool = True
    #: What the strategy decides on and its features are computed from: "tick" (every trade) or a
    #: bar interval ("1m", "1h", "1d"); "" = the engine's default (ticks live, the replayed bars'
    #: interval in a backtest).
    source: str = ""

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"strategy name {self.name!r} must be letters, digits, '_' or '-'")
        try:
            cls = strategy_class(self.kind)
        except ValueError as exc:
            raise ValueError(f"strategy {self.name!r}: {exc}") from None
        if cls is None:
            raise ValueError(
                f"strategy {self.name!r}: unknown kind {self.kind!r} (known: {', '.join(known_kinds())}; "
                "or 'package.module:ClassName' for your own)"
            )
        if not self.instruments:
            raise ValueError(f"strategy {self.name!r}: instruments must list at least one instrument")
        if cls.n_instruments is not None and len(self.instruments) != cls.n_instruments:
            raise ValueError(
                f"strategy {self.name!r}: {self.kind} needs exactly {cls.n_instruments} instruments, "
                f"got {len(self.instruments)}"
            )
        if self.source:
            try:
                parse_source(self.source)
            except ConfigError:
                raise ValueError(
                    f"strategy {self.name!r}: source must be 'tick' or an interval like '1m', '1h', '1d'; "
                    f"got {self.source!r}"
                ) from None
        try:
            decode_params(self.name, self.kind, cls.params_type, self.params)
        except ConfigError as exc:
            raise ValueError("; ".join(f"{k}: {m}" for k, m in exc.problems)) from None

    def decoded_params(self) -> Any:
        """The params as the kind's struct (already validated at load)."""
        cls = strategy_class(self.kind)
        assert cls is not None  # checked in __post_init__
        return decode_params(self.name, self.kind, cls.params_type, self.params)
