"""The ``[features]`` config section: indicators computed for every configured instrument."""

from __future__ import annotations

import msgspec

from omnid.configbase import Section
from omnid.errors import ConfigError


class FeaturesConfig(Section):
    """``indicators`` maps a source (``"tick"`` or a bar interval ``"1s"``..``"1d"``) to a spec list
    (``"rsi:14,ema:20"``) set up for every instrument at start, before strategies ask for theirs.
    ``book_levels`` caps the depth of each side of the local order book (bounded memory)."""

    indicators: dict[str, str] = msgspec.field(default_factory=dict)
    book_levels: int = 1000

    def __post_init__(self) -> None:
        from omnid.features.engine import parse_source
        from omnid.features.spec import parse_spec

        if self.book_levels < 1:
            raise ValueError(f"book_levels must be >= 1, got {self.book_levels}")
        for source, spec in self.indicators.items():
            try:
                parse_source(source)
                for item in parse_spec(spec):
                    if item.kind == "corr":
                        raise ConfigError("indicators", [(item.item, "corr pairs two instruments: a "
                                                          "strategy asks for it, not [features]")])
            except ConfigError as exc:
                raise ValueError(f"indicators.{source}: " + "; ".join(
                    f"{k}: {m}" if k else m for k, m in exc.problems)) from None
