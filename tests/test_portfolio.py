"""Portfolio and ledger: hand-computed P&L cases, daily/peak equity, restarts, and a property test
that recomputes the ledger independently in Decimal over many random fills and finds no drift."""

from __future__ import annotations

import itertools
import random
from decimal import Context, Decimal, localcontext

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from omnid.clock import SimClock
from omnid.errors import DataError, RejectedError
from omnid.model import AccountState, Fill, Instrument, Position, Side
from omnid.portfolio import LedgerSnapshot, Portfolio

from tests.conftest import SLOW

DAY = 86_400 * 10**9
T0 = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z

_ids = itertools.count(1)


def fill(iid: str, side: Side, qty: float, price: float, fee: float = 0.0, ts: int = T0) -> Fill:
    n = next(_ids)
    return Fill(
        fill_id=f"f{n}",
        client_order_id=f"o{n}",
        instrument_id=iid,
        strategy_id="s",
        side=side,
        qty=qty,
        price=price,
        commission=fee,
        ts_event=ts,
    )


def make(cash: float = 10_000.0, **kw: object) -> tuple[Portfolio, SimClock]:
    clock = SimClock(T0)
    return Portfolio(clock, initial_cash=cash, **kw), clock  # type: ignore[arg-type]


def test_long_partial_close_then_close() -> None:
    """Buy 10 @ 100, sell 4 @ 110 (+40), sell 6 @ 95 (-30): realised 10, flat."""
    p, _ = make()
    p.apply_fill(fill("A.X", Side.BUY, 10, 100.0, fee=1.0))
    pos = p.position("A.X")
    assert pos is not None and pos.qty == 10 and pos.avg_price == 100.0
    assert p.cash() == 10_000 - 1000 - 1
    p.apply_fill(fill("A.X", Side.SELL, 4, 110.0, fee=1.0))
    assert pos.qty == 6 and pos.avg_price == 100.0
    assert p.realised_pnl() == 40.0
    p.apply_fill(fill("A.X", Side.SELL, 6, 95.0, fee=1.0))
    assert pos.qty == 0 and pos.avg_price == 0.0 and pos.is_flat
    assert p.realised_pnl() == 10.0
    assert p.commissions() == 3.0
    assert p.cash() == 10_000 + 10 - 3
    assert p.equity() == p.cash()
    assert p.open_position_count() == 0


def test_short_cover_and_flip() -> None:
    """Short 5 @ 200, buy 8 @ 190: +50 on the cover, then long 3 @ 190."""
    p, _ = make()
    p.apply_fill(fill("B.X", Side.SELL, 5, 200.0))
    pos = p.position("B.X")
    assert pos is not None and pos.qty == -5 and pos.avg_price == 200.0
    assert p.cash() == 11_000.0
    p.mark("B.X", 210.0)
    assert p.unrealised_pnl("B.X") == -50.0
    assert p.equity() == 9_950.0
    p.apply_fill(fill("B.X", Side.BUY, 8, 190.0))
    assert p.realised_pnl() == 50.0
    assert pos.qty == 3 and pos.avg_price == 190.0
    assert p.cash() == 11_000.0 - 8 * 190.0
    assert p.equity() == 10_050.0
    # and flip back: sell 5 @ 180 → -30 on the long 3, short 2 @ 180
    p.apply_fill(fill("B.X", Side.SELL, 5, 180.0))
    assert p.realised_pnl() == 20.0
    assert pos.qty == -2 and pos.avg_price == 180.0


def test_adding_averages_the_price() -> None:
    """Buy 2 @ 10 then 3 @ 20: avg 16; sell 1 @ 26 realises 10."""
    p, _ = make()
    p.apply_fill(fill("C.X", Side.BUY, 2, 10.0))
    p.apply_fill(fill("C.X", Side.BUY, 3, 20.0))
    assert p.position_qty("C.X") == 5
    pos = p.position("C.X")
    assert pos is not None and pos.avg_price == 16.0
    p.apply_fill(fill("C.X", Side.SELL, 1, 26.0))
    assert p.realised_pnl() == 10.0 and pos.avg_price == 16.0


def test_multiplier_scales_cash_and_pnl() -> None:
    """A future with multiplier 50: 2 contracts from 4000 to 4010 make 1000."""
    clock = SimClock(T0)
    fut = Instrument(symbol="ES", venue="X", multiplier=50.0)
    p = Portfolio(clock, initial_cash=100_000.0, instruments=[fut])
    p.apply_fill(fill("ES.X", Side.BUY, 2, 4000.0))
    assert p.cash() == 100_000 - 2 * 4000 * 50
    assert p.exposure("ES.X") == 400_000.0
    p.mark("ES.X", 4010.0)
    assert p.unrealised_pnl() == 1000.0 and p.equity() == 101_000.0
    assert p.gross_exposure() == 401_000.0
    p.apply_fill(fill("ES.X", Side.SELL, 2, 4010.0))
    assert p.realised_pnl() == 1000.0 and p.cash() == 101_000.0


def test_decimal_exact_where_floats_drift() -> None:
    """Ten buys of 0.1 @ 0.1 then a sale of 1 @ 0.1: exactly flat, exactly the initial cash."""
    p, _ = make(cash=1.0)
    for _ in range(10):
        p.apply_fill(fill("D.X", Side.BUY, 0.1, 0.1))
    assert p.exact()["cash"] == Decimal("0.9")
    p.apply_fill(fill("D.X", Side.SELL, 1.0, 0.1))
    assert p.exact_position("D.X") == (Decimal(0), Decimal(0), Decimal(0))
    assert p.exact()["cash"] == Decimal("1.0")
    assert p.to_minor_units(p.exact()["cash"]) == 100


def test_peak_and_daily_pnl_follow_the_clock() -> None:
    """Peak equity tracks marks; daily P&L restarts at local midnight of the configured zone."""
    clock = SimClock(T0 + 10 * 3600 * 10**9)  # 10:00 UTC
    p = Portfolio(clock, initial_cash=1000.0, timezone="Asia/Kolkata")  # midnight = 18:30 UTC
    p.apply_fill(fill("E.X", Side.BUY, 1, 100.0))
    p.mark("E.X", 150.0)
    assert p.peak_equity() == 1050.0
    p.mark("E.X", 120.0)
    assert p.peak_equity() == 1050.0 and p.daily_pnl() == 20.0
    clock.advance_to(T0 + 18 * 3600 * 10**9 + 31 * 60 * 10**9)  # 18:31 UTC: a new day in Kolkata
    p.mark("E.X", 130.0)
    assert p.daily_pnl() == 10.0
    clock.advance_to(T0 + DAY + 19 * 3600 * 10**9)
    assert p.daily_pnl() == 0.0


def test_bad_fills_are_rejected_and_change_nothing() -> None:
    p, _ = make()
    for bad in (
        fill("F.X", Side.BUY, 0, 1.0),
        fill("F.X", Side.BUY, -1, 1.0),
        fill("F.X", Side.NONE, 1, 1.0),
        fill("F.X", Side.BUY, 1, float("nan")),
        fill("F.X", Side.BUY, 1, 1.0, fee=float("inf")),
    ):
        with pytest.raises(RejectedError) as ei:
            p.apply_fill(bad)
        assert bad.fill_id in str(ei.value)
    assert p.exact()["cash"] == Decimal("10000.0") and p.positions(include_flat=True) == []


def test_bad_multiplier_is_a_data_error() -> None:
    with pytest.raises(DataError, match="multiplier"):
        Portfolio(SimClock(T0), instruments=[Instrument(symbol="Z", venue="X", multiplier=0.0)])


def test_snapshot_and_exact_restore_round_trip() -> None:
    """The ledger survives an encode/decode and a restore exactly."""
    p, clock = make()
    p.apply_fill(fill("G.X", Side.BUY, 3, 33.33, fee=0.07))
    p.apply_fill(fill("G.X", Side.SELL, 1, 34.01, fee=0.07))
    p.apply_fill(fill("H.X", Side.SELL, 2, 7.5))
    p.mark("G.X", 35.0)
    blob = msgspec.json.encode(p.ledger())
    q = Portfolio(clock, initial_cash=0.0)
    q.restore(msgspec.json.decode(blob, type=LedgerSnapshot))
    assert q.exact() == p.exact()
    assert q.exact_position("G.X") == p.exact_position("G.X")
    assert q.equity() == p.equity() and q.peak_equity() == p.peak_equity()
    assert q.open_position_count() == 2
    acct = q.snapshot()
    assert isinstance(acct, AccountState) and acct.cash == p.cash() and acct.equity == p.equity()
    # and the restored books keep booking: close both
    q.apply_fill(fill("G.X", Side.SELL, 2, 35.0))
    q.apply_fill(fill("H.X", Side.BUY, 2, 7.0))
    assert q.open_position_count() == 0


def test_restore_rejects_a_corrupt_snapshot() -> None:
    p, clock = make()
    snap = p.ledger()
    snap.cash = "12,5"
    with pytest.raises(DataError, match="cash"):
        Portfolio(clock).restore(snap)


def test_restore_from_broker_account_and_positions() -> None:
    """First start against an account: cash plus positions at their average prices."""
    p, _ = make(cash=0.0)
    p.restore_account(
        AccountState(account_id="a", currency="USD", cash=500.0, equity=0.0),
        [Position(instrument_id="I.X", qty=4, avg_price=25.0), Position(instrument_id="J.X", qty=0)],
    )
    assert p.open_position_count() == 1
    assert p.equity() == 600.0 and p.initial_cash == 600.0
    p.apply_fill(fill("I.X", Side.SELL, 4, 30.0))
    assert p.realised_pnl() == 20.0 and p.cash() == 620.0


def test_mark_without_position_is_ignored() -> None:
    p, _ = make()
    p.mark("NOPE.X", 5.0)
    assert p.equity() == 10_000.0 and p.position("NOPE.X") is None


# -------------------------------------------------------------------------------------------------
# The property test: an independent Decimal recomputation of the same average-cost ledger.

_REF = Context(prec=200)


class _Ref:
    """A second, deliberately plain implementation: per instrument qty/cost/realised in Decimal."""

    def __init__(self, cash: Decimal, mults: dict[str, Decimal]) -> None:
        self.cash = cash
        self.fees = Decimal(0)
        self.mults = mults
        self.q: dict[str, Decimal] = {}
        self.cost: dict[str, Decimal] = {}
        self.realised: dict[str, Decimal] = {}
        self.flows: dict[str, Decimal] = {}
        self.partials = 0

    def apply(self, iid: str, side: Side, qty: str, price: str, fee: str) -> None:
        with localcontext(_REF):
            self._apply(iid, side, qty, price, fee)

    def _apply(self, iid: str, side: Side, qty: str, price: str, fee: str) -> None:
        m = self.mults.get(iid, Decimal(1))
        dq = Decimal(qty) if side is Side.BUY else -Decimal(qty)
        px, f = Decimal(price), Decimal(fee)
        flow = _REF.multiply(_REF.multiply(dq, px), m)
        self.cash = _REF.subtract(_REF.subtract(self.cash, flow), f)
        self.fees += f
        self.flows[iid] = self.flows.get(iid, Decimal(0)) - flow
        q, c = self.q.get(iid, Decimal(0)), self.cost.get(iid, Decimal(0))
        r = self.realised.get(iid, Decimal(0))
        if q == 0 or (q > 0) == (dq > 0):
            q, c = q + dq, c + flow
        elif abs(dq) < abs(q):
            self.partials += 1
            share = _REF.divide(_REF.multiply(c, abs(dq)), abs(q))
            r += -flow - share
            q, c = q + dq, c - share
        else:
            avg_cost = c  # the whole open cost goes
            close_flow = _REF.multiply(_REF.multiply(-q, px), m)
            r += -close_flow - avg_cost
            q, c = q + dq, flow - close_flow
        self.q[iid], self.cost[iid], self.realised[iid] = q, c, r


def _dec(units: int, places: int) -> str:
    return str(Decimal(units).scaleb(-places))


_MULTS = {"I0.X": Decimal(1), "I1.X": Decimal(50), "I2.X": Decimal("0.01")}


def _check(p: Portfolio, ref: _Ref, n_fills: int) -> None:
    with localcontext(_REF):  # the test's own sums must not round either
        _check_exact(p, ref, n_fills)


def _check_views(p: Portfolio) -> None:
    """Every float view is exactly the float of its exact amount (apply_fill takes shortcuts to
    some of them; they must land on the same bits as converting the Decimal would)."""
    ex = p.exact()
    assert p.cash() == float(ex["cash"])
    assert p.realised_pnl() == float(ex["realised"])
    assert p.commissions() == float(ex["commissions"])
    for lp in p.ledger().positions:
        pos = p.position(lp.instrument_id)
        assert pos is not None
        q, cost, real = Decimal(lp.qty), Decimal(lp.cost), Decimal(lp.realised)
        assert repr(pos.qty) == repr(float(q))  # repr: 0.0 and -0.0 differ
        qm = float(q) * float(Decimal(lp.multiplier))
        assert pos.avg_price == (float(cost) / qm if q else 0.0)
        assert pos.realised_pnl == float(real)
        assert pos.commissions == float(Decimal(lp.commissions))
        assert pos.last_price == lp.last_price


def _check_exact(p: Portfolio, ref: _Ref, n_fills: int) -> None:
    _check_views(p)
    ex = p.exact()
    assert ex["cash"] == ref.cash  # exact, not approximately
    assert ex["commissions"] == ref.fees
    assert ex["cash"] == ex["initial_cash"] + ex["realised"] - ex["commissions"] - ex["open_cost"]
    assert p.to_minor_units(ex["cash"]) == p.to_minor_units(ref.cash)
    total_real = Decimal(0)
    for iid in ref.q:
        q, cost, real = p.exact_position(iid)
        assert q == ref.q[iid]
        # the only rounding: 1e-12 per partial close
        assert abs(real - ref.realised[iid]) <= Decimal("1e-12") * (ref.partials + 1)
        assert abs(cost - ref.cost[iid]) <= Decimal("1e-12") * (ref.partials + 1)
        if q == 0:  # flat: realised is exactly the instrument's cash flows
            assert cost == 0 and real == ref.flows[iid]
        total_real += real
    assert ex["realised"] == total_real
    assert abs(p.cash() - float(ref.cash)) <= 1e-9 * max(1.0, abs(float(ref.cash)))
    # the float views agree with the books: equity change = realised + unrealised - fees
    lhs = p.equity() - p.initial_cash
    rhs = p.realised_pnl() + p.unrealised_pnl() - p.commissions()
    scale = max(1.0, p.gross_exposure(), abs(p.cash()))
    assert abs(lhs - rhs) <= 1e-9 * scale * max(1, n_fills) ** 0.5


def _run_random(seed: int, n: int, price_places: int, qty_places: int, fee_mode: int) -> None:
    rng = random.Random(seed)
    clock = SimClock(T0)
    insts = [
        Instrument(symbol=f"I{i}", venue="X", multiplier=float(m)) for i, m in enumerate(_MULTS.values())
    ]
    p = Portfolio(clock, initial_cash=1_000_000.0, instruments=insts)
    ref = _Ref(Decimal("1000000.0"), dict(_MULTS))
    ids = list(_MULTS)
    for k in range(n):
        iid = ids[rng.randrange(3)]
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        qty = _dec(rng.randint(1, 10 ** (qty_places + 2)), qty_places)
        price = _dec(rng.randint(1, 10 ** (price_places + 4)), price_places)
        if fee_mode == 0:
            fee = "0"
        elif fee_mode == 1:
            fee = _dec(rng.randint(0, 10**4), 4)
        else:
            fee = str(Decimal(repr(float(Decimal(qty) * Decimal(price)) * 0.001)))
        clock.advance_to(T0 + k * 10**9)
        p.apply_fill(fill(iid, side, float(qty), float(price), float(fee), ts=clock.now_ns()))
        ref.apply(iid, side, qty, price, fee)
        if rng.random() < 0.3:
            p.mark(iid, float(price) * (1 + (rng.random() - 0.5) * 0.02))
    _check(p, ref, n)


_BULK = 2_000 if SLOW else 100  # examples
_PER = 500  # fills per example: CI ~50k fills, OMNID_SLOW=1 1M


@settings(max_examples=_BULK, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(seed=690771, price_places=2, qty_places=2, fee_mode=2)  # sums beyond 28 digits
@given(
    seed=st.integers(0, 2**32 - 1),
    price_places=st.integers(0, 4),
    qty_places=st.integers(0, 6),
    fee_mode=st.integers(0, 2),
)
def test_ledger_property_no_drift_bulk(seed: int, price_places: int, qty_places: int, fee_mode: int) -> None:
    """Random fills (long, short, flips, partial closes, three multipliers): no drift at all."""
    _run_random(seed, _PER, price_places, qty_places, fee_mode)


_fill_st = st.tuples(
    st.integers(0, 2),
    st.booleans(),
    st.integers(1, 10**6),
    st.integers(0, 5),
    st.integers(1, 10**7),
    st.integers(0, 4),
    st.integers(0, 1000),
)


@settings(max_examples=1000 if SLOW else 150, deadline=None)
@given(st.lists(_fill_st, min_size=1, max_size=60))
def test_ledger_property_no_drift_shrinkable(fills: list[tuple[int, bool, int, int, int, int, int]]) -> None:
    """The same check on hypothesis-drawn fill lists, so a failure shrinks to a minimal case."""
    clock = SimClock(T0)
    insts = [
        Instrument(symbol=f"I{i}", venue="X", multiplier=float(m)) for i, m in enumerate(_MULTS.values())
    ]
    p = Portfolio(clock, initial_cash=0.0, instruments=insts)
    ref = _Ref(Decimal("0.0"), dict(_MULTS))
    ids = list(_MULTS)
    for i, buy, qu, qp, pu, pp, fu in fills:
        side = Side.BUY if buy else Side.SELL
        qty, price, fee = _dec(qu, qp), _dec(pu, pp), _dec(fu, 2)
        p.apply_fill(fill(ids[i], side, float(qty), float(price), float(fee)))
        ref.apply(ids[i], side, qty, price, fee)
        _check_views(p)
    _check(p, ref, len(fills))


def test_non_finite_marks_are_ignored() -> None:
    p, _ = make()
    p.apply_fill(fill("K.X", Side.BUY, 1, 10.0))
    p.mark("K.X", float("nan"))
    p.mark("K.X", float("inf"))
    assert p.equity() == 10_000.0
    p.mark("K.X", 12.0)
    assert p.equity() == 10_002.0


def test_positions_by_id_is_one_live_index_across_restore() -> None:
    """Hot readers hold ``positions_by_id`` once: it must stay the same dict, holding each book's
    live Position, through new books and a restore."""
    pf, _ = make()
    index = pf.positions_by_id
    assert index == {}
    pf.apply_fill(fill("A.X", Side.BUY, 2.0, 10.0))
    assert index["A.X"] is pf.position("A.X") and index["A.X"].qty == 2.0
    snap = pf.ledger()
    pf.apply_fill(fill("B.X", Side.BUY, 1.0, 5.0))
    assert set(index) == {"A.X", "B.X"}
    pf.restore(snap)
    assert pf.positions_by_id is index and set(index) == {"A.X"}
    assert index["A.X"] is pf.position("A.X") and index["A.X"].qty == 2.0
    pf.apply_fill(fill("A.X", Side.SELL, 2.0, 11.0))
    assert index["A.X"].qty == 0.0
