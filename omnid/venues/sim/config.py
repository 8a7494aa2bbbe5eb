"""``[sim_market]``: the simulated live feed used by the embedded default."""

from __future__ import annotations

import msgspec

from omnid.configbase import Section


class SimMarketConfig(Section):
    """Drives every instrument whose venue is ``venue`` with a seeded jump-diffusion."""

    enabled: bool = True
    #: Instruments with this venue are simulated.
    venue: str = "SIM"
    #: Same seed, same price paths (given the same sequence of wall-clock steps).
    seed: int = 7
    #: Mean market events (trades + quotes) per second per instrument.
    rate_hz: float = 10.0
    #: Seconds between generation steps (events are batched per step).
    step_s: float = 0.1
    #: Annualised volatility of the diffusion.
    volatility: float = 0.6
    #: Simulated seconds per wall second for the price process (makes moves visible quickly).
    speed: float = 60.0
    #: Mean jumps per simulated day, and the jumps' log-size standard deviation.
    jumps_per_day: float = 24.0
    jump_sigma: float = 0.01
    #: Spread in ticks (at least one), and levels per book snapshot.
    spread_ticks: int = 2
    book_levels: int = 5
    #: A BookSnapshot every N quotes (0: none).
    book_every: int = 5
    #: Start prices by symbol; others start at 100.
    start_prices: dict[str, float] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.rate_hz <= 0 or self.step_s <= 0 or self.speed <= 0:
            raise ValueError("rate_hz, step_s and speed must be > 0")
        if self.volatility < 0 or self.jumps_per_day < 0 or self.jump_sigma < 0:
            raise ValueError("volatility, jumps_per_day and jump_sigma must be >= 0")
        if self.spread_ticks < 1 or self.book_levels < 1 or self.book_every < 0:
            raise ValueError("spread_ticks and book_levels must be >= 1, book_every >= 0")
        for sym, px in self.start_prices.items():
            if not px > 0:
                raise ValueError(f"start_prices.{sym} must be > 0")
