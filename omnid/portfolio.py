"""Positions, cash and P&L: the ledger every fill lands in.

Two layers, because fills are rare and marks are not:

- The **ledger** is exact. At each fill the quantity, price, multiplier and commission are read as
  the shortest decimals that round-trip their floats (``0.1`` is ``0.1``) and booked with
  :class:`~decimal.Decimal` arithmetic in a context that *traps* inexact results, so cash, open
  cost and realised P&L can never drift: ``cash == initial + realised - commissions - open cost``
  holds exactly after every fill, and a position that returns to flat has realised exactly the sum
  of its cash flows. The one deliberate rounding is the share of open cost a partial close removes
  (average-cost accounting divides); it is rounded to 1e-12 of the currency and the identity above
  still holds because realised P&L is booked as the difference. (:meth:`Portfolio.apply_fill`
  does this arithmetic on integers that hold the same values and exponents, and builds the
  Decimals only when they are read; see the integer section below.)
- The **marks** are floats. :meth:`Portfolio.mark` is the hot path (every tick): a dict lookup, a
  multiply-add on a running market value and a peak check. Fills recompute the running value from
  scratch, so float error never accumulates across fills.

Accounting is cash-based, the same for every instrument: a buy pays ``qty * price * multiplier``
and a short sale receives it; equity is cash plus the marked value of every position. Realised
P&L is gross (price only); commissions are kept apart, so
``equity - initial_cash == realised + unrealised - commissions`` (plus deposits via
:meth:`Portfolio.deposit`). Everything is in one account currency; commissions are assumed to be
charged in it.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
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

from omnid.clock import Clock, next_local_time
from omnid.errors import DataError, RejectedError
from omnid.model import AccountState, Fill, Instrument, Position, Side

#: Exact arithmetic: any operation that would round raises ``Inexact`` instead.
_EXACT = Context(
    prec=120, rounding=ROUND_HALF_EVEN, traps=[Inexact, InvalidOperation, Overflow, FloatOperation]
)
#: The one rounding context, for the cost share a partial close removes.
_ROUND = Context(prec=60, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, Overflow, FloatOperation])
#: Resolution of the removed cost share (far below any currency's minor unit).
COST_QUANTUM = Decimal("1E-12")
_ZERO = Decimal(0)
_MIDNIGHT = dt.time(0)


def to_decimal(x: float) -> Decimal:
    """The shortest decimal that round-trips ``x``: what a venue meant when it sent ``0.1``."""
    return Decimal(repr(float(x)))


# -------------------------------------------------------------------------------------------------
# The exact amounts as integers. A Decimal is a coefficient and an exponent; apply_fill keeps each
# amount as an int at one scale per portfolio (value = v * 10**-g) plus the exponent its Decimal
# has, and does Decimal's exact arithmetic on them: a sum of values is a sum of ints, its exponent
# the smaller one; a product multiplies coefficients and adds exponents. The ledger so holds the
# same values and exponents, hence the same Decimals and strings, as Decimal arithmetic in
# ``_EXACT`` would, without the float -> text -> Decimal and Decimal -> text -> float conversions
# and the context switches. Float views are ``v / 10**g``: int true division is correctly rounded,
# as is ``float(Decimal)``. What this does not model goes to the Decimal code, which books it
# exactly as before: a sign of zero (Decimal has -0), an int past the exact context's 120 digits
# (where Decimal might round or trap), an exponent finer than the scale (the scale then grows).

#: 10**i, for scaling (floats' shortest decimals have exponents in -324..292).
_P10: list[int] = [10**i for i in range(1300)]
#: Ints at or past this may have more digits than ``_EXACT.prec`` (a coefficient is at most its
#: scaled value): Decimal might round there.
_LIM = 10**120
#: The fast path's bound on every int it computes, as a bit length: OR-ing bit lengths tests them
#: all at once, and 2**256 (~1e77) is well inside ``_LIM``.
_BITS = 256
#: Exponents outside this are left to Decimal (they cannot come from floats).
_EXP_MAX = 800
#: The coarsest scale (1e-12, the resolution of the cost a partial close removes) and the finest
#: (amounts with finer exponents stay Decimals).
_G_MIN = 12
_G_MAX = 400
#: Sizes and prices as (coefficient, exponent) by float value (they repeat; commissions do not).
#: 0.0 and -0.0 share an entry, (0, -1) both; the fast path never books a zero price.
_SHORT: dict[float, tuple[int, int]] = {}
_SHORT_MAX = 8192


class _Slow(Exception):
    """The fast path met a case it does not model; the Decimal code books the fill instead."""


#: Trailing decimal zeros of m, by gcd(m, 10**10) (a 2**a * 5**b: min(a, b) zeros).
_TZ10 = {math.gcd(10**10, 2**a * 5**b): min(a, b) for a in range(11) for b in range(11)}
_TZ3 = {math.gcd(10**3, 2**a * 5**b): min(a, b) for a in range(4) for b in range(4)}


def _short(x: float) -> tuple[int, int]:
    """``Decimal(repr(x))`` as (coefficient, exponent), trailing zeros and all: ``100.0`` is
    (1000, -1), ``1e+16`` is (1, 16), ``1.5e-07`` is (15, -8).

    repr (~7k instructions) is the expensive part, so a float with few decimals skips it: where
    the float spacing at x is below 10**-k, at most one k-decimal number rounds to x, and if
    ``m / 10**k == x`` (int division is correctly rounded), ``m * 10**-k`` is that number, so it is
    the shortest decimal of x, the value repr prints. Below 1e16 repr's text has exactly the
    decimals that number needs (at least one, ``.0`` for an integer), so its exponent follows.
    """
    x = float(x)
    if -524288.0 < x < 524288.0:  # |x| < 2**19: spacing <= 2**-34 < 1e-10
        m = round(x * 1e10)
        if m / 10000000000 == x:
            z = _TZ10[math.gcd(m, 10000000000)]
            return (m // 1000000000, -1) if z == 10 else (m // _P10[z], z - 10)
    elif -4398046511104.0 < x < 4398046511104.0:  # |x| < 2**42: spacing <= 2**-11 < 1e-3
        m = round(x * 1e3)
        if m / 1000 == x:
            z = _TZ3[math.gcd(m, 1000)]
            return (m // 100, -1) if z == 3 else (m // _P10[z], z - 3)
    s = repr(x)
    if "e" in s:
        mant, _, ex = s.partition("e")
        i, _, f = mant.partition(".")
        return int(i + f), int(ex) - len(f)
    return int(s.replace(".", "")), s.find(".") + 1 - len(s)


def _split(d: Decimal) -> tuple[int, int] | None:
    """A Decimal as (coefficient, exponent), or None if the fast path must not carry it: negative
    zero, more digits than the exact context keeps, not finite, an exponent no float gives."""
    sign, digits, exp = d.as_tuple()
    if not isinstance(exp, int) or not -_EXP_MAX <= exp <= _EXP_MAX:
        return None
    c = int("".join(map(str, digits)))
    if sign:
        if not c:
            return None
        c = -c
    if not -_LIM < c < _LIM:
        return None
    return c, exp


def _join(c: int, e: int) -> Decimal:
    """The Decimal with coefficient ``c`` and exponent ``e`` (the text constructor is exact)."""
    return Decimal(f"{c}E{e}")


def _exp(d: Decimal) -> int:
    """A finite Decimal's exponent (0 for what has none, which _to_scaled refuses anyway)."""
    e = d.as_tuple().exponent
    return e if isinstance(e, int) else 0


def _to_scaled(d: Decimal, g: int) -> tuple[int, int] | None:
    """A Decimal as (value at scale ``g``, exponent), or None if the fast path must not carry it
    (see :func:`_split`; also an exponent finer than the scale, or a value whose scaled int has
    more digits than the exact context keeps)."""
    p = _split(d)
    if p is None or p[1] < -g:
        return None
    v = p[0] * _P10[g + p[1]]
    if not -_LIM < v < _LIM:
        return None
    return v, p[1]


def _ilog10(n: int) -> int:
    """floor(log10(n)) for n > 0 (1233/4096 is just under log10(2): at most one short)."""
    t = ((n.bit_length() - 1) * 1233) >> 12
    return t + 1 if n >= _P10[t + 1] else t


def _rdiv(n: int, d: int) -> int:
    """n / d rounded half-even, for n >= 0 and d > 0."""
    q, r = divmod(n, d)
    r += r
    if r > d or (r == d and q & 1):
        q += 1
    return q


def _removed(cv: int, a: int, o: int, g: int) -> int:
    """The open cost a partial close removes, in ints: the coefficient, at exponent -12, of
    ``_ROUND.multiply(cost, _ROUND.divide(a, o)).quantize(COST_QUANTUM, context=_ROUND)`` for the
    open cost ``cv * 10**-g`` and the closed and held quantities at one scale, 0 < a < o.

    Each Decimal step rounds the exact value to 60 significant digits half-even (the quotient, then
    the product) and the quantize rounds half-even to 1e-12; a rounding depends on the value only,
    so the same steps on integers give the same value. Raises _Slow where quantize would signal
    InvalidOperation (more than 60 digits).
    """
    if not cv:
        return 0
    t = _ilog10(a) - _ilog10(o)  # <= 0 since a < o; the quotient is >= 10**t or >= 10**(t-1)
    if a * _P10[-t] < o:
        t -= 1
    r = _rdiv(a * _P10[59 - t], o)  # the quotient to 60 digits, at exponent t - 59
    p = (cv if cv > 0 else -cv) * r
    e = t - 59 - g
    drop = _ilog10(p) - 59
    if drop > 0:  # the product to 60 digits
        p = _rdiv(p, _P10[drop])
        e += drop
    m = p * _P10[e + 12] if e >= -12 else _rdiv(p, _P10[-12 - e])
    if m >= _P10[60]:
        raise _Slow
    return m if cv > 0 else -m


class LedgerPosition(msgspec.Struct, kw_only=True):
    """One position's exact state, decimals as strings (for the journal and restarts)."""

    instrument_id: str
    qty: str
    cost: str
    realised: str
    commissions: str
    multiplier: str = "1"
    last_price: float = 0.0
    ts_opened: int = 0
    ts_last: int = 0


class LedgerSnapshot(msgspec.Struct, kw_only=True):
    """The whole ledger, exactly: what :meth:`Portfolio.restore` needs to carry on after a restart."""

    account_id: str
    currency: str
    initial_cash: str
    cash: str
    realised: str
    commissions: str
    peak_equity: float
    day_start_equity: float
    positions: list[LedgerPosition] = msgspec.field(default_factory=list)
    ts_event: int = 0


class _Book:
    """One instrument's exact ledger plus its float view (the public :class:`Position`).

    The four exact amounts are ints at the portfolio's scale ``g`` (value = ``v * 10**-g``) with the
    exponent their Decimal has: ``qv, qe`` quantity, ``cv, ce`` open cost, ``rv, re`` realised,
    ``kv, ke`` commissions. The Decimal properties build them on demand. A book holding an amount
    the ints do not carry (see :func:`_to_scaled`) keeps the four as Decimals in ``dec`` instead,
    and the Decimal code books it (``fast`` is False).
    """

    __slots__ = (
        "ce",
        "cv",
        "dec",
        "fast",
        "g",
        "ke",
        "kv",
        "last",
        "mlc",
        "mle",
        "mult",
        "mult_f",
        "pos",
        "qe",
        "qm",
        "qv",
        "re",
        "rv",
    )

    def __init__(self, instrument_id: str, mult: Decimal, g: int) -> None:
        self.g = g
        self.qv = self.cv = self.rv = self.kv = 0  # signed quantity, signed open cost, realised, fees
        self.qe = self.ce = self.re = self.ke = 0  # ... each Decimal(0) to start: exponent 0
        self.dec: list[Decimal] | None = None
        self.mult = mult
        m = _split(mult)
        self.mlc, self.mle = m if m is not None else (0, 0)
        self.fast = bool(self.mlc)  # a zero multiplier makes signed zeros: Decimal books those
        self.mult_f = float(mult)
        self.qm = 0.0  # float qty * multiplier, for marks
        self.last = 0.0
        self.pos = Position(instrument_id=instrument_id)

    def _get(self, i: int) -> Decimal:
        dec = self.dec
        if dec is not None:
            return dec[i]
        g = self.g
        if i == 0:
            return _join(self.qv // _P10[g + self.qe], self.qe)
        if i == 1:
            return _join(self.cv // _P10[g + self.ce], self.ce)
        if i == 2:
            return _join(self.rv // _P10[g + self.re], self.re)
        return _join(self.kv // _P10[g + self.ke], self.ke)

    def _set(self, i: int, d: Decimal) -> None:
        vals = [self._get(j) for j in range(4)]
        vals[i] = d
        self._load(vals)

    def _load(self, vals: list[Decimal]) -> None:
        """Hold these four Decimals as ints at scale ``g`` if they fit, else as Decimals."""
        g = self.g
        p0, p1, p2, p3 = (_to_scaled(v, g) for v in vals)
        if p0 is None or p1 is None or p2 is None or p3 is None:
            self.dec = vals
            self.fast = False
            return
        (self.qv, self.qe), (self.cv, self.ce), (self.rv, self.re), (self.kv, self.ke) = p0, p1, p2, p3
        self.dec = None
        self.fast = bool(self.mlc)

    def _rescale(self, g: int) -> None:
        """Move the ints to a finer scale ``g`` (and retry Decimals held for want of one)."""
        if self.dec is None:
            f = _P10[g - self.g]
            self.qv *= f
            self.cv *= f
            self.rv *= f
            self.kv *= f
            self.g = g
        else:
            self.g = g
            self._load(self.dec)

    def min_exp(self) -> int:
        """The smallest exponent among the four amounts (what scale they need)."""
        if self.dec is None:
            return min(self.qe, self.ce, self.re, self.ke)
        return min(_exp(d) for d in self.dec)

    @property
    def q(self) -> Decimal:
        """Signed exact quantity."""
        return self._get(0)

    @q.setter
    def q(self, d: Decimal) -> None:
        self._set(0, d)

    @property
    def cost(self) -> Decimal:
        """Signed exact open cost (qty * avg * multiplier)."""
        return self._get(1)

    @cost.setter
    def cost(self, d: Decimal) -> None:
        self._set(1, d)

    @property
    def realised(self) -> Decimal:
        return self._get(2)

    @realised.setter
    def realised(self, d: Decimal) -> None:
        self._set(2, d)

    @property
    def commissions(self) -> Decimal:
        return self._get(3)

    @commissions.setter
    def commissions(self, d: Decimal) -> None:
        self._set(3, d)

    def is_open(self) -> bool:
        """Quantity is not zero (without building the Decimal)."""
        return bool(self.qv) if self.dec is None else self.dec[0] != 0

    def refresh(self, realised: bool = True) -> None:
        """Bring the float view in line with the exact ledger (after a fill or a restore).

        ``realised=False`` when the fill did not change realised P&L: ``float(Decimal)`` goes
        through text (~0.2-0.5 µs each), so the unchanged value is not converted again.
        """
        qf = float(self.q)
        self.qm = qf * self.mult_f
        pos = self.pos
        pos.qty = qf
        pos.avg_price = float(self.cost) / self.qm if qf else 0.0
        if realised:
            pos.realised_pnl = float(self.realised)
        pos.commissions = float(self.commissions)
        pos.last_price = self.last

class Portfolio:
    """Implements :class:`omnid.ports.PortfolioView`; the order manager feeds it fills, the engine
    marks it on every price.

    ``timezone`` sets the daily boundary for :meth:`daily_pnl` (local midnight there);
    ``minor_unit`` is the number of decimals of the currency's smallest unit (2 for USD and INR,
    0 for JPY), used by :meth:`to_minor_units`. Instruments give multipliers; an instrument the
    portfolio was not told about has multiplier 1.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        initial_cash: float = 0.0,
        currency: str = "USD",
        account_id: str = "default",
        timezone: str = "UTC",
        minor_unit: int = 2,
        instruments: Iterable[Instrument] = (),
    ) -> None:
        if not math.isfinite(initial_cash):
            raise DataError(f"initial cash must be a finite number, got {initial_cash!r}")
        self._clock = clock
        self._now_ns = clock.now_ns  # bound once: mark() reads the clock on every tick it moves equity
        self.currency = currency
        self.account_id = account_id
        self.timezone = timezone
        self.minor_unit = minor_unit
        self._quantum = Decimal(1).scaleb(-minor_unit)
        self._mults: dict[str, Decimal] = {}
        for inst in instruments:
            self.register(inst)
        self._books: dict[str, _Book] = {}
        #: Every book's live :class:`Position` by instrument id, for hot readers (a strategy's
        #: per-tick hook reads ``.qty`` without a method call). Read it, never change it; the same
        #: dict object for the portfolio's life (a restore refills it).
        self.positions_by_id: dict[str, Position] = {}
        self._initial = to_decimal(initial_cash)
        # Cash, realised P&L and commissions as (coefficient, exponent) ints; the properties below
        # give them as Decimals (``_tdec`` holds the Decimals instead when the ints cannot).
        self._g = _G_MIN  # the scale of every int amount: value = v * 10**-g
        self._tdec: list[Decimal] | None = None
        self._cash_v = self._cash_e = self._real_v = self._real_e = self._comm_v = self._comm_e = 0
        self._cash = self._initial
        self._realised = _ZERO
        self._commissions = _ZERO
        self._cash_f = float(self._cash)
        self._mv = 0.0
        self._open = 0
        self._peak = self._cash_f
        self._day_start = self._cash_f
        self._day_end = next_local_time(clock.now_ns(), _MIDNIGHT, timezone)

    # ---------------------------------------------------------------------------------------------
    # The account's exact totals, as Decimals (apply_fill's fast path uses the ints directly)

    def _total(self, i: int) -> Decimal:
        tdec = self._tdec
        if tdec is not None:
            return tdec[i]
        g = self._g
        if i == 0:
            return _join(self._cash_v // _P10[g + self._cash_e], self._cash_e)
        if i == 1:
            return _join(self._real_v // _P10[g + self._real_e], self._real_e)
        return _join(self._comm_v // _P10[g + self._comm_e], self._comm_e)

    def _set_total(self, i: int, d: Decimal) -> None:
        vals = [self._total(j) for j in range(3)]
        vals[i] = d
        self._load_totals(vals)

    def _load_totals(self, vals: list[Decimal]) -> None:
        g = self._g
        p0, p1, p2 = (_to_scaled(v, g) for v in vals)
        if p0 is None or p1 is None or p2 is None:
            self._tdec = vals
            return
        (self._cash_v, self._cash_e), (self._real_v, self._real_e), (self._comm_v, self._comm_e) = p0, p1, p2
        self._tdec = None

    def _reload(self) -> None:
        """After the Decimal code booked something: move the scale to the finest exponent now in
        the ledger (within _G_MAX), so the amounts it left as Decimals go back to ints."""
        books = self._books.values()
        tdec = self._tdec
        if tdec is None and all(b.dec is None for b in books):
            return
        need = -min(
            min(_exp(d) for d in tdec) if tdec is not None else 0, *(b.min_exp() for b in books)
        )
        g = min(max(self._g, need), _G_MAX)
        if g > self._g:
            f = _P10[g - self._g]
            if tdec is None:
                self._cash_v *= f
                self._real_v *= f
                self._comm_v *= f
            self._g = g
            for b in books:
                b._rescale(g)
        if tdec is not None:
            self._load_totals(tdec)
        for b in books:
            if b.dec is not None:
                b._load(b.dec)

    @property
    def _cash(self) -> Decimal:
        return self._total(0)

    @_cash.setter
    def _cash(self, d: Decimal) -> None:
        self._set_total(0, d)

    @property
    def _realised(self) -> Decimal:
        return self._total(1)

    @_realised.setter
    def _realised(self, d: Decimal) -> None:
        self._set_total(1, d)

    @property
    def _commissions(self) -> Decimal:
        return self._total(2)

    @_commissions.setter
    def _commissions(self, d: Decimal) -> None:
        self._set_total(2, d)

    # ---------------------------------------------------------------------------------------------
    # Feeding it

    def register(self, instrument: Instrument) -> None:
        """Tell the portfolio an instrument's multiplier (before its first fill)."""
        if not (math.isfinite(instrument.multiplier) and instrument.multiplier > 0):
            raise DataError(
                f"instrument {instrument.id}: multiplier must be > 0, got {instrument.multiplier!r}",
                instrument_id=instrument.id,
            )
        self._mults[instrument.id] = to_decimal(instrument.multiplier)

    def _book(self, instrument_id: str) -> _Book:
        book = self._books.get(instrument_id)
        if book is None:
            mult = self._mults.get(instrument_id, Decimal(1))
            book = self._books[instrument_id] = _Book(instrument_id, mult, self._g)
            self.positions_by_id[instrument_id] = book.pos
        return book

    def apply_fill(self, fill: Fill) -> None:
        """Book one execution: cash, commission, position, average cost and realised P&L, exactly.

        Raises :class:`RejectedError` (and changes nothing) for a fill that is not a fill: a
        quantity that is not positive, a side that is neither buy nor sell, a price or commission
        that is not finite.
        """
        sign = fill.side.sign
        if sign == 0 or not (fill.qty > 0 and math.isfinite(fill.qty)) or not math.isfinite(fill.price):
            raise RejectedError(
                f"fill {fill.fill_id} for {fill.instrument_id}: {fill.side.value} {fill.qty} @ {fill.price} "
                "is not a valid fill",
                fill_id=fill.fill_id,
                instrument_id=fill.instrument_id,
            )
        if not math.isfinite(fill.commission):
            raise RejectedError(
                f"fill {fill.fill_id}: commission {fill.commission!r} is not finite", fill_id=fill.fill_id
            )
        now = self._now_ns()
        if now >= self._day_end:  # the guard inlined: a call saved per fill
            self._roll_day(now)
        book = self._books.get(fill.instrument_id)
        if book is None:
            book = self._book(fill.instrument_id)
        fp = fill.price
        if not (book.fast and fp and self._tdec is None):  # a zero price books signed zeros
            self._apply_decimal(fill, book, sign)
            return
        # The fast path: _apply_decimal's arithmetic on ints at scale g (see _P10). Nothing is
        # stored until every amount and float view is computed, so a case it does not model
        # (_Slow, an index past the table, a float error) hands the untouched books to
        # _apply_decimal, which books it, or raises, exactly as before.
        g = self._g
        try:
            cache = _SHORT
            fq = fill.qty
            t = cache.get(fq)
            if t is None:
                if len(cache) >= _SHORT_MAX:
                    cache.clear()
                t = cache[fq] = _short(fq)
            qc, qe = t
            t = cache.get(fp)
            if t is None:
                if len(cache) >= _SHORT_MAX:
                    cache.clear()
                t = cache[fp] = _short(fp)
            pc, pe = t
            fc = fill.commission
            if fc:  # a rate times a notional rarely repeats: not cached (nor evicting sizes, prices)
                kc, ke = _short(fc)
            else:  # 0.0 and -0.0 read as Decimal('0.0') and Decimal('-0.0'): value 0, exponent -1
                kc = 0
                ke = -1
            mlc = book.mlc
            pme = pe + book.mle
            ne = qe + pme  # the notional's exponent
            if ne < -g or qe < -g or ke < -g:
                raise _Slow  # finer than the scale: Decimal books it, then the scale grows
            P = _P10
            if sign < 0:
                qc = -qc
            n = qc * pc * mlc * P[g + ne]  # notional = q * px * mult, signed: a buy costs
            k = kc * P[g + ke]
            x = n + k
            cash = self._cash_v - x  # cash - (notional + fee)
            tk = self._comm_v + k
            bk = book.kv + k
            ov = book.qv
            q = qc * P[g + qe]
            nq = ov + q
            oe = book.qe
            cv = book.cv
            if not ov or (ov < 0) == (sign < 0):  # opening: realises nothing
                realised = False
                cost = cv + n
                ce = book.ce
                if ne < ce:  # noqa: PLR1730
                    ce = ne
                if (
                    n.bit_length() | x.bit_length() | cash.bit_length() | tk.bit_length() | bk.bit_length()
                    | nq.bit_length() | cost.bit_length()
                ) >= _BITS:
                    raise _Slow
                if not ov:
                    # q is the shortest decimal of fq, which converts back to fq exactly.
                    qf = float(fq) if sign > 0 else -float(fq)
                else:
                    qf = nq / P[g]
            else:
                realised = True
                aq = -q if q < 0 else q
                ao = -ov if ov < 0 else ov
                if aq < ao:  # reduce: the closed share of the open cost goes, rounded to 1e-12
                    rm = _removed(cv, aq, ao, g) * P[g - 12]
                    pn = -n - rm  # pnl = -notional - removed
                    pne = ne if ne < -12 else -12
                    cost = cv - rm
                    ce = book.ce
                    if ce > -12:  # noqa: PLR1730
                        ce = -12
                    cn = 0
                    qf = nq / P[g]
                else:  # close, or close and open the other side
                    cne = oe + pme  # close_notional = -old * px * mult
                    if cne < -g:
                        raise _Slow
                    cn = -ov * pc * mlc
                    cn = cn * P[pme] if pme >= 0 else cn // P[-pme]  # exact: cne >= -g
                    pn = -cn - cv  # pnl = -close_notional - cost
                    pne = book.ce
                    if cne < pne:  # noqa: PLR1730
                        pne = cne
                    cost = n - cn  # notional - close_notional
                    ce = ne if ne < cne else cne
                    qf = nq / P[g] if nq else 0.0
                br = book.rv + pn
                bre = book.re
                if pne < bre:  # noqa: PLR1730
                    bre = pne
                tr = self._real_v + pn
                tre = self._real_e
                if pne < tre:  # noqa: PLR1730
                    tre = pne
                if (
                    n.bit_length() | x.bit_length() | cash.bit_length() | tk.bit_length() | bk.bit_length()
                    | nq.bit_length() | cost.bit_length() | pn.bit_length() | cn.bit_length()
                    | br.bit_length() | tr.bit_length()
                ) >= _BITS:
                    raise _Slow
                realised_f = br / P[g]
            # The float views, as float(Decimal) of the amounts gives them.
            qm = qf * book.mult_f
            avg = cost / P[g] / qm if qf else 0.0
            if fc:  # a zero fee leaves the total's value, so its float, as it was
                comm_f = bk / P[g]
            cash_f = cash / P[g]
        except (_Slow, IndexError, ZeroDivisionError, OverflowError):
            self._apply_decimal(fill, book, sign)
            return

        # Store: the same state _apply_decimal leaves.
        self._cash_v = cash
        e = self._cash_e
        if ne < e:  # noqa: PLR1730
            e = ne
        if ke < e:  # noqa: PLR1730
            e = ke
        self._cash_e = e
        self._comm_v = tk
        if ke < self._comm_e:  # noqa: PLR1730
            self._comm_e = ke
        book.kv = bk
        if ke < book.ke:  # noqa: PLR1730
            book.ke = ke
        book.qv = nq
        if qe < oe:
            book.qe = qe
        book.cv = cost
        book.ce = ce
        pos = book.pos
        if realised:
            book.rv = br
            book.re = bre
            self._real_v = tr
            self._real_e = tre
            pos.realised_pnl = realised_f
            if not nq:
                self._open -= 1
            elif (nq < 0) != (ov < 0):  # reversed: a new position opens
                pos.ts_opened = fill.ts_event
        elif not ov:
            pos.ts_opened = fill.ts_event
            self._open += 1
        book.last = fp
        pos.ts_last = fill.ts_event
        book.qm = qm
        pos.qty = qf
        pos.avg_price = avg
        if fc:
            pos.commissions = comm_f
        pos.last_price = fp
        # _revalue inline.
        self._cash_f = cash_f
        self._mv = mv = math.fsum([b.qm * b.last for b in self._books.values()])
        if cash_f + mv > self._peak:  # noqa: PLR1730
            self._peak = cash_f + mv

    def _apply_decimal(self, fill: Fill, book: _Book, sign: int) -> None:
        """:meth:`apply_fill` in Decimal arithmetic: the ledger's definition, and the path for what
        the integer fast path does not model (signed zeros, results past 120 digits, which this
        rounds or traps as ``Inexact``)."""
        fq = fill.qty
        fp = fill.price
        fc = fill.commission
        q = Decimal(repr(float(fq)))
        px = Decimal(repr(float(fp)))
        fee = Decimal(repr(float(fc)))
        saved = getcontext()
        setcontext(_EXACT)
        try:
            if sign < 0:
                q = -q
            mult = book.mult
            notional = q * px * mult  # signed: a buy costs, a sale receives
            self._cash = cash = self._cash - (notional + fee)
            self._commissions = self._commissions + fee
            book.commissions = comm = book.commissions + fee

            old = book.q
            realised = True
            if not old or old.is_signed() == (sign < 0):
                realised = False  # an opening fill realises nothing
                book.cost = book.cost + notional
                book.q = nq = old + q
                if not old:
                    book.pos.ts_opened = fill.ts_event
                    self._open += 1
                    qf = float(fq) if sign > 0 else -float(fq)
                else:
                    qf = float(nq)
            elif abs(q) < abs(old):  # reduce
                removed = _ROUND.multiply(book.cost, _ROUND.divide(abs(q), abs(old))).quantize(
                    COST_QUANTUM, context=_ROUND
                )
                pnl = -notional - removed
                book.cost = book.cost - removed
                book.q = nq = old + q
                qf = float(nq)
                book.realised = book.realised + pnl
                self._realised = self._realised + pnl
            else:  # close, or close and open the other side
                closing = -old
                close_notional = closing * px * mult
                pnl = -close_notional - book.cost
                book.realised = book.realised + pnl
                self._realised = self._realised + pnl
                rest = q - closing
                book.q = rest
                book.cost = notional - close_notional
                if rest:
                    book.pos.ts_opened = fill.ts_event
                    qf = float(rest)
                else:  # x - x is +0 when rounding half-even
                    self._open -= 1
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
        self._reload()
        self._cash_f = cash_f = float(cash)
        self._mv = mv = math.fsum([b.qm * b.last for b in self._books.values()])
        if cash_f + mv > self._peak:  # noqa: PLR1730
            self._peak = cash_f + mv

    def deposit(self, amount: float) -> None:
        """Add (or with a negative amount, withdraw) cash; it is not P&L."""
        if not math.isfinite(amount):
            raise DataError(f"deposit amount must be finite, got {amount!r}")
        d = to_decimal(amount)
        self._roll_day(self._now_ns())
        self._cash = _EXACT.add(self._cash, d)
        self._initial = _EXACT.add(self._initial, d)
        self._day_start += amount
        self._revalue()

    def mark(self, instrument_id: str, price: float) -> None:
        """Value a position at ``price`` (every tick: cheap; instruments without a position are
        ignored)."""
        book = self._books.get(instrument_id)
        if book is None or price - price != 0.0:  # untraded, or a NaN/inf price from bad data
            return
        qm = book.qm
        if qm:  # a flat book's mark moves neither the market value nor equity (most ticks)
            # The day rolls before the first change of equity in a new day; a flat mark changes
            # none, so it need not read the clock (every reader of the day's start rolls first).
            now = self._now_ns()
            if now >= self._day_end:
                self._roll_day(now)
            mv = self._mv + qm * (price - book.last)
            self._mv = mv
            eq = self._cash_f + mv
            if eq > self._peak:  # noqa: PLR1730 - a compare is cheaper than a max() call per tick
                self._peak = eq
        book.last = price
        book.pos.last_price = price

    def _revalue(self) -> None:
        self._reload()  # every path that books through Decimals ends here
        self._cash_f = cash = float(self._cash)
        # fsum of a list, not of a generator, and a compare, not max(): ~0.3 µs less per fill.
        self._mv = mv = math.fsum([b.qm * b.last for b in self._books.values()])
        if cash + mv > self._peak:  # noqa: PLR1730
            self._peak = cash + mv

    def _index_positions(self) -> None:
        index = self.positions_by_id
        index.clear()
        for iid, book in self._books.items():
            index[iid] = book.pos

    def _roll_day(self, now: int) -> None:
        """At the first event of a new local day, the equity before it is the day's start."""
        if now >= self._day_end:
            self._day_start = self._cash_f + self._mv
            self._day_end = next_local_time(now, _MIDNIGHT, self.timezone)

    # ---------------------------------------------------------------------------------------------
    # PortfolioView

    def equity(self) -> float:
        return self._cash_f + self._mv

    def cash(self) -> float:
        return self._cash_f

    def position(self, instrument_id: str) -> Position | None:
        """The live position view (read it, do not change it); None if never traded."""
        book = self._books.get(instrument_id)
        return None if book is None else book.pos

    def position_qty(self, instrument_id: str) -> float:
        book = self._books.get(instrument_id)
        return 0.0 if book is None else book.pos.qty

    def open_position_count(self) -> int:
        return self._open

    def exposure(self, instrument_id: str) -> float:
        book = self._books.get(instrument_id)
        return 0.0 if book is None else abs(book.qm * book.last)

    def gross_exposure(self) -> float:
        return sum(abs(b.qm * b.last) for b in self._books.values())

    def daily_pnl(self) -> float:
        self._roll_day(self._clock.now_ns())
        return self._cash_f + self._mv - self._day_start

    def peak_equity(self) -> float:
        return self._peak

    # ---------------------------------------------------------------------------------------------
    # Reading the books

    def positions(self, *, include_flat: bool = False) -> list[Position]:
        """Positions by instrument id; flat ones only when asked."""
        return [b.pos for _, b in sorted(self._books.items()) if include_flat or b.q != 0]

    def unrealised_pnl(self, instrument_id: str | None = None) -> float:
        """Marked value minus open cost (multiplier included), for one instrument or all."""
        books: Iterable[_Book] = self._books.values()
        if instrument_id is not None:
            one = self._books.get(instrument_id)
            books = () if one is None else (one,)
        return sum(b.qm * b.last - float(b.cost) for b in books if b.q != 0)

    def realised_pnl(self) -> float:
        return float(self._realised)

    def commissions(self) -> float:
        return float(self._commissions)

    @property
    def initial_cash(self) -> float:
        return float(self._initial)

    def exact(self) -> Mapping[str, Decimal]:
        """The authoritative amounts, exactly: cash, realised, commissions, open cost, initial."""
        return {
            "cash": self._cash,
            "realised": self._realised,
            "commissions": self._commissions,
            "open_cost": _exact_sum(b.cost for b in self._books.values()),
            "initial_cash": self._initial,
        }

    def exact_position(self, instrument_id: str) -> tuple[Decimal, Decimal, Decimal]:
        """``(qty, open cost, realised)`` of one instrument, exactly (zeros if never traded)."""
        book = self._books.get(instrument_id)
        if book is None:
            return _ZERO, _ZERO, _ZERO
        return book.q, book.cost, book.realised

    def to_minor_units(self, amount: Decimal | float) -> int:
        """An amount in the currency's smallest unit (cents, paise), rounded half-even."""
        d = amount if isinstance(amount, Decimal) else to_decimal(amount)
        return int(d.quantize(self._quantum, context=_ROUND).scaleb(self.minor_unit, context=_ROUND))

    def snapshot(self) -> AccountState:
        """Cash and equity now (floats), for status, reports and the recorder."""
        return AccountState(
            account_id=self.account_id,
            currency=self.currency,
            cash=self._cash_f,
            equity=self._cash_f + self._mv,
            realised_pnl=float(self._realised),
            unrealised_pnl=self.unrealised_pnl(),
            commissions=float(self._commissions),
            balances={self.currency: self._cash_f},
            ts_event=self._clock.now_ns(),
        )

    # ---------------------------------------------------------------------------------------------
    # Restarts

    def ledger(self) -> LedgerSnapshot:
        """The exact ledger, for the journal: :meth:`restore` rebuilds this portfolio from it."""
        self._roll_day(self._now_ns())
        return LedgerSnapshot(
            account_id=self.account_id,
            currency=self.currency,
            initial_cash=str(self._initial),
            cash=str(self._cash),
            realised=str(self._realised),
            commissions=str(self._commissions),
            peak_equity=self._peak,
            day_start_equity=self._day_start,
            positions=[
                LedgerPosition(
                    instrument_id=iid,
                    qty=str(b.q),
                    cost=str(b.cost),
                    realised=str(b.realised),
                    commissions=str(b.commissions),
                    multiplier=str(b.mult),
                    last_price=b.last,
                    ts_opened=b.pos.ts_opened,
                    ts_last=b.pos.ts_last,
                )
                for iid, b in sorted(self._books.items())
            ],
            ts_event=self._clock.now_ns(),
        )

    def restore(self, snap: LedgerSnapshot) -> None:
        """Replace the books with an exact snapshot taken by :meth:`ledger`.

        Raises :class:`DataError` naming the field when a decimal in it does not parse.
        """

        def dec(text: str, what: str) -> Decimal:
            try:
                d = Decimal(text)
            except (InvalidOperation, ValueError, TypeError):
                raise DataError(f"ledger snapshot: {what} is not a decimal: {text!r}", field=what) from None
            if not d.is_finite():
                raise DataError(f"ledger snapshot: {what} is not finite: {text!r}", field=what)
            return d

        books: dict[str, _Book] = {}
        for p in snap.positions:
            book = _Book(p.instrument_id, dec(p.multiplier, f"{p.instrument_id}.multiplier"), self._g)
            book.q = dec(p.qty, f"{p.instrument_id}.qty")
            book.cost = dec(p.cost, f"{p.instrument_id}.cost")
            book.realised = dec(p.realised, f"{p.instrument_id}.realised")
            book.commissions = dec(p.commissions, f"{p.instrument_id}.commissions")
            book.last = p.last_price
            book.pos.ts_opened = p.ts_opened
            book.pos.ts_last = p.ts_last
            book.refresh()
            books[p.instrument_id] = book
        self._initial = dec(snap.initial_cash, "initial_cash")
        self._cash = dec(snap.cash, "cash")
        self._realised = dec(snap.realised, "realised")
        self._commissions = dec(snap.commissions, "commissions")
        self.account_id = snap.account_id
        self.currency = snap.currency
        self._books = books
        self._index_positions()
        self._open = sum(1 for b in books.values() if b.q != 0)
        self._revalue()
        self._peak = max(snap.peak_equity, self._cash_f + self._mv)
        self._day_start = snap.day_start_equity
        self._day_end = next_local_time(self._clock.now_ns(), _MIDNIGHT, self.timezone)

    def restore_account(self, account: AccountState, positions: Iterable[Position]) -> None:
        """Start from an account's cash and a broker's positions (quantity and average price), as
        after a first start against a live account. P&L and commissions restart at zero; the
        initial cash is taken to be the equity at the positions' average prices."""
        books: dict[str, _Book] = {}
        for p in positions:
            if not (math.isfinite(p.qty) and math.isfinite(p.avg_price)):
                raise DataError(
                    f"position {p.instrument_id}: qty {p.qty!r} / avg price {p.avg_price!r} not finite",
                    instrument_id=p.instrument_id,
                )
            if p.qty == 0:
                continue
            book = _Book(p.instrument_id, self._mults.get(p.instrument_id, Decimal(1)), self._g)
            book.q = to_decimal(p.qty)
            book.cost = _EXACT.multiply(_EXACT.multiply(book.q, to_decimal(p.avg_price)), book.mult)
            book.last = p.last_price or p.avg_price
            book.pos.ts_opened = p.ts_opened
            book.pos.ts_last = p.ts_last
            book.refresh()
            books[p.instrument_id] = book
        self._cash = to_decimal(account.cash)
        self._initial = _EXACT.add(self._cash, _exact_sum(b.cost for b in books.values()))
        self._realised = _ZERO
        self._commissions = _ZERO
        self._books = books
        self._index_positions()
        self._open = len(books)
        self._revalue()
        self._peak = self._cash_f + self._mv
        self._day_start = self._peak
        self._day_end = next_local_time(self._clock.now_ns(), _MIDNIGHT, self.timezone)

    # ---------------------------------------------------------------------------------------------
    # Adjustments that are not trades (the venue's truth at reconcile)
    #
    # Accounting choice: an adjustment is capital moved in kind, not a trade. Quantity that comes
    # in enters the open cost at the reference price; quantity that goes out leaves at its share
    # of the book cost (average cost, the same rounding as a partial close), so nothing is
    # realised. Cash does not move; the initial cash (capital in) moves by the change in open
    # cost, so ``cash == initial + realised - commissions - open cost`` still holds exactly, and
    # ``equity - initial == realised + unrealised - commissions``. A position that crosses zero
    # leaves at its whole book cost, then the rest enters at the reference price.

    def adjust_position(
        self,
        instrument_id: str,
        qty: float | Decimal | str,
        *,
        price: float | Decimal | str,
        reason: str,
        ts: int,
    ) -> PositionAdjustment | None:
        """Set ``instrument_id``'s position to ``qty`` (signed), the difference entering at
        ``price``; returns the journal record, or None when the position already equals ``qty``.

        Raises :class:`DataError` (and changes nothing) for a quantity or price that is not a
        finite number, or a price that is not positive when quantity enters.
        """
        target = _exact_input(qty, f"{instrument_id} adjustment qty")
        px = _exact_input(price, f"{instrument_id} adjustment price")
        book = self._books.get(instrument_id)
        if book is not None and book.q == target:
            return None
        if target == 0 and book is None:
            return None
        return self._adjust(instrument_id, target, px, reason, ts)

    def apply_adjustment(self, adj: PositionAdjustment | CashAdjustment) -> None:
        """Apply a journaled adjustment again (journal replay): the same target, the same price."""
        if isinstance(adj, CashAdjustment):
            self._set_cash(_parse_dec(adj.cash_after, "cash adjustment cash_after"), adj.reason, adj.ts_event)
            return
        target = _parse_dec(adj.qty_after, f"{adj.instrument_id} adjustment qty_after")
        px = _parse_dec(adj.price, f"{adj.instrument_id} adjustment price")
        book = self._books.get(adj.instrument_id)
        if book is None or book.q != target:
            self._adjust(adj.instrument_id, target, px, adj.reason, adj.ts_event)

    def adjust_cash(
        self,
        cash: float | Decimal | str,
        *,
        reason: str,
        ts: int,
    ) -> CashAdjustment | None:
        """Set cash to ``cash`` (the venue's balance of the account currency); the difference is a
        deposit or withdrawal (initial cash moves with it), never P&L. None when already equal."""
        target = _exact_input(cash, "cash adjustment")
        if target == self._cash:
            return None
        return self._set_cash(target, reason, ts)

    def _set_cash(self, target: Decimal, reason: str, ts: int) -> CashAdjustment:
        ex = _EXACT
        self._roll_day(self._now_ns())
        before = self._cash
        diff = ex.subtract(target, before)
        self._cash = target
        self._initial = ex.add(self._initial, diff)
        self._day_start += float(diff)
        self._revalue()
        return CashAdjustment(currency=self.currency, cash_before=str(before), cash_after=str(target),
                              reason=reason, ts_event=ts)

    def _adjust(
        self,
        instrument_id: str,
        target: Decimal,
        px: Decimal,
        reason: str,
        ts: int,
    ) -> PositionAdjustment:
        ex = _EXACT
        self._roll_day(self._now_ns())
        known = self._books.get(instrument_id)
        old = _ZERO if known is None else known.q
        shrinks = target == 0 or (old != 0 and (old > 0) == (target > 0) and abs(target) < abs(old))
        if not shrinks and not px > 0:  # quantity enters: it needs a value
            raise DataError(
                f"{instrument_id}: adjustment to {target} needs a positive reference price, got {px}",
                instrument_id=instrument_id,
            )
        book = self._book(instrument_id)
        cost_before = book.cost
        if old != 0 and target != 0 and (old > 0) == (target > 0) and ex.abs(target) < ex.abs(old):
            # Part goes out, at its share of the book cost.
            removed = _ROUND.multiply(
                book.cost, _ROUND.divide(ex.subtract(ex.abs(old), ex.abs(target)), ex.abs(old))
            ).quantize(COST_QUANTUM, context=_ROUND)
            book.cost = ex.subtract(book.cost, removed)
        else:
            if old != 0 and (target == 0 or (old > 0) != (target > 0)):
                book.cost = _ZERO  # all goes out at book cost (crossing zero: then the rest enters)
                base = _ZERO
            else:
                base = old
            entering = ex.subtract(target, base)
            book.cost = ex.add(book.cost, ex.multiply(ex.multiply(entering, px), book.mult))
            if base == 0 and target != 0:
                book.pos.ts_opened = ts
        book.q = target
        change = ex.subtract(book.cost, cost_before)
        self._initial = ex.add(self._initial, change)
        self._day_start += float(change)
        self._open += int(target != 0) - int(old != 0)
        if target != 0 and not book.last:
            book.last = float(px)
        book.pos.ts_last = ts
        book.refresh(False)
        self._revalue()
        return PositionAdjustment(instrument_id=instrument_id, qty_before=str(old), qty_after=str(target),
                                  price=str(px), cost_change=str(change), reason=reason, ts_event=ts)


def _exact_sum(values: Iterable[Decimal]) -> Decimal:
    total = _ZERO
    for v in values:
        total = _EXACT.add(total, v)
    return total


def side_of(qty: float) -> Side:
    """The side that opens a position of signed ``qty`` (and closes its opposite)."""
    return Side.BUY if qty > 0 else Side.SELL if qty < 0 else Side.NONE


# -------------------------------------------------------------------------------------------------
# Adjustments that are not trades (the venue's truth at reconcile)


class PositionAdjustment(msgspec.Struct, kw_only=True):
    """A position set to a number that came from outside omnid (a deposit or withdrawal of the
    asset, a trade made elsewhere), journaled so a restart's replay sets it again.

    Decimals are strings, exactly as booked; ``cost_change`` is what the open cost moved by, and
    the initial cash (the capital put in) moved by the same amount.
    """

    instrument_id: str
    qty_before: str
    qty_after: str
    price: str
    cost_change: str
    reason: str = ""
    ts_event: int = 0

    @property
    def delta(self) -> float:
        """The quantity that came in (negative: went out), as a float for logs."""
        return float(Decimal(self.qty_after) - Decimal(self.qty_before))


class CashAdjustment(msgspec.Struct, kw_only=True):
    """Cash set to the venue's balance of the account currency; capital in or out, not P&L."""

    currency: str
    cash_before: str
    cash_after: str
    reason: str = ""
    ts_event: int = 0

    @property
    def delta(self) -> float:
        return float(Decimal(self.cash_after) - Decimal(self.cash_before))


def _parse_dec(text: str, what: str) -> Decimal:
    try:
        d = Decimal(text)
    except (InvalidOperation, ValueError, TypeError):
        raise DataError(f"{what} is not a decimal: {text!r}", field=what) from None
    if not d.is_finite():
        raise DataError(f"{what} is not finite: {text!r}", field=what)
    return d


def _exact_input(x: float | Decimal | str, what: str) -> Decimal:
    if isinstance(x, Decimal | str):
        return _parse_dec(str(x), what)
    if not math.isfinite(x):
        raise DataError(f"{what} must be finite, got {x!r}", field=what)
    return to_decimal(x)
