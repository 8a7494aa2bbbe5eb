"""apply_fill's integer fast path against the Decimal ledger it replaces: the same Decimals (and
strings), the same float views, the same errors, for any fill sequence.

The reference below is the Decimal algorithm apply_fill had before the fast path (kept verbatim in
its arithmetic, without the conversion cache), run side by side with a real :class:`Portfolio`;
after every fill the ledger export, the exact amounts and every float view must agree bit for bit.
"""

from __future__ import annotations

import math
from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    FloatOperation,
    Inexact,
    InvalidOperation,
    Overflow,
    getcontext,
    setcontext,
)

import msgspec
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from omnid.clock import SimClock
from omnid.errors import RejectedError
from omnid.model import Fill, Instrument, Position, Side
from omnid.portfolio import COST_QUANTUM, Portfolio, _removed, _short

from tests.conftest import SLOW

T0 = 1_767_225_600 * 10**9

_EXACT = Context(prec=120, rounding=ROUND_HALF_EVEN, traps=[Inexact, InvalidOperation, Overflow, FloatOperation])
_ROUND = Context(prec=60, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, Overflow, FloatOperation])
_ZERO = Decimal(0)


class _RefBook:
    def __init__(self, iid: str, mult: Decimal) -> None:
        self.q = self.cost = self.realised = self.commissions = _ZERO
        self.mult = mult
        self.mult_f = float(mult)
        self.qm = 0.0
        self.last = 0.0
        self.pos = Position(instrument_id=iid)


class _RefLedger:
    """The Decimal apply_fill as it was (the specification the fast path must meet)."""

    def __init__(self, initial: float, mults: dict[str, Decimal]) -> None:
        self.initial = Decimal(repr(float(initial)))
        self.cash = self.initial
        self.realised = self.commissions = _ZERO
        self.cash_f = float(self.cash)
        self.mv = 0.0
        self.peak = self.cash_f
        self.open = 0
        self.mults = mults
        self.books: dict[str, _RefBook] = {}

    def apply(self, fill: Fill) -> None:
        sign = fill.side.sign
        if sign == 0 or not (fill.qty > 0 and math.isfinite(fill.qty)) or not math.isfinite(fill.price):
            raise RejectedError("not a valid fill")
        if not math.isfinite(fill.commission):
            raise RejectedError("commission not finite")
        book = self.books.get(fill.instrument_id)
        if book is None:
            book = self.books[fill.instrument_id] = _RefBook(
                fill.instrument_id, self.mults.get(fill.instrument_id, Decimal(1))
            )
        fq, fp, fc = fill.qty, fill.price, fill.commission
        q, px, fee = (Decimal(repr(float(v))) for v in (fq, fp, fc))
        saved = getcontext()
        setcontext(_EXACT)
        try:
            if sign < 0:
                q = -q
            mult = book.mult
            notional = q * px * mult
            self.cash = cash = self.cash - (notional + fee)
            self.commissions = self.commissions + fee
            book.commissions = comm = book.commissions + fee
            old = book.q
            realised = True
            if not old or old.is_signed() == (sign < 0):
                realised = False
                book.cost = book.cost + notional
                book.q = nq = old + q
                if not old:
                    book.pos.ts_opened = fill.ts_event
                    self.open += 1
                    qf = float(fq) if sign > 0 else -float(fq)
                else:
                    qf = float(nq)
            elif abs(q) < abs(old):
                removed = _ROUND.multiply(book.cost, _ROUND.divide(abs(q), abs(old))).quantize(
                    COST_QUANTUM, context=_ROUND
                )
                pnl = -notional - removed
                book.cost = book.cost - removed
                book.q = nq = old + q
                qf = float(nq)
                book.realised = book.realised + pnl
                self.realised = self.realised + pnl
            else:
                closing = -old
                close_notional = closing * px * mult
                pnl = -close_notional - book.cost
                book.realised = book.realised + pnl
                self.realised = self.realised + pnl
                rest = q - closing
                book.q = rest
                book.cost = notional - close_notional
                if rest:
                    book.pos.ts_opened = fill.ts_event
                    qf = float(rest)
                else:
                    self.open -= 1
                    qf = 0.0
        finally:
            setcontext(saved)
        book.last = fp
        pos = book.pos
        pos.ts_last = fill.ts_event
        book.qm = qm = qf * book.mult_f
        pos.qty = qf
        pos.avg_price = float(book.cost) / qm if qf else 0.0
        if realised:
            pos.realised_pnl = float(book.realised)
        if fc:
            pos.commissions = float(comm)
        pos.last_price = fp
        self.cash_f = cash_f = float(cash)
        self.mv = mv = math.fsum([b.qm * b.last for b in self.books.values()])
        if cash_f + mv > self.peak:
            self.peak = cash_f + mv


def _f(x: float) -> str:
    return repr(float(x))  # repr: -0.0 and 0.0 differ, nan equals nan


def _same(p: Portfolio, ref: _RefLedger) -> None:
    """Every Decimal (as the ledger exports it: strings) and every float view, bit for bit."""
    snap = p.ledger()
    assert snap.cash == str(ref.cash)
    assert snap.realised == str(ref.realised)
    assert snap.commissions == str(ref.commissions)
    assert snap.initial_cash == str(ref.initial)
    assert [lp.instrument_id for lp in snap.positions] == sorted(ref.books)
    for lp in snap.positions:
        b = ref.books[lp.instrument_id]
        assert (lp.qty, lp.cost, lp.realised, lp.commissions, lp.multiplier) == (
            str(b.q), str(b.cost), str(b.realised), str(b.commissions), str(b.mult)
        )
        pos = p.position(lp.instrument_id)
        assert pos is not None
        got = msgspec.structs.asdict(pos)
        want = msgspec.structs.asdict(b.pos)
        assert {k: _f(v) if isinstance(v, float) else v for k, v in got.items()} == {
            k: _f(v) if isinstance(v, float) else v for k, v in want.items()
        }
        q, cost, real = p.exact_position(lp.instrument_id)
        assert (str(q), str(cost), str(real)) == (str(b.q), str(b.cost), str(b.realised))
    ex = p.exact()
    assert (str(ex["cash"]), str(ex["realised"]), str(ex["commissions"])) == (
        str(ref.cash), str(ref.realised), str(ref.commissions)
    )
    assert _f(p.cash()) == _f(ref.cash_f)
    assert _f(p.equity()) == _f(ref.cash_f + ref.mv)
    assert _f(p.peak_equity()) == _f(ref.peak)
    assert _f(p.realised_pnl()) == _f(float(ref.realised))
    assert _f(p.commissions()) == _f(float(ref.commissions))
    assert p.open_position_count() == ref.open


# -------------------------------------------------------------------------------------------------
# Fill sequences

_MULTS = {"A.X": 1.0, "B.X": 50.0, "C.X": 0.01, "D.X": 0.125, "E.X": 7.3}


def _few(units: st.SearchStrategy[int], places: tuple[int, int]) -> st.SearchStrategy[float]:
    return st.builds(lambda u, k: u / 10**k, units, st.integers(*places))


_magnitude = st.builds(
    lambda m, e: m * 10.0**e, st.floats(1.0, 10.0, exclude_max=True), st.integers(-30, 30)
)
_qty = st.one_of(
    _few(st.integers(1, 10**7), (0, 6)),  # lots: few decimals (the cache and the short path)
    st.floats(1e-6, 1e7, allow_nan=False, allow_infinity=False),  # many digits
    _magnitude,  # tiny and huge
)
_price = st.one_of(
    _few(st.integers(1, 10**7), (0, 4)),
    st.floats(1e-4, 1e6, allow_nan=False, allow_infinity=False),
    _magnitude,
    st.sampled_from([0.0, -0.0, -1.5, -(10.0**-3)]),  # a zero price books signed zeros (the Decimal path)
)
_fee = st.one_of(
    st.just(0.0),
    st.just(-0.0),
    _few(st.integers(-10**5, 10**6), (0, 6)),
    st.floats(-1e3, 1e4, allow_nan=False, allow_infinity=False),
    _magnitude,
)
# (instrument, buy, qty, price, fee, how): how 0 = qty as drawn; 1 = close exactly; 2 = a share of
# the position (partial close); 3 = reverse (position + qty)
_step = st.tuples(
    st.sampled_from(sorted(_MULTS)), st.booleans(), _qty, _price, _fee, st.sampled_from([0, 0, 1, 2, 3])
)


def _fill(k: int, iid: str, side: Side, qty: float, price: float, fee: float) -> Fill:
    return Fill(fill_id=f"f{k}", client_order_id=f"o{k}", instrument_id=iid, strategy_id="s", side=side,
                qty=qty, price=price, commission=fee, ts_event=T0 + k)


def _run(steps: list[tuple[str, bool, float, float, float, int]], initial: float = 1_000_000.0) -> None:
    clock = SimClock(T0)
    insts = [Instrument(symbol=iid.split(".")[0], venue="X", multiplier=m) for iid, m in _MULTS.items()]
    p = Portfolio(clock, initial_cash=initial, instruments=insts)
    ref = _RefLedger(initial, {iid: Decimal(repr(m)) for iid, m in _MULTS.items()})
    for k, (iid, buy, drawn, price, fee, how) in enumerate(steps):
        pos = ref.books[iid].pos.qty if iid in ref.books else 0.0
        side = Side.BUY if buy else Side.SELL
        qty = drawn
        if how and pos:
            side = Side.SELL if pos > 0 else Side.BUY
            if how == 1:
                qty = abs(pos)
            elif how == 2:
                qty = abs(pos) * (0.5 if drawn >= 1 else drawn) or drawn
            else:
                qty = abs(pos) + drawn
        f = _fill(k, iid, side, qty, price, fee)
        clock.advance_to(T0 + k)
        err = None
        try:
            ref.apply(f)
        except (ArithmeticError, ValueError) as e:  # Inexact past 120 digits, inf - inf in fsum
            err = type(e)
        if err is None:
            p.apply_fill(f)
        else:
            with pytest.raises(err):
                p.apply_fill(f)
        _same(p, ref)


@settings(max_examples=3000 if SLOW else 300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_step, min_size=1, max_size=40))
@example([("A.X", True, 3.0, 0.1, 0.0, 0), ("A.X", False, 1.0, 0.2, 0.0, 0)])  # a partial close
@example([("B.X", True, 2.5, 101.37, 0.06335, 0), ("B.X", False, 1.0, 101.5, 0.0, 3)])  # reversal
@example([("A.X", True, 1e-300, 1e-300, 1e300, 0)])  # exponents far apart: Decimal traps Inexact
@example([("A.X", True, 1e200, 1e200, 0.0, 0), ("A.X", False, 1.0, 1e200, 0.0, 2)])  # floats overflow
@example([("A.X", True, 1.0, 5.0, 0.0, 0), ("A.X", False, 2.0, -0.0, -0.0, 0)])  # signed zeros
def test_fast_path_books_what_the_decimal_ledger_books(steps: list[tuple[str, bool, float, float, float, int]]) -> None:
    _run(steps)


# Ordinary magnitudes only: nearly every fill stays on the fast path (the mix above sends many to
# the Decimal path on purpose: zero prices, exponents 30 apart, ints past the fast path's bound).
_plain_step = st.tuples(
    st.sampled_from(sorted(_MULTS)),
    st.booleans(),
    st.one_of(_few(st.integers(1, 10**7), (0, 6)), st.floats(1e-3, 1e6)),
    st.one_of(_few(st.integers(1, 10**7), (0, 4)), st.floats(1e-2, 1e5)),
    st.one_of(st.just(0.0), _few(st.integers(0, 10**6), (0, 6)), st.floats(-10.0, 1e3)),
    st.sampled_from([0, 0, 1, 2, 2, 3]),
)


@settings(max_examples=2000 if SLOW else 200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_plain_step, min_size=1, max_size=60))
def test_fast_path_on_ordinary_fills(steps: list[tuple[str, bool, float, float, float, int]]) -> None:
    _run(steps)


@settings(max_examples=200, deadline=None)
@given(st.lists(_step, min_size=1, max_size=15), st.sampled_from([0.0, -0.0, 1e-20, 123.456, 1e15]))
def test_any_initial_cash(steps: list[tuple[str, bool, float, float, float, int]], initial: float) -> None:
    _run(steps, initial)


def test_invalid_fills_raise_and_change_nothing_on_either_path() -> None:
    clock = SimClock(T0)
    p = Portfolio(clock, initial_cash=1000.0)
    p.apply_fill(_fill(0, "A.X", Side.BUY, 2.0, 10.0, 0.5))
    before = msgspec.json.encode(p.ledger())
    for f in (
        _fill(1, "A.X", Side.BUY, 0.0, 10.0, 0.0),
        _fill(2, "A.X", Side.SELL, -1.0, 10.0, 0.0),
        _fill(3, "A.X", Side.BUY, float("nan"), 10.0, 0.0),
        _fill(4, "A.X", Side.BUY, 1.0, float("inf"), 0.0),
        _fill(5, "A.X", Side.BUY, 1.0, 10.0, float("nan")),
        _fill(6, "A.X", Side.NONE, 1.0, 10.0, 0.0),
    ):
        with pytest.raises(RejectedError):
            p.apply_fill(f)
    assert msgspec.json.encode(p.ledger()) == before


def test_a_restored_negative_zero_goes_through_decimals_and_comes_back() -> None:
    """A snapshot holding -0 (which the ints cannot carry) restores exactly, books through the
    Decimal path, and once the -0 is gone the fast path books again, with the same results."""
    clock = SimClock(T0)
    p = Portfolio(clock, initial_cash=0.0)
    p.apply_fill(_fill(0, "A.X", Side.BUY, 1.0, 2.0, 0.0))
    snap = p.ledger()
    snap.positions[0].realised = "-0"
    snap.commissions = "-0.00"
    p.restore(snap)
    assert p.ledger().positions[0].realised == "-0" and p.ledger().commissions == "-0.00"
    ref = _RefLedger(0.0, {})
    ref.apply(_fill(0, "A.X", Side.BUY, 1.0, 2.0, 0.0))
    ref.books["A.X"].realised = Decimal("-0")
    ref.books["A.X"].pos.realised_pnl = -0.0  # restore refreshes the float view
    ref.commissions = Decimal("-0.00")
    for k, f in enumerate(
        [_fill(1, "A.X", Side.BUY, 1.5, 3.0, -0.0), _fill(2, "A.X", Side.SELL, 1.0, 2.5, 0.25),
         _fill(3, "A.X", Side.SELL, 3.0, 2.0, 0.1), _fill(4, "A.X", Side.BUY, 1.0, 2.0, 0.0)]
    ):
        clock.advance_to(T0 + k + 1)
        p.apply_fill(f)
        ref.apply(f)
        _same(p, ref)


# -------------------------------------------------------------------------------------------------
# The two integer kernels on their own


@settings(max_examples=5000 if SLOW else 1000, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
@example(0.1)
@example(100.0)
@example(1e16)
@example(524288.0)
@example(524287.99999999994)
@example(4398046511103.999)
@example(5e-324)
@example(50.002116320000006)
def test_short_reads_repr_as_decimal_does(x: float) -> None:
    sign, digits, exp = Decimal(repr(x)).as_tuple()
    c = int("".join(map(str, digits)))
    assert _short(x) == (-c if sign else c, exp)


@settings(max_examples=5000 if SLOW else 1000, deadline=None)
@given(
    st.integers(-(10**40), 10**40),
    st.integers(1, 10**25),
    st.integers(1, 10**25),
    st.integers(12, 60),
)
@example(10**30 + 5, 1, 3, 12)
@example(-(10**30) - 5, 1, 3, 12)
@example(5, 1, 2, 24)  # half of 5e-24: rounds to 0
def test_removed_rounds_as_the_decimal_steps_do(cv: int, a: int, o: int, g: int) -> None:
    assume(a != o)
    a, o = min(a, o), max(a, o)
    cost = Decimal(f"{cv}E{-g}")
    want = _ROUND.multiply(cost, _ROUND.divide(Decimal(a), Decimal(o))).quantize(COST_QUANTUM, context=_ROUND)
    assert Decimal(f"{_removed(cv, a, o, g)}E-12") == want
