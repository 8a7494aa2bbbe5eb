"""pairs: the rolling regression against numpy, and entries/exits/stops on constructed prices."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from omnid.model import Instrument, IntentAction, Side
from omnid.strategies.builtin.pairs import Pairs, RollingOLS

from tests.strategies.helpers import Rig

A = Instrument(symbol="ETHUSDT", venue="SIM", lot_size=0.0001)
B = Instrument(symbol="BTCUSDT", venue="SIM", lot_size=0.00001)


def test_rolling_ols_matches_numpy_over_a_long_stream() -> None:
    """alpha, beta and residual sd equal numpy's fit of the last window points, after many evictions."""
    rng = random.Random(7)
    ols = RollingOLS(50)
    xs: list[float] = []
    ys: list[float] = []
    for _ in range(5_000):
        x = rng.gauss(0, 0.01) + (xs[-1] if xs else 0.0)
        y = 0.3 + 1.7 * x + rng.gauss(0, 0.002)
        xs.append(x)
        ys.append(y)
        ols.push(x, y)
    fit = ols.fit()
    assert fit is not None
    alpha, beta, sd = fit
    X, Y = np.array(xs[-50:]), np.array(ys[-50:])
    nb, na = np.polyfit(X, Y, 1)
    resid = Y - (na + nb * X)
    assert beta == pytest.approx(nb, rel=1e-7)
    assert alpha == pytest.approx(na, rel=1e-7, abs=1e-9)
    assert sd == pytest.approx(float(np.sqrt(np.mean(resid**2))), rel=1e-6)


def test_replace_last_counts_one_timestamp_once() -> None:
    """Two prints with one timestamp replace the observation instead of adding one."""
    ols = RollingOLS(3)
    ols.push(1.0, 2.0)
    ols.push(2.0, 3.0)
    ols.replace_last(2.0, 5.0)
    assert ols.n == 2 and ols.sy == pytest.approx(7.0)


def _rig(**params: object) -> Rig:
    rig = Rig("pairs", [A, B], {"window": 20, "entry_z": 2.0, "exit_z": 0.5, "stop_z": 4.0, "qty": 1.0,
                                **params})
    rig.strategy.on_start()
    return rig


def _warm(rig: Rig) -> float:
    """Feed 20 co-moving observations (A = 2 x B with noise) at successive timestamps."""
    rng = random.Random(3)
    ts = rig.clock.now_ns()
    pb = 100.0
    for k in range(20):
        ts += 10**9
        rig.clock.advance_to(ts)
        pb *= math.exp(rng.gauss(0, 0.01))
        pa = 2.0 * pb * math.exp(rng.gauss(0, 0.0005))
        rig.strategy.on_price(B.id, pb, ts)
        assert rig.strategy.on_price(A.id, pa, ts) is None or k == 19
    return pb


def test_rich_spread_sells_a_and_buys_b_then_exits_on_reversion() -> None:
    """z above entry: sell A and buy beta-weighted B; back inside exit_z: close both legs."""
    rig = _rig()
    pb = _warm(rig)
    strat = rig.strategy
    assert isinstance(strat, Pairs)
    ts = rig.clock.now_ns() + 10**9
    rig.clock.advance_to(ts)
    strat.on_price(B.id, pb, ts)
    out = strat.on_price(A.id, 2.0 * pb * 1.004, ts)  # A jumps ~8 residual sds
    assert out is not None and len(out) == 2
    a, b = out
    assert (a.instrument_id, a.side, a.qty) == (A.id, Side.SELL, 1.0)
    assert b.instrument_id == B.id and b.side is Side.BUY
    beta = a.numbers["beta"]
    assert b.qty == pytest.approx(abs(beta) * 1.0 * a.numbers["price_a"] / a.numbers["price_b"])
    assert a.numbers["z"] > 2.0 and "short the spread" in a.reason
    # Hold the legs, then let A come back to the fair value: close both.
    rig.hold(A.id, -1.0, a.numbers["price_a"])
    rig.hold(B.id, b.qty, pb)
    for _ in range(3):
        ts += 10**9
        rig.clock.advance_to(ts)
        strat.on_price(B.id, pb, ts)
        out = strat.on_price(A.id, 2.0 * pb, ts)
        if out:
            break
    assert out is not None
    assert [(i.instrument_id, i.side, i.action) for i in out] == [
        (A.id, Side.BUY, IntentAction.CLOSE), (B.id, Side.SELL, IntentAction.CLOSE)]
    assert "reverted" in out[0].reason and "short spread" in out[0].reason


def test_stop_closes_and_stands_aside() -> None:
    """Long the spread and z runs past -stop_z: close both legs; no re-entry until |z| < entry_z."""
    rig = _rig()
    pb = _warm(rig)
    strat = rig.strategy
    rig.hold(A.id, 1.0, 2.0 * pb)
    rig.hold(B.id, -2.0, pb)
    ts = rig.clock.now_ns() + 10**9
    rig.clock.advance_to(ts)
    out = strat.on_price(A.id, 2.0 * pb * 0.99, ts)  # far below: z << -4
    assert out is not None and all(i.action is IntentAction.CLOSE for i in out)
    assert "stop" in out[0].reason and out[0].numbers["z"] < -4.0
    rig.hold(A.id, -1.0, 2.0 * pb * 0.99)
    rig.hold(B.id, 2.0, pb)
    ts += 10**9
    rig.clock.advance_to(ts)
    assert strat.on_price(A.id, 2.0 * pb * 0.99, ts) is None  # an entry-sized z, but standing aside
    assert -4.0 < strat.state()["z"] < -2.0 and strat.state()["stood_aside"] is True
    ts += 10**9
    rig.clock.advance_to(ts)
    assert strat.on_price(A.id, 2.0 * pb, ts) is None  # |z| back under entry_z: may enter again
    assert strat.state()["stood_aside"] is False


def test_pairs_needs_two_instruments() -> None:
    """A pairs strategy on one instrument is a config error."""
    from omnid.errors import ConfigError

    with pytest.raises(ConfigError, match="exactly 2 instruments"):
        Rig("pairs", [A], {})


def test_z_levels_must_be_ordered() -> None:
    from omnid.errors import ConfigError

    with pytest.raises(ConfigError, match="exit_z"):
        Rig("pairs", [A, B], {"entry_z": 1.0, "exit_z": 1.5})


def test_bars_observe_once_both_legs_have_the_same_bar_time() -> None:
    """On bars, leg A's bar alone neither observes nor decides; B's bar of the same time does."""
    from omnid.model import Bar

    rig = _rig(window=3)
    strat = rig.strategy
    ols = strat._ols  # type: ignore[attr-defined]

    def bar(iid: str, k: int, close: float) -> Bar:
        return Bar(iid, 60, k * 60, close, close, close, close, 1.0, k * 60 + 60, k * 60 + 60)

    assert strat.on_bar(bar(A.id, 0, 200.0)) is None and ols.n == 0
    strat.on_bar(bar(B.id, 0, 100.0))
    assert ols.n == 1
    strat.on_bar(bar(A.id, 1, 202.0))
    assert ols.n == 1  # waiting for B's bar of minute 1
    strat.on_bar(bar(B.id, 1, 101.0))
    assert ols.n == 2
