"""A small, honest PortfolioView for the risk tests: positions, cash and equity move with fills and
marks exactly as a cash account's would (it is a protocol stand-in, not a mock of the real ledger)."""

from __future__ import annotations

import itertools

from omnid.model import Fill, Instrument, IntentAction, Order, OrderIntent, Position


class FakePortfolio:
    """Net positions with average prices; equity = cash + Σ qty × last × multiplier."""

    def __init__(self, cash: float, instruments: dict[str, Instrument]) -> None:
        self._cash = cash
        self._instruments = instruments
        self._pos: dict[str, Position] = {}
        self._day_start = cash
        self._peak = cash

    # -- PortfolioView ---------------------------------------------------------------------------------
    def equity(self) -> float:
        return self._cash + sum(
            p.qty * p.last_price * self._instruments[p.instrument_id].multiplier for p in self._pos.values()
        )

    def cash(self) -> float:
        return self._cash

    def position(self, instrument_id: str) -> Position | None:
        return self._pos.get(instrument_id)

    def position_qty(self, instrument_id: str) -> float:
        p = self._pos.get(instrument_id)
        return p.qty if p is not None else 0.0

    def open_position_count(self) -> int:
        return sum(1 for p in self._pos.values() if p.qty != 0.0)

    def exposure(self, instrument_id: str) -> float:
        p = self._pos.get(instrument_id)
        if p is None:
            return 0.0
        return abs(p.qty) * p.last_price * self._instruments[instrument_id].multiplier

    def gross_exposure(self) -> float:
        return sum(self.exposure(i) for i in self._pos)

    def daily_pnl(self) -> float:
        return self.equity() - self._day_start

    def peak_equity(self) -> float:
        return self._peak

    # -- driving it -------------------------------------------------------------------------------------
    def apply(self, fill: Fill) -> None:
        mult = self._instruments[fill.instrument_id].multiplier
        p = self._pos.setdefault(fill.instrument_id, Position(instrument_id=fill.instrument_id))
        signed = fill.side.sign * fill.qty
        self._cash -= signed * fill.price * mult + fill.commission
        new = p.qty + signed
        if p.qty == 0.0 or (p.qty > 0) != (new > 0):
            p.avg_price = fill.price
        elif abs(new) > abs(p.qty):
            p.avg_price = (p.avg_price * abs(p.qty) + fill.price * fill.qty) / abs(new)
        p.qty = 0.0 if abs(new) < 1e-12 else new
        p.last_price = fill.price
        if p.qty == 0.0:
            del self._pos[fill.instrument_id]
        self._peak = max(self._peak, self.equity())

    def mark(self, instrument_id: str, price: float) -> None:
        p = self._pos.get(instrument_id)
        if p is not None:
            p.last_price = price
        self._peak = max(self._peak, self.equity())

    def start_day(self) -> None:
        self._day_start = self.equity()


_ids = itertools.count(1)


def order_for(intent: OrderIntent) -> Order:
    """The Order an engine would build from an approved intent."""
    n = next(_ids)
    return Order(
        client_order_id=f"o{n}",
        instrument_id=intent.instrument_id,
        strategy_id=intent.strategy_id,
        side=intent.side,
        qty=intent.qty,
        order_type=intent.order_type,
        limit_price=intent.limit_price,
        action=intent.action,
    )


def fill_for(order: Order, price: float, qty: float | None = None, commission: float = 0.0) -> Fill:
    q = order.qty if qty is None else qty
    return Fill(
        fill_id=f"f{next(_ids)}",
        client_order_id=order.client_order_id,
        instrument_id=order.instrument_id,
        strategy_id=order.strategy_id,
        side=order.side,
        qty=q,
        price=price,
        commission=commission,
    )


def is_close(intent: OrderIntent) -> bool:
    return intent.action is IntentAction.CLOSE
