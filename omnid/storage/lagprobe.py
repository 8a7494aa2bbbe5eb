"""Measures how long the event loop is held: a task asks to wake every ``interval`` and records by
how much each wake-up was late. The worst lateness is the longest stall anything caused.

On a busy machine part of a stall is the OS running another process instead of this one, which no
code in the loop can prevent. So each sample also records the loop thread's own CPU time over the
same span: ``min(lateness, cpu time)`` is the part of the stall that code on the loop spent
running (``max_cpu_lag_s``), preemption excluded.

uvloop keeps timers in whole milliseconds: a sleep under 1 ms fires at once, so a shorter interval
makes the probe spin the loop thread and subtracts an interval that was never waited. So an
interval is at least 1 ms, and then a stall reads up to 1 ms short or (for the time spent running)
long. ``interval_s=0`` instead wakes on every loop turn: each sample is then exactly one turn
(precise), but the loop thread never idles, which takes CPU from whatever else is measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import time


class LoopLagProbe:
    def __init__(self, interval_s: float = 0.001) -> None:
        self.interval_s = max(0.001, interval_s) if interval_s > 0 else 0.0
        self.max_lag_s = 0.0
        self.max_cpu_lag_s = 0.0
        self.samples = 0
        self.lags: list[float] = []
        self.cpu_lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        perf, cpu = time.perf_counter, time.thread_time
        while True:
            t0, c0 = perf(), cpu()
            await asyncio.sleep(self.interval_s)
            lag = max(0.0, perf() - t0 - self.interval_s)  # timers may fire a little early
            cpu_lag = min(lag, cpu() - c0)
            self.samples += 1
            self.lags.append(lag)
            self.cpu_lags.append(cpu_lag)
            self.max_lag_s = max(self.max_lag_s, lag)
            self.max_cpu_lag_s = max(self.max_cpu_lag_s, cpu_lag)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag-probe")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def percentile(self, q: float, *, cpu: bool = False) -> float:
        data = self.cpu_lags if cpu else self.lags
        if not data:
            return 0.0
        s = sorted(data)
        return s[min(len(s) - 1, int(q * len(s)))]
