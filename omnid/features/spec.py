"""Indicator spec strings: ``sma:10,ema:20,rsi:14,atr:14,macd:12:26:9,bbands:20:2,vwap``.

Each item is ``kind[:param[:param...]]``; parameters left out take the usual defaults. Column names
join the parts with underscores (``macd_12_26_9``, ``bbands_20_2_upper``); ``vwap`` alone is the
session VWAP and ``vwap:N`` the rolling VWAP of the last N updates.

=============================  ===========================================  ==================
item                           indicator                                    columns
=============================  ===========================================  ==================
``sma:N`` ``ema:N``            simple / exponential moving average          sma_N, ema_N
``rsi:N`` (14)                 Wilder RSI                                   rsi_N
``atr:N`` (14)                 Wilder average true range                    atr_N
``macd:F:S:G`` (12:26:9)       MACD line, signal, histogram                 macd_F_S_G[_signal|_hist]
``bbands:N:K`` (20:2)          Bollinger bands                              bbands_N_K_upper|middle|lower
``vwap`` / ``vwap:N``          session / rolling VWAP                       vwap, vwap_N
``rv:N[:P]`` (20)              realised volatility (P periods per year)     rv_N
``mom:N`` (10)                 momentum score abs(Δprice %) × volume        mom_N
``obi:N`` (5)                  order-book imbalance over the top N levels   obi_N
``corr:INSTRUMENT:N`` (20)     correlation of returns with INSTRUMENT       corr_INSTRUMENT_N
=============================  ===========================================  ==================
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from omnid.calendar import CRYPTO_24_7, TradingCalendar
from omnid.errors import ConfigError
from omnid.features.indicators import (
    ATR,
    EMA,
    MACD,
    RSI,
    SMA,
    BBands,
    BookImbalance,
    Correlation,
    Indicator,
    Momentum,
    RealisedVol,
    RollingVWAP,
    SessionVWAP,
)

SECONDS_PER_YEAR = 365 * 86_400


@dataclass(frozen=True, slots=True)
class IndicatorSpec:
    """One parsed spec item. ``name`` is the base column name; ``build`` makes a fresh indicator."""

    item: str
    kind: str
    params: tuple[float | int | str, ...]
    name: str

    @property
    def other(self) -> str | None:
        """For ``corr``: the other instrument."""
        return str(self.params[0]) if self.kind == "corr" else None

    def build(self, *, calendar: TradingCalendar = CRYPTO_24_7, interval_ns: int = 0) -> Indicator:
        """A new indicator. ``interval_ns`` (0 for ticks) sets realised volatility's annualisation."""
        p = self.params
        k = self.kind
        if k == "vwap":
            return SessionVWAP(calendar, self.name) if not p else RollingVWAP(int(p[0]), self.name)
        if k == "rv":
            if len(p) > 1:
                scale = math.sqrt(float(p[1]))
            elif interval_ns > 0:
                scale = math.sqrt(SECONDS_PER_YEAR * 1e9 / interval_ns)
            else:
                scale = 1.0
            return RealisedVol(int(p[0]), scale, self.name)
        if k == "corr":
            return Correlation(str(p[0]), int(p[1]), self.name)
        return _SIMPLE[k][2](p, self.name)


def _int(x: float | int | str) -> int:
    return int(x)


#: kind -> (parameter count range, defaults, builder)
_SIMPLE: dict[str, tuple[tuple[int, int], tuple[float, ...], Callable[..., Indicator]]] = {
    "sma": ((1, 1), (), lambda p, n: SMA(_int(p[0]), n)),
    "ema": ((1, 1), (), lambda p, n: EMA(_int(p[0]), n)),
    "rsi": ((0, 1), (14,), lambda p, n: RSI(_int(p[0]), n)),
    "atr": ((0, 1), (14,), lambda p, n: ATR(_int(p[0]), n)),
    "macd": ((0, 3), (12, 26, 9), lambda p, n: MACD(_int(p[0]), _int(p[1]), _int(p[2]), n)),
    "bbands": ((0, 2), (20, 2), lambda p, n: BBands(_int(p[0]), float(p[1]), n)),
    "vwap": ((0, 1), (), lambda p, n: RollingVWAP(_int(p[0]), n)),
    "rv": ((0, 2), (20,), lambda p, n: RealisedVol(_int(p[0]), 1.0, n)),
    "mom": ((0, 1), (10,), lambda p, n: Momentum(_int(p[0]), n)),
    "obi": ((0, 1), (5,), lambda p, n: BookImbalance(_int(p[0]), n)),
}
KINDS = (*_SIMPLE, "corr")


def _bad(item: str, why: str) -> ConfigError:
    return ConfigError("indicators", [(item, why)])


def _fmt(x: float | int | str) -> str:
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)


def parse_item(item: str) -> IndicatorSpec:
    """Parse one item (``"rsi:14"``); ConfigError naming the item and what is wrong with it."""
    text = item.strip()
    parts = [s.strip() for s in text.split(":")]
    kind = parts[0].lower()
    raw = parts[1:]
    if kind == "corr":
        if len(raw) not in (1, 2) or not raw[0]:
            raise _bad(text, "expected corr:INSTRUMENT[:N]")
        period = _parse_int(text, raw[1], minimum=2) if len(raw) == 2 else 20
        return IndicatorSpec(text, kind, (raw[0], period), f"corr_{raw[0]}_{period}")
    if kind not in _SIMPLE:
        raise _bad(text, f"unknown indicator {kind!r} (known: {', '.join(KINDS)})")
    (lo, hi), defaults, _ = _SIMPLE[kind]
    if kind == "vwap" and not raw:
        return IndicatorSpec(text, kind, (), "vwap")
    if len(raw) > hi:
        raise _bad(text, f"{kind} takes at most {hi} parameter(s), got {len(raw)}")
    if len(raw) < lo:
        raise _bad(text, f"{kind} needs a period, e.g. {kind}:20")
    params: list[float | int] = []
    for i, r in enumerate(raw):
        if (kind, i) in (("bbands", 1), ("rv", 1)):
            params.append(_parse_float(text, r))
        else:
            params.append(_parse_int(text, r, minimum=2 if kind == "rv" else 1))
    params.extend(defaults[len(raw):])
    if kind == "macd" and params[0] > params[1]:
        raise _bad(text, f"fast period {params[0]} must not exceed slow period {params[1]}")
    name_params = params[:1] if kind == "rv" else params
    name = "_".join([kind, *(_fmt(p) for p in name_params)])
    return IndicatorSpec(text, kind, tuple(params), name)


def _parse_int(item: str, text: str, *, minimum: int = 1) -> int:
    try:
        v = int(text)
    except ValueError:
        raise _bad(item, f"{text!r} is not a whole number") from None
    if v < minimum:
        raise _bad(item, f"period {v} must be >= {minimum}")
    return v


def _parse_float(item: str, text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise _bad(item, f"{text!r} is not a number") from None
    if not math.isfinite(v) or v <= 0:
        raise _bad(item, f"{text!r} must be a positive number")
    return v


def parse_spec(spec: str) -> list[IndicatorSpec]:
    """Parse a comma list; every bad item is reported (ConfigError lists them all)."""
    out: list[IndicatorSpec] = []
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    for item in spec.split(","):
        if not item.strip():
            continue
        try:
            s = parse_item(item)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        if s.name not in seen:
            seen.add(s.name)
            out.append(s)
    if problems:
        raise ConfigError("indicators", problems)
    if not out and spec.strip() == "":
        raise ConfigError("indicators", [("", "no indicators given")])
    return out
