"""``momentum``: intraday long-only momentum on session VWAP, RSI and order-book imbalance.

Enter long when price > session VWAP and RSI > ``rsi_entry`` (50) and book imbalance >
``imbalance_min`` (0), inside the session and before its square-off time. Exit when price < VWAP or
RSI < ``rsi_exit`` (45). Flat by the square-off time: a one-shot clock timer at each session's
square-off closes what is open even if no tick arrives, and no entry is taken after it.

Order-book imbalance needs book data (quotes or depth). Until an instrument's book has been seen,
``no_book`` decides: ``"trade_flow"`` (default) uses the signed trade-flow imbalance instead, an
exponential average over ``flow_window`` trades of (buy volume - sell volume) / volume, by the
aggressor side (trades with no side count as neither; on bars, a bar's volume counts as bought
when it closed above its open and sold when below); ``"ignore"`` drops the condition;
``"block"`` takes no entry. Intents say which imbalance they used.

The square-off time is ``square_off`` (local ``HH:MM`` in the instrument's calendar time zone) or,
when empty, ``square_off_before_close`` minutes before the session close. A 24/7 calendar (crypto)
has no square-off unless ``square_off`` is set; its session is the UTC day.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Literal

from omnid.calendar import NS_PER_SECOND, parse_hhmm
from omnid.clock import TimeEvent
from omnid.errors import ConfigError
from omnid.model import Bar, Instrument, Position, Side, Trade
from omnid.strategies.base import Indicator, Intents, Strategy, StrategyParams
from omnid.strategies.registry import register

_BUY = Side.BUY
_FLAT = 1e-12  # |net position| at or below this is flat (float residue of partial fills)
_SELL = Side.SELL


class MomentumParams(StrategyParams, frozen=True):
    #: RSI period.
    rsi_period: int = 14
    #: Enter only when RSI is above this.
    rsi_entry: float = 50.0
    #: Exit when RSI falls below this.
    rsi_exit: float = 45.0
    #: Enter only when order-book imbalance (bid-ask size balance, -1..1) is above this.
    imbalance_min: float = 0.0
    #: Book levels the imbalance sums (a top-of-book quote gives level 1 only).
    imbalance_levels: int = 5
    #: Without book data: "trade_flow" (signed trade-flow imbalance), "ignore" the condition, "block".
    no_book: Literal["trade_flow", "ignore", "block"] = "trade_flow"
    #: Trades in the trade-flow imbalance's exponential average.
    flow_window: int = 50
    #: Fixed order size; 0 = the risk gate's sizing rule.
    qty: float = 0.0
    #: Local HH:MM square-off time in the instrument's calendar zone; "" = derive from the close.
    square_off: str = ""
    #: Minutes before the session close to square off when ``square_off`` is empty.
    square_off_before_close: float = 10.0
    #: Stop-loss distance as a fraction of the entry price (0 = none); also feeds risk-per-trade sizing.
    stop_loss_pct: float = 0.0
    #: Take-profit distance as a fraction of the entry price (0 = none).
    take_profit_pct: float = 0.0

    def __post_init__(self) -> None:
        if self.flow_window < 1:
            raise ValueError(f"flow_window must be >= 1, got {self.flow_window}")
        if self.imbalance_levels < 1:
            raise ValueError(f"imbalance_levels must be >= 1, got {self.imbalance_levels}")
        if self.rsi_period < 2:
            raise ValueError(f"rsi_period must be >= 2, got {self.rsi_period}")
        if not 0.0 <= self.rsi_exit <= self.rsi_entry <= 100.0:
            raise ValueError(f"need 0 <= rsi_exit ({self.rsi_exit}) <= rsi_entry ({self.rsi_entry}) <= 100")
        if self.qty < 0 or self.stop_loss_pct < 0 or self.take_profit_pct < 0:
            raise ValueError("qty, stop_loss_pct and take_profit_pct must be >= 0")
        if self.stop_loss_pct >= 1:
            raise ValueError(f"stop_loss_pct is a fraction (0.01 = 1 %), got {self.stop_loss_pct}")
        if self.square_off_before_close < 0:
            raise ValueError("square_off_before_close must be >= 0")
        if self.square_off:
            try:
                parse_hhmm(self.square_off, key="square_off")
            except ConfigError:
                raise ValueError(f"square_off must be HH:MM, got {self.square_off!r}") from None


class _Inst:
    """Per-instrument features and the cached entry window of its current session."""

    __slots__ = ("book_seen", "flow_den", "flow_num", "imbalance", "instrument", "lo", "rsi", "sq",
                 "valid_until", "vwap")

    def __init__(self, instrument: Instrument, vwap: Indicator, rsi: Indicator, imbalance: Indicator) -> None:
        self.instrument = instrument
        self.vwap = vwap
        self.rsi = rsi
        self.imbalance = imbalance
        self.lo = 0  # session open
        self.sq = 0  # square-off time: no entries at or after it, flat by it
        self.valid_until = -1  # recompute the window when a tick reaches this
        self.book_seen = False
        self.flow_num = 0.0  # EWMA of signed traded size
        self.flow_den = 0.0  # EWMA of traded size


@register
class Momentum(Strategy):
    kind = "momentum"
    params_type = MomentumParams

    params: MomentumParams

    def on_start(self) -> Intents:
        p = self.params
        self._insts: dict[str, _Inst] = {}
        for iid in self.instruments:
            inst = self.ctx.instruments[iid]
            self._insts[iid] = _Inst(
                inst,
                self.feature(iid, "vwap"),
                self.feature(iid, f"rsi:{p.rsi_period}"),
                self.feature(iid, f"obi:{p.imbalance_levels}"),
            )
        self._rsi_key = f"rsi_{p.rsi_period}"
        self._flow_alpha = 2.0 / (p.flow_window + 1)
        self._no_book = p.no_book
        self._rsi_entry = p.rsi_entry
        self._position_qty = self.portfolio.position_qty  # bound once: called on every tick
        now = self.clock.now_ns()
        if now > 0:
            for iid, st in self._insts.items():
                self._window(iid, st, now)
        return None

    def _window(self, iid: str, st: _Inst, ts: int) -> None:
        """Compute the session's entry window and arm the square-off timer (once per session)."""
        cal = st.instrument.calendar
        start = cal.session_start(ts)
        bounds = cal.session_bounds(start)
        opened, closes = bounds if bounds is not None else (start, start)
        p = self.params
        if p.square_off:
            sq = cal.local_time_on(start, p.square_off)
        elif cal.always_open:
            sq = closes + 1  # 24/7 with no square-off set: the whole UTC day
        else:
            sq = closes - int(p.square_off_before_close * 60 * NS_PER_SECOND)
        st.lo = opened
        st.sq = min(sq, closes) if not cal.always_open or p.square_off else sq
        st.valid_until = cal.next_session_start(ts)
        if ts < st.sq <= closes:
            self.at(f"square_off:{iid}", st.sq)

    def on_trade(self, trade: Trade) -> Intents:
        # The hot path (scenario a): for a flat instrument whose price is not above VWAP with RSI
        # above the entry level, this is one dict lookup, a portfolio read and a few compares.
        iid = trade.instrument_id
        st = self._insts[iid]
        if not st.book_seen:
            if st.imbalance.value == st.imbalance.value:  # not NaN: book data has arrived
                st.book_seen = True
            else:
                a = self._flow_alpha
                size = trade.size
                side = trade.side
                signed = size if side is _BUY else -size if side is _SELL else 0.0
                st.flow_num += a * (signed - st.flow_num)
                st.flow_den += a * (size - st.flow_den)
        ts = trade.ts_event
        pos = self._position_qty(iid)
        if self.in_flight:
            pos += self.in_flight.get(iid, 0.0)
        price = trade.price
        # Flat, same session, no entry signal: the common case, decided here.
        no_signal = not (price > st.vwap.value and st.rsi.value > self._rsi_entry)
        if pos == 0.0 and ts < st.valid_until and no_signal:
            return None
        return self._decide(iid, st, price, ts, pos)

    def trade_hook(self, instrument_id: str) -> Callable[[Trade], Intents]:
        """:meth:`on_trade` for one instrument, with its state and the hot reads bound once (the
        engine asks for it when it builds its dispatch lists, after :meth:`on_start`). A subclass
        that overrides :meth:`on_trade`, or an instrument this strategy has no state for, gets
        :meth:`on_trade` itself."""
        insts: dict[str, _Inst] | None = getattr(self, "_insts", None)
        if type(self).on_trade is not Momentum.on_trade or insts is None or instrument_id not in insts:
            return self.on_trade
        iid = instrument_id
        st = insts[iid]
        imbalance = st.imbalance
        vwap = st.vwap
        rsi = st.rsi
        a = self._flow_alpha
        rsi_entry = self._rsi_entry
        rsi_exit = self.params.rsi_exit
        imbalance_min = self.params.imbalance_min
        flow_gate = self._no_book == "trade_flow"
        position_qty = self._position_qty
        positions: Mapping[str, Position] | None = getattr(self.portfolio, "positions_by_id", None)
        in_flight = self.in_flight
        decide = self._decide

        def on_trade(trade: Trade) -> Intents:
            if not st.book_seen:
                if imbalance.value == imbalance.value:  # not NaN: book data has arrived
                    st.book_seen = True
                else:
                    size = trade.size
                    side = trade.side
                    signed = size if side is _BUY else -size if side is _SELL else 0.0
                    st.flow_num += a * (signed - st.flow_num)
                    st.flow_den += a * (size - st.flow_den)
            ts = trade.ts_event
            if positions is not None:  # the portfolio's live Position, without a method call
                held = positions.get(iid)
                pos = held.qty if held is not None else 0.0
            else:
                pos = position_qty(iid)
            if in_flight:
                pos += in_flight.get(iid, 0.0)
            price = trade.price
            if ts < st.valid_until:
                if pos == 0.0:
                    if not (price > vwap.value and rsi.value > rsi_entry):
                        return None
                    if flow_gate and not st.book_seen:  # _decide's trade-flow test, inline
                        den = st.flow_den
                        if not (den > 0.0 and st.flow_num / den > imbalance_min):
                            return None
                # Long, before the square-off, neither exit signal: _decide's own answer, inline.
                elif pos > _FLAT and ts < st.sq and not price < vwap.value and not rsi.value < rsi_exit:
                    return None
            return decide(iid, st, price, ts, pos)

        return on_trade

    def on_bar(self, bar: Bar) -> Intents:
        iid = bar.instrument_id
        st = self._insts[iid]
        if not st.book_seen:
            if st.imbalance.value == st.imbalance.value:
                st.book_seen = True
            else:
                a = self._flow_alpha
                v = bar.volume
                signed = v if bar.close > bar.open else -v if bar.close < bar.open else 0.0
                st.flow_num += a * (signed - st.flow_num)
                st.flow_den += a * (v - st.flow_den)
        return self._decide(iid, st, bar.close, bar.ts_event, self.net_qty(iid))

    def on_price(self, instrument_id: str, price: float, ts: int) -> Intents:
        st = self._insts[instrument_id]
        if not st.book_seen and st.imbalance.value == st.imbalance.value:
            st.book_seen = True
        return self._decide(instrument_id, st, price, ts, self.net_qty(instrument_id))

    def _decide(self, iid: str, st: _Inst, price: float, ts: int, pos: float) -> Intents:
        """``pos`` is the net position (filled plus in flight)."""
        if ts >= st.valid_until:
            self._window(iid, st, ts)
        vwap = st.vwap.value
        rsi = st.rsi.value
        p = self.params
        if pos > _FLAT:
            if ts >= st.sq:
                return self._close(iid, "square-off time reached", price, vwap, rsi, ts)
            if price < vwap:
                return self._close(iid, f"price {price:.6g} fell below VWAP {vwap:.6g}", price, vwap, rsi, ts)
            if rsi < p.rsi_exit:
                return self._close(iid, f"RSI {rsi:.4g} fell below {p.rsi_exit:g}", price, vwap, rsi, ts)
            return None
        if pos < -_FLAT:  # long-only: a short here is not this strategy's; the square-off timer flattens it
            return None
        if not (price > vwap and rsi > p.rsi_entry):  # NaN while warming up fails too
            return None
        if st.book_seen:
            imb = st.imbalance.value
            what = "book imbalance"
        elif self._no_book == "trade_flow":
            imb = st.flow_num / st.flow_den if st.flow_den > 0.0 else math.nan
            what = "trade-flow imbalance"
        elif self._no_book == "ignore":
            imb = math.inf
            what = ""
        else:
            return None
        if not imb > p.imbalance_min:
            return None
        if not st.lo <= ts < st.sq or not self.may_enter(iid):
            return None
        numbers = {"price": price, "vwap": vwap, self._rsi_key: rsi}
        because = f"price {price:.6g} above session VWAP {vwap:.6g}, RSI {rsi:.4g} > {p.rsi_entry:g}"
        if what:
            numbers["imbalance"] = imb
            because += f", {what} {imb:.3g} > {p.imbalance_min:g}"
        return [
            self.intent(
                iid,
                Side.BUY,
                f"{because}: enter long",
                numbers,
                qty=p.qty,
                stop_loss=price * (1.0 - p.stop_loss_pct) if p.stop_loss_pct else None,
                take_profit=price * (1.0 + p.take_profit_pct) if p.take_profit_pct else None,
            )
        ]

    def _close(self, iid: str, why: str, price: float, vwap: float, rsi: float, ts: int) -> Intents:
        sq = float(self._insts[iid].sq)
        numbers = {"price": price, "vwap": vwap, self._rsi_key: rsi, "square_off_ns": sq}
        intent = self.close(iid, f"{why}: exit long", numbers)
        return [intent] if intent is not None else None

    def on_timer(self, event: TimeEvent) -> Intents:
        _, _, tail = event.name.partition("square_off:")
        st = self._insts.get(tail)
        if st is None:
            return None
        intent = self.close(
            tail,
            "square-off time reached: flatten intraday position",
            {"square_off_ns": float(st.sq), "vwap": st.vwap.value, self._rsi_key: st.rsi.value},
        )
        return [intent] if intent is not None else None

    def state(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for iid, st in getattr(self, "_insts", {}).items():
            out[iid] = {
                "vwap": _num(st.vwap.value),
                "rsi": _num(st.rsi.value),
                "imbalance": _num(st.imbalance.value),
                "square_off_ns": st.sq,
            }
        return out


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None

