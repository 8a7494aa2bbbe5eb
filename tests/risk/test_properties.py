"""Property tests: no sequence of approved intents breaches max positions, the exposure caps or the
daily loss halt, whatever mix of entries, exits, partial fills and cancels the engine reports.

Short by default; OMNID_SLOW=1 runs many more examples.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omnid.clock import SimClock
from omnid.model import IntentAction, Order, OrderIntent, OrderStatus, Side
from omnid.ports import ListRecorder
from omnid.risk import RiskConfig, RiskGate

from tests.conftest import SLOW
from tests.risk.conftest import INSTRUMENTS
from tests.risk.fakes import FakePortfolio, fill_for, order_for

EXAMPLES = 2000 if SLOW else 150
SYMBOLS = ["AAA.SIM", "BBB.SIM", "CCC.SIM", "BTC.SIM"]
PRICES = {"AAA.SIM": 100.0, "BBB.SIM": 37.5, "CCC.SIM": 5.25, "BTC.SIM": 2500.0}

MAX_POS = 3
SYMBOL_CAP = 1_500.0
GROSS_CAP = 2_500.0

intent_op = st.tuples(
    st.just("intent"),
    st.sampled_from(SYMBOLS),
    st.sampled_from([Side.BUY, Side.SELL]),
    st.sampled_from([0.0, 0.5, 1.0, 3.0, 7.0, 15.0, 40.0]),
    st.sampled_from([IntentAction.OPEN, IntentAction.OPEN, IntentAction.CLOSE]),
    st.sampled_from(["s1", "s2"]),
)
engine_op = st.tuples(
    st.sampled_from(["fill", "partial", "cancel"]),
    st.integers(0, 5),
)
ops = st.lists(st.one_of(intent_op, intent_op, engine_op), min_size=10, max_size=80)


@dataclass
class World:
    gate: RiskGate
    pf: FakePortfolio
    clock: SimClock
    open_orders: list[Order] = field(default_factory=list)

    def submit(self, out: OrderIntent) -> None:
        order = order_for(out)
        self.gate.on_order_open(order)
        order.transition(OrderStatus.SUBMITTED, self.clock.now_ns())
        self.open_orders.append(order)

    def fill(self, idx: int, fraction: float) -> None:
        if not self.open_orders:
            return
        order = self.open_orders[idx % len(self.open_orders)]
        lot = INSTRUMENTS[order.instrument_id].lot_size
        qty = order.leaves_qty if fraction >= 1 else max(round(order.leaves_qty * fraction / lot) * lot, lot)
        qty = min(qty, order.leaves_qty)
        f = fill_for(order, PRICES[order.instrument_id], qty)
        self.pf.apply(f)
        self.gate.on_fill(f)
        order.apply_fill(qty, f.price, self.clock.now_ns())
        if not order.is_open:
            self.open_orders.remove(order)
            self.gate.on_order_closed(order)

    def cancel(self, idx: int) -> None:
        if not self.open_orders:
            return
        order = self.open_orders.pop(idx % len(self.open_orders))
        order.transition(OrderStatus.CANCELLED, self.clock.now_ns())
        self.gate.on_order_closed(order)

    def worst_positions(self) -> dict[str, tuple[float, float]]:
        """Each instrument's position if all buys in flight fill / if all sells do."""
        out = {}
        for iid in SYMBOLS:
            pos = self.pf.position_qty(iid)
            buys = sum(o.leaves_qty for o in self.open_orders if o.instrument_id == iid and o.side is Side.BUY)
            sells = sum(o.leaves_qty for o in self.open_orders if o.instrument_id == iid and o.side is Side.SELL)
            out[iid] = (pos + buys, pos - sells)
        return out


def _world(**cfg: object) -> World:
    config = msgspec.convert(cfg, RiskConfig)
    clock = SimClock(1_800_000_000 * 10**9)
    pf = FakePortfolio(10_000.0, INSTRUMENTS)
    gate = RiskGate(config, clock=clock, portfolio=pf, instruments=INSTRUMENTS, recorder=ListRecorder())
    return World(gate, pf, clock)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops, mode=st.sampled_from(["fixed", "all_in", "fraction"]), dup=st.booleans())
def test_no_approved_sequence_breaches_positions_or_exposure(
    ops: list[tuple[object, ...]], mode: str, dup: bool
) -> None:
    w = _world(
        sizing={"mode": mode, "fixed_qty": 4.0, "fraction_pct": 12.0},
        max_open_positions=MAX_POS,
        max_symbol_exposure=SYMBOL_CAP,
        max_gross_exposure=GROSS_CAP,
        duplicate_guard=dup,
    )
    for op in ops:
        if op[0] == "intent":
            _, iid, side, qty, action, strat = op
            assert isinstance(iid, str) and isinstance(side, Side) and isinstance(qty, float)
            assert isinstance(action, IntentAction) and isinstance(strat, str)
            intent = OrderIntent(strategy_id=strat, instrument_id=iid, side=side, qty=qty, action=action)
            worst_before = w.worst_positions()
            out = w.gate.check(intent, PRICES[iid])
            if isinstance(out, OrderIntent):
                assert out.qty > 0
                if action is IntentAction.CLOSE:
                    # An exit never flips the position, even if every close in flight fills.
                    long_or_short = worst_before[iid][1] if side is Side.SELL else worst_before[iid][0]
                    assert out.qty <= abs(long_or_short) + 1e-9
                    assert (long_or_short > 0) == (side is Side.SELL)
                w.submit(out)
        elif op[0] == "cancel":
            w.cancel(int(op[1]))  # type: ignore[call-overload]
        else:
            w.fill(int(op[1]), 1.0 if op[0] == "fill" else 0.5)  # type: ignore[call-overload]
        # Whatever the in-flight orders do, no cap can be breached by opens the gate approved.
        worst = w.worst_positions()
        might_open = sum(
            1 for iid in SYMBOLS if w.pf.position_qty(iid) != 0 or abs(worst[iid][0]) > 0 or abs(worst[iid][1]) > 0
        )
        assert w.pf.open_position_count() <= MAX_POS
        assert might_open <= MAX_POS
        gross = 0.0
        for iid in SYMBOLS:
            expo = max(abs(worst[iid][0]), abs(worst[iid][1])) * PRICES[iid]
            assert expo <= SYMBOL_CAP * (1 + 1e-9), (iid, worst[iid])
            gross += expo
        assert gross <= GROSS_CAP * (1 + 1e-9)


LOSS = 60.0
price_op = st.tuples(st.just("move"), st.sampled_from(SYMBOLS), st.floats(-0.08, 0.08))
loss_ops = st.lists(
    st.one_of(intent_op, price_op, price_op, st.tuples(st.just("day"))), min_size=10, max_size=80
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=loss_ops)
def test_no_entry_is_approved_past_the_daily_loss_limit(ops: list[tuple[object, ...]]) -> None:
    w = _world(sizing={"mode": "fixed", "fixed_qty": 10.0}, max_daily_loss=LOSS, duplicate_guard=False)
    prices = dict(PRICES)
    halted_today = False
    for op in ops:
        if op[0] == "move":
            iid, change = op[1], op[2]
            assert isinstance(iid, str) and isinstance(change, float)
            prices[iid] = round(prices[iid] * (1 + change), 2)
            w.pf.mark(iid, prices[iid])
        elif op[0] == "day":
            w.clock.advance_to(w.clock.now_ns() + 86_400 * 10**9)
            w.pf.start_day()
            halted_today = False
        else:
            _, iid, side, qty, action, strat = op
            assert isinstance(iid, str) and isinstance(side, Side) and isinstance(qty, float)
            assert isinstance(action, IntentAction) and isinstance(strat, str)
            loss = -w.pf.daily_pnl()
            out = w.gate.check(
                OrderIntent(strategy_id=strat, instrument_id=iid, side=side, qty=qty, action=action), prices[iid]
            )
            if loss > LOSS + 1e-6 and action is IntentAction.OPEN:
                halted_today = True  # the gate evaluates the limits on entries (and on fills, below)
            if isinstance(out, OrderIntent):
                if action is IntentAction.OPEN:
                    assert not halted_today, f"entry approved with daily loss {loss} over the {LOSS} limit"
                order = order_for(out)
                w.gate.on_order_open(order)
                order.transition(OrderStatus.SUBMITTED, 0)
                f = fill_for(order, prices[iid])
                w.pf.apply(f)
                w.gate.on_fill(f)
                order.apply_fill(f.qty, f.price, 0)
                w.gate.on_order_closed(order)
                if -w.pf.daily_pnl() > LOSS + 1e-6:
                    halted_today = True
            elif action is IntentAction.CLOSE:
                assert out.rule in ("close_position", "rounding", "min_qty", "min_notional"), out
        assert w.gate.halted == halted_today
