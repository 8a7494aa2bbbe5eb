"""How long RiskGate.check takes per intent (median of several runs), for the cases a backtest sends.

Run: .venv/bin/python bench/risk_gate.py
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from omnid.clock import SimClock
from omnid.model import Fill, Instrument, IntentAction, Order, OrderIntent, OrderStatus, Position, Side
from omnid.ports import NullRecorder
from omnid.risk import RiskConfig, RiskGate

N = 200_000
RUNS = 5


class StaticPortfolio:
    """A portfolio whose answers do not change: the bench measures the gate, not a ledger."""

    def __init__(self, qty: float) -> None:
        self._pos = Position(instrument_id="AAA.SIM", qty=qty, avg_price=100.0, last_price=100.0)

    def equity(self) -> float:
        return 100_000.0

    def cash(self) -> float:
        return 100_000.0 - self._pos.qty * 100.0

    def position(self, instrument_id: str) -> Position | None:
        return self._pos if instrument_id == "AAA.SIM" else None

    def position_qty(self, instrument_id: str) -> float:
        return self._pos.qty if instrument_id == "AAA.SIM" else 0.0

    def open_position_count(self) -> int:
        return 1 if self._pos.qty else 0

    def exposure(self, instrument_id: str) -> float:
        return abs(self.position_qty(instrument_id)) * 100.0

    def gross_exposure(self) -> float:
        return abs(self._pos.qty) * 100.0

    def daily_pnl(self) -> float:
        return -10.0

    def peak_equity(self) -> float:
        return 100_500.0


def gate(cfg: dict[str, object], qty: float) -> RiskGate:
    inst = {"AAA.SIM": Instrument(symbol="AAA", venue="SIM", tick_size=0.01, lot_size=1.0)}
    return RiskGate(msgspec.convert(cfg, RiskConfig), clock=SimClock(1_800_000_000 * 10**9),
                    portfolio=StaticPortfolio(qty), instruments=inst, recorder=NullRecorder())


def timed(fn: Callable[[], object]) -> float:
    samples = []
    for _ in range(RUNS):
        t0 = time.thread_time()  # CPU time: the machine is shared, wall time would count waiting
        for _ in range(N):
            fn()
        samples.append((time.thread_time() - t0) / N * 1e6)
    return statistics.median(samples)


class BookingPortfolio:
    """Positions that follow the fills the bench books (flat price 100): the round trip's gate work
    sees positions open and close as in a replay, without a ledger's cost."""

    def __init__(self) -> None:
        self.qty: dict[str, float] = {}
        self.open = 0

    def book(self, iid: str, signed: float) -> None:
        before = self.qty.get(iid, 0.0)
        after = before + signed
        self.qty[iid] = after
        self.open += (abs(after) > 1e-12) - (abs(before) > 1e-12)

    def equity(self) -> float:
        return 1_000_000.0

    def cash(self) -> float:
        return 1_000_000.0

    def position(self, instrument_id: str) -> Position | None:
        q = self.qty.get(instrument_id)
        return None if q is None else Position(instrument_id=instrument_id, qty=q, last_price=100.0)

    def position_qty(self, instrument_id: str) -> float:
        return self.qty.get(instrument_id, 0.0)

    def open_position_count(self) -> int:
        return self.open

    def exposure(self, instrument_id: str) -> float:
        return abs(self.qty.get(instrument_id, 0.0)) * 100.0

    def gross_exposure(self) -> float:
        return sum(abs(q) for q in self.qty.values()) * 100.0

    def daily_pnl(self) -> float:
        return 0.0

    def peak_equity(self) -> float:
        return 1_000_000.0


def round_trip(*, with_gate: bool = True) -> float:
    """Scenario a's order path through the gate, µs per order: 10 instruments (lot 0.001), fraction
    sizing 10 %, at most 10 positions, duplicate guard on; each step opens one instrument (sized
    entry) and closes the one opened five steps earlier (CLOSE sized to the position), each order
    going check → on_order_open → on_fill → on_order_closed, filled whole at once. ``with_gate=False``
    times the harness alone (the same Orders, Fills and bookings; the approved quantities are taken
    from a first pass through the gate), so the gate's share is the difference."""
    ids = [f"I{i}.SIM" for i in range(10)]
    insts = {iid: Instrument(symbol=iid[:2], venue="SIM", tick_size=0.0, lot_size=0.001) for iid in ids}
    pf = BookingPortfolio()
    cfg = {"sizing": {"mode": "fraction", "fraction_pct": 10.0}, "max_open_positions": 10}
    g = RiskGate(msgspec.convert(cfg, RiskConfig), clock=SimClock(1_800_000_000 * 10**9), portfolio=pf,
                 instruments=insts, recorder=NullRecorder())
    entries = [OrderIntent(strategy_id="m", instrument_id=iid, side=Side.BUY) for iid in ids]
    exits = [OrderIntent(strategy_id="m", instrument_id=iid, side=Side.SELL, action=IntentAction.CLOSE)
             for iid in ids]
    submitted, filled = OrderStatus.SUBMITTED, OrderStatus.FILLED

    approved: dict[tuple[str, IntentAction], OrderIntent] = {}

    def one(intent: OrderIntent, coid: str) -> None:
        if with_gate:
            out = g.check(intent, 100.0)
            assert out.__class__ is OrderIntent, out
            approved[intent.instrument_id, intent.action] = out
        else:
            out = approved[intent.instrument_id, intent.action]
        order = Order(client_order_id=coid, instrument_id=out.instrument_id, strategy_id=out.strategy_id,
                      side=out.side, qty=out.qty, action=out.action, status=submitted)
        if with_gate:
            g.on_order_open(order)
        sign = out.side.sign
        pf.book(out.instrument_id, sign * out.qty)
        order.filled_qty = out.qty
        order.status = filled
        fill = Fill(fill_id=coid, client_order_id=coid, instrument_id=out.instrument_id,
                    strategy_id=out.strategy_id, side=out.side, qty=out.qty, price=100.0)
        if with_gate:
            g.on_fill(fill)
            g.on_order_closed(order)

    for k in range(15):  # a first pass through the gate: every instrument's approved intents
        wg, with_gate = with_gate, True
        one(entries[k % 10], "warm")
        if k >= 5:
            one(exits[(k - 5) % 10], "warm")
        with_gate = wg
    step = [15]

    def two() -> None:
        k = step[0]
        step[0] = k + 1
        one(entries[k % 10], "e")
        one(exits[(k - 5) % 10], "x")

    return timed(two) / 2


def main() -> None:
    sized = OrderIntent(strategy_id="s", instrument_id="AAA.SIM", side=Side.BUY)
    fixed = OrderIntent(strategy_id="s", instrument_id="AAA.SIM", side=Side.BUY, qty=10.0)
    exit_ = OrderIntent(strategy_id="s", instrument_id="AAA.SIM", side=Side.SELL, action=IntentAction.CLOSE)
    all_limits = {
        "max_open_positions": 10, "max_symbol_exposure_pct": 50, "max_gross_exposure_pct": 200,
        "max_daily_loss": 1000, "max_drawdown_pct": 20, "max_orders": 10**9, "price_collar_pct": 5,
        "duplicate_guard": False,
    }
    cases = [
        ("market entry, all_in sized, default limits", gate({"duplicate_guard": False}, 0.0), sized),
        ("market entry, fixed qty, every limit on", gate(all_limits, 0.0), fixed),
        ("market entry, all_in sized, every limit on", gate(all_limits, 0.0), sized),
        ("exit (CLOSE sized to the position)", gate({"duplicate_guard": False}, 50.0), exit_),
    ]
    print(f"RiskGate.check, µs per intent (median of {RUNS} runs × {N:,}):")
    for name, g, intent in cases:
        out = g.check(intent, 100.0)
        assert isinstance(out, OrderIntent), out
        us = timed(lambda g=g, intent=intent: g.check(intent, 100.0))
        print(f"  {name:<48} {us:6.2f} µs")
    total, harness = round_trip(), round_trip(with_gate=False)
    print("Order round trip as in bench/replay.py scenario a (check, open, fill, closed), µs per order:")
    print(f"  {'gate + harness':<48} {total:6.2f} µs")
    print(f"  {'harness alone (Order, Fill, booking)':<48} {harness:6.2f} µs")
    print(f"  {'the gate':<48} {total - harness:6.2f} µs")
    g = gate({"exits": {"trailing_stop_pct": 5.0, "stop_loss_pct": 10.0, "take_profit_pct": 50.0}}, 0.0)
    print("ExitManager.on_price, µs per trade:")
    print(f"  {'no managed position':<48} {timed(lambda: g.exits.on_price('AAA.SIM', 100.0, 0)):6.3f} µs")
    g.exits.on_fill(Fill(fill_id="f", client_order_id="o", instrument_id="AAA.SIM", strategy_id="s",
                         side=Side.BUY, qty=10.0, price=100.0))
    prices = [100.0 + (i % 7) * 0.5 for i in range(N)]  # new highs and pullbacks, never the stop
    it = iter(prices * (RUNS + 1))
    us = timed(lambda: g.exits.on_price("AAA.SIM", next(it), 0))
    assert g.exits.levels("AAA.SIM") is not None
    print(f"  {'managed long: stop, take-profit, trailing':<48} {us:6.3f} µs")


if __name__ == "__main__":
    main()
