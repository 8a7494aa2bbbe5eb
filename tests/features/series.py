"""Test series for indicator parity (real-looking GBM bars with volume, and edge cases) and the
parity assertion."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

F = npt.NDArray[np.float64]


class Series(NamedTuple):
    high: F
    low: F
    close: F
    volume: F


def gbm(n: int = 600, seed: int = 1, vol: float = 0.02, start: float = 100.0) -> Series:
    """Daily-bar-like geometric Brownian motion with intrabar range and lognormal volume."""
    rng = np.random.default_rng(seed)
    close = start * np.exp(np.cumsum(rng.normal(0.0002, vol, n)))
    spread = np.abs(rng.normal(0, vol / 2, (2, n)))
    high = close * (1 + spread[0])
    low = close * (1 - spread[1])
    volume = rng.lognormal(8, 1, n)
    return Series(high, low, close, volume)


def _from_close(close: F, seed: int = 3) -> Series:
    rng = np.random.default_rng(seed)
    r = np.abs(rng.normal(0, 0.003, (2, len(close))))
    return Series(close * (1 + r[0]), close * (1 - r[1]), close, rng.lognormal(6, 1, len(close)))


def flat(n: int = 200) -> Series:
    c = np.full(n, 100.0)
    return Series(c.copy(), c.copy(), c, np.full(n, 10.0))


def gaps(n: int = 400) -> Series:
    """GBM with opening gaps (±8%) and a stretch where the price does not move."""
    base = gbm(n, seed=5).close.copy()
    for i, g in ((60, 1.08), (140, 0.92), (220, 1.08)):
        base[i:] *= g
    base[300:340] = base[300]
    return _from_close(base)


def jump(n: int = 400, factor: float = 100.0) -> Series:
    """GBM with one huge print (x factor) that reverts on the next bar."""
    c = gbm(n, seed=7).close.copy()
    c[200] *= factor
    return _from_close(c)


def assert_parity(ours: np.ndarray, ref: np.ndarray, rtol: float = 1e-9) -> None:
    """Same warm-up (NaN exactly where the reference is NaN); each value within ``rtol`` relative,
    except values within 1e-4 of the series' scale of zero (a MACD histogram crossing zero), which
    must be within ``rtol`` × scale absolute."""
    assert ours.shape == ref.shape
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    m = ~np.isnan(ref)
    assert m.any()
    scale = float(np.max(np.abs(ref[m]))) or 1.0
    np.testing.assert_allclose(ours[m], ref[m], rtol=rtol, atol=rtol * scale)
    big = m & (np.abs(ref) > 1e-4 * scale)
    np.testing.assert_allclose(ours[big], ref[big], rtol=rtol, atol=0)
