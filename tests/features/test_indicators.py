"""Each indicator against TA-Lib (to 1e-9 relative after warm-up) or a plain numpy reference.

TA-Lib conventions relied on (TA-Lib C sources, the library bundled in the ``ta-lib`` wheel, 0.8.2 here;
each is also pinned by the tests below, which fail if a convention is wrong):
- ta_EMA.c (TA_INT_EMA, default compatibility): k = 2/(N+1); the first output is the SMA of the
  first N inputs, at index N-1; then ``prev = (x - prev) * k + prev``.
- ta_MACD.c (TA_INT_MACD): both EMAs are started ``signal - 1`` bars before the first output, so
  the fast EMA is seeded with the SMA of the ``fast`` inputs ending at index ``slow - 1`` (not the
  first ``fast``); the signal is an EMA of the MACD line seeded the same way; the first output of
  all three is at index ``slow + signal - 2``.
- ta_RSI.c (non-Metastock, unstable period 0): the first output is at index N, from simple means of
  the first N gains and losses; then Wilder: ``avg = (avg * (N-1) + x) / N``; 0 when both are 0.
- ta_ATR.c / ta_TRANGE.c: true range needs the previous close, so the first output is at index N,
  the SMA of the first N true ranges; then Wilder smoothing.
- ta_BBANDS.c / ta_STDDEV.c (MA type 0 = SMA): population standard deviation over the SMA window.
- ta_CORREL.c: Pearson correlation over the window; 0 when either variance is not positive.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st
from omnid.calendar import TradingCalendar
from omnid.errors import ConfigError
from omnid.features import (
    ATR,
    EMA,
    MACD,
    RSI,
    SMA,
    BBands,
    BookImbalance,
    Correlation,
    Momentum,
    RealisedVol,
    RollingVWAP,
    SessionVWAP,
)

from tests.conftest import SLOW
from tests.features.series import Series, assert_parity, flat, gaps, gbm, jump

SERIES: dict[str, Callable[[], Series]] = {"gbm": gbm, "flat": flat, "gaps": gaps, "jump": jump}


def run(ind: object, *cols: np.ndarray, attrs: tuple[str, ...] = ("value",)) -> list[np.ndarray]:
    n = len(cols[0])
    out = [np.full(n, np.nan) for _ in attrs]
    upd = ind.update  # type: ignore[attr-defined]
    for i in range(n):
        upd(*(float(c[i]) for c in cols))
        if ind.ready:  # type: ignore[attr-defined]
            for o, a in zip(out, attrs, strict=True):
                o[i] = getattr(ind, a)
    return out


@pytest.mark.parametrize("series", SERIES)
@pytest.mark.parametrize("period", [1, 2, 10, 30])
def test_sma_ema(series: str, period: int) -> None:
    s = SERIES[series]()
    assert_parity(run(SMA(period), s.close)[0], talib.SMA(s.close, period))
    assert_parity(run(EMA(period), s.close)[0], talib.EMA(s.close, period))


@pytest.mark.parametrize("series", SERIES)
@pytest.mark.parametrize("period", [2, 14, 30])
def test_rsi_wilder(series: str, period: int) -> None:
    """RSI: simple-mean seed over the first `period` changes, then Wilder smoothing; flat = 0."""
    s = SERIES[series]()
    assert_parity(run(RSI(period), s.close)[0], talib.RSI(s.close, period))


@pytest.mark.parametrize("series", SERIES)
@pytest.mark.parametrize("period", [1, 14, 30])
def test_atr_wilder(series: str, period: int) -> None:
    s = SERIES[series]()
    ours = run(ATR(period), s.high, s.low, s.close)[0]
    assert_parity(ours, talib.ATR(s.high, s.low, s.close, period))


@pytest.mark.parametrize("series", SERIES)
@pytest.mark.parametrize("params", [(12, 26, 9), (3, 6, 2), (5, 5, 1), (8, 21, 5)])
def test_macd_alignment(series: str, params: tuple[int, int, int]) -> None:
    """The fast EMA is seeded where the slow one is (TA-Lib's MACD alignment)."""
    s = SERIES[series]()
    ours = run(MACD(*params), s.close, attrs=("value", "signal", "hist"))
    for o, r in zip(ours, talib.MACD(s.close, *params), strict=True):
        assert_parity(o, r)


@pytest.mark.parametrize("series", SERIES)
@pytest.mark.parametrize("period,k", [(20, 2.0), (5, 1.5), (2, 3.0)])
def test_bbands_population_stdev(series: str, period: int, k: float) -> None:
    s = SERIES[series]()
    ours = run(BBands(period, k), s.close, attrs=("upper", "middle", "lower"))
    for o, r in zip(ours, talib.BBANDS(s.close, period, k, k, 0), strict=True):
        assert_parity(o, r)


def test_bbands_exact_after_enormous_spike() -> None:
    """A x1e6 print leaving the window must not leave its rounding error in the band width."""
    c = gbm(300, seed=2).close.copy()
    c[100] *= 1e6
    ours = run(BBands(20, 2.0), c, attrs=("upper", "middle"))
    ref_sd = np.array([np.std(c[i - 19 : i + 1]) if i >= 19 else np.nan for i in range(len(c))])
    width = (ours[0] - ours[1]) / 2.0
    np.testing.assert_allclose(width[130:], ref_sd[130:], rtol=1e-9)


@pytest.mark.parametrize("series", ["gbm", "gaps", "jump"])
def test_correlation_against_talib_correl(series: str) -> None:
    a = SERIES[series]().close
    b = gbm(len(a), seed=11).close * 0.3 + a * 0.7
    corr = Correlation("B", 20)
    out = np.full(len(a), np.nan)
    for i in range(len(a)):
        corr.update_a(i, float(a[i]))
        corr.update_b(i, float(b[i]))
        if corr.ready:
            out[i] = corr.value
    ra = np.r_[np.nan, a[1:] / a[:-1] - 1]
    rb = np.r_[np.nan, b[1:] / b[:-1] - 1]
    exact = np.full(len(a), np.nan)
    for i in range(20, len(a)):
        x, y = ra[i - 19 : i + 1], rb[i - 19 : i + 1]
        flat_side = np.ptp(x) == 0 or np.ptp(y) == 0  # no variance: 0, as TA-Lib has it
        exact[i] = 0.0 if flat_side else np.corrcoef(x, y)[0, 1]
    assert_parity(out, exact)
    # TA-Lib keeps raw running sums, so after the x100 print (a +9900% return) leaves the window
    # its own result is ~1.4e-9 off the exact value (ours is ~1e-14 off): allow that there.
    assert_parity(out, talib.CORREL(ra, rb, 20), rtol=1e-8 if series == "jump" else 1e-9)


def test_correlation_pairs_only_equal_timestamps() -> None:
    """Returns pair on equal ts; a side's lone input only moves its previous price."""
    c = Correlation("B", 2)
    c.update_a(0, 100.0)
    c.update_b(0, 50.0)
    c.update_a(1, 101.0)
    c.update_a(2, 102.0)  # B has no ts=1 input: A's ts=1 return is dropped
    c.update_b(2, 51.0)
    c.update_a(3, 100.0)
    c.update_b(3, 52.0)
    assert c.ready
    ra = [102 / 101 - 1, 100 / 102 - 1]
    rb = [51 / 50 - 1, 52 / 51 - 1]
    assert c.value == pytest.approx(float(np.corrcoef(ra, rb)[0, 1]), rel=1e-12)


@pytest.mark.parametrize("series", SERIES)
def test_realised_vol(series: str) -> None:
    """Sample stdev (ddof=1) of the last N log returns, times the annualisation factor."""
    s = SERIES[series]()
    scale = math.sqrt(252)
    ours = run(RealisedVol(20, scale), s.close)[0]
    r = np.diff(np.log(s.close))
    ref = np.full(len(s.close), np.nan)
    for i in range(20, len(s.close)):
        ref[i] = np.std(r[i - 20 : i], ddof=1) * scale
    assert_parity(ours, ref)


@pytest.mark.parametrize("series", SERIES)
def test_rolling_vwap(series: str) -> None:
    s = SERIES[series]()
    ours = run(RollingVWAP(15), s.close, s.volume)[0]
    pv = np.convolve(s.close * s.volume, np.ones(15), "valid")
    v = np.convolve(s.volume, np.ones(15), "valid")
    ref = np.r_[np.full(14, np.nan), pv / v]
    assert_parity(ours, ref)


@pytest.mark.parametrize("series", SERIES)
def test_momentum_score(series: str) -> None:
    s = SERIES[series]()
    n = 10
    ours = run(Momentum(n), s.close, s.volume)[0]
    c, v = s.close, s.volume
    ref = np.full(len(c), np.nan)
    for i in range(n, len(c)):
        ref[i] = abs(c[i] - c[i - n]) / c[i - n] * 100 * v[i - n + 1 : i + 1].sum()
    assert_parity(ours, ref)


def test_book_imbalance_top_levels() -> None:
    obi = BookImbalance(2)
    obi.update_sizes([3.0, 1.0, 100.0], [1.0, 1.0])
    assert obi.value == pytest.approx((4 - 2) / 6)
    obi.update_sizes([], [])
    assert obi.value == 0.0
    obi.update_quote(1.0, 3.0)
    assert obi.value == pytest.approx(-0.5)


def test_long_stream_has_no_drift() -> None:
    """Over a long trending stream the windowed sums stay equal to a fresh computation (1e-9)."""
    c = gbm(20_000, seed=9, vol=0.001).close
    sma = SMA(50)
    bb = BBands(50, 2.0)
    worst_sma = worst_sd = 0.0
    for k, x in enumerate(c.tolist()):
        sma.update(x)
        bb.update(x)
        if k >= 49 and k % 7 == 0:
            win = c[k - 49 : k + 1]
            worst_sma = max(worst_sma, abs(sma.value / float(np.mean(win)) - 1))
            worst_sd = max(worst_sd, abs((bb.upper - bb.middle) / (2 * float(np.std(win))) - 1))
    assert worst_sma < 1e-12
    assert worst_sd < 1e-9


def test_bad_parameters_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="period must be an integer >= 1"):
        SMA(0)
    with pytest.raises(ConfigError, match="must not exceed slow"):
        MACD(26, 12, 9)
    with pytest.raises(ConfigError, match="width must be a positive number"):
        BBands(20, float("nan"))


def test_long_stream_resums_keep_every_windowed_indicator_exact() -> None:
    """Past several periodic resums, windowed indicators still equal their plain definitions."""
    s = gbm(12_000, seed=4, vol=0.002)
    c, v = s.close, s.volume
    n = 11
    mom, vw, rv = Momentum(n), RollingVWAP(n), RealisedVol(n)
    corr = Correlation("B", n)
    other = c * 0.5 + gbm(12_000, seed=6, vol=0.002).close
    lr = np.diff(np.log(c))
    for k in range(len(c)):
        x, q = float(c[k]), float(v[k])
        mom.update(x, q)
        vw.update(x, q)
        rv.update(x)
        corr.update_a(k, x)
        corr.update_b(k, float(other[k]))
        if k > n + 1 and k % 97 == 0:
            win = slice(k - n + 1, k + 1)
            ref_mom = abs(c[k] - c[k - n]) / c[k - n] * 100 * v[win].sum()
            assert mom.value == pytest.approx(ref_mom, rel=1e-10)
            assert vw.value == pytest.approx((c[win] * v[win]).sum() / v[win].sum(), rel=1e-12)
            assert rv.value == pytest.approx(np.std(lr[k - n : k], ddof=1), rel=1e-9)
            ra = c[k - n : k + 1]
            rb = other[k - n : k + 1]
            ref = np.corrcoef(ra[1:] / ra[:-1] - 1, rb[1:] / rb[:-1] - 1)[0, 1]
            assert corr.value == pytest.approx(ref, rel=1e-9)


@settings(max_examples=60 if SLOW else 25, deadline=None, derandomize=True)
@given(
    prices=st.lists(st.floats(1.0, 1e4, allow_nan=False, allow_infinity=False), min_size=1, max_size=80),
    period=st.integers(2, 20),
)
def test_property_random_series_match_talib(prices: list[float], period: int) -> None:
    """Any positive series, any period: same warm-up and values as TA-Lib (or no output at all)."""
    c = np.array(prices)
    pairs = [
        (run(SMA(period), c)[0], talib.SMA(c, period)),
        (run(EMA(period), c)[0], talib.EMA(c, period)),
        (run(RSI(period), c)[0], talib.RSI(c, period)),
        (run(ATR(period), c * 1.01, c * 0.99, c)[0], talib.ATR(c * 1.01, c * 0.99, c, period)),
        (run(BBands(period, 2.0), c, attrs=("upper",))[0], talib.BBANDS(c, period, 2, 2, 0)[0]),
    ]
    for ours, ref in pairs:
        if np.isnan(ref).all():
            assert np.isnan(ours).all()
        else:
            assert_parity(ours, ref)


def _edge_series(rng: np.random.Generator, n: int) -> list[float]:
    """Random walk with flat runs, huge jumps, tiny steps and subnormal-sized changes."""
    x = 100.0
    out: list[float] = []
    for _ in range(n):
        r = rng.random()
        if r < 0.15:
            pass  # unchanged: a zero change
        elif r < 0.2:
            x *= float(rng.choice([1e-6, 1e6, 0.5, 2.0]))
        elif r < 0.25:
            x += 5e-324 * float(rng.integers(-3, 4))
        else:
            x += float(rng.normal()) * x * 0.01
        out.append(x)
    return out


@pytest.mark.parametrize("period", [1, 2, 3, 14, 50])
def test_rsi_steady_state_is_bit_identical_to_integer_period_wilder(period: int) -> None:
    """The steady state uses cached float weights; every value equals the int-period formula."""
    rng = np.random.default_rng(period)
    xs = _edge_series(rng, 3000)
    ind = RSI(period)
    prev, gain, loss, n = math.nan, 0.0, 0.0, 0
    for x in xs:
        ind.update(x)
        if n == 0:
            prev, n = x, 1
            continue
        d = x - prev
        prev = x
        if n > period:  # Wilder smoothing written as TA-Lib does, with the int period
            gain *= period - 1
            loss *= period - 1
        if d < 0:
            loss -= d
        else:
            gain += d
        if n >= period:
            gain /= period
            loss /= period
        n = min(n + 1, period + 1)
        if n > period:
            total = gain + loss
            want = 100.0 * (gain / total) if total > 0.0 else 0.0
            assert ind.ready
            assert ind.value == want or (math.isnan(want) and math.isnan(ind.value))


def test_session_vwap_is_the_running_sum_ratio_reset_each_utc_day() -> None:
    """Session VWAP on an always-open calendar: Σ p·v / Σ v since 00:00 UTC, bit for bit."""
    rng = np.random.default_rng(7)
    day = 86_400_000_000_000
    ts = np.sort(rng.integers(0, 3 * day, 2000)).tolist()
    px = _edge_series(rng, 2000)
    vol = [0.0 if rng.random() < 0.1 else float(rng.exponential()) for _ in px]
    ind = SessionVWAP(TradingCalendar())
    spv = sv = 0.0
    cur = -1
    for t, p, v in zip(ts, px, vol, strict=True):
        ind.update(t, p, v)
        if t // day != cur:
            cur, spv, sv = t // day, 0.0, 0.0
        spv += p * v
        sv += v
        assert ind.value == (spv / sv if sv > 0.0 else p)
        assert ind.session_start == cur * day


def test_session_vwap_is_ready_from_its_first_update_and_after_each_reset() -> None:
    ind = SessionVWAP(TradingCalendar())
    assert not ind.ready and math.isnan(ind.value)
    day = 86_400 * 10**9
    ind.update(day + 5, 10.0, 2.0)
    assert ind.ready and ind.value == 10.0
    ind.update(day + 6, 13.0, 1.0)
    assert ind.ready and ind.value == 11.0
    ind.update(2 * day + 1, 20.0, 0.0)  # a new session: sums reset; no volume yet gives the price
    assert ind.ready and ind.value == 20.0
