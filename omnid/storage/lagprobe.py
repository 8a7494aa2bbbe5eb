"""Measures how long the event loop is held: a task asks to wake every ``interval`` and records by
how much each wake-up was late. The worst lateness is the longest stall anything caused."""

from __future__ import annotations

import asyncio
import contextlib
import time


class LoopLagProbe:
    def __init__(self, interval_s: float = 0.0005) -> None:
        self.interval_s = interval_s
        self.max_lag_s = 0.0
        self.samples = 0
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        perf = time.perf_counter
        while True:
            t0 = perf()
            await asyncio.sleep(self.interval_s)
            lag = max(0.0, perf() - t0 - self.interval_s)  # timers may fire a little early
            self.samples += 1
            self.lags.append(lag)
            self.max_lag_s = max(self.max_lag_s, lag)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag-probe")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def percentile(self, q: float) -> float:
        if not self.lags:
            return 0.0
        s = sorted(self.lags)
        return s[min(len(s) - 1, int(q * len(s)))]
