"""omnid orders → Binance new-order parameters, rounded and checked before they leave.

Binance rejects an order that breaks a symbol filter with -1013 (filters.md: PRICE_FILTER tick
size, LOT_SIZE step and minimum, NOTIONAL/MIN_NOTIONAL minimum value); checking here first saves a
round trip and a request weight, and gives a reason a human can read. Order types and time in force
follow enums.md: MARKET, LIMIT, LIMIT_MAKER, STOP_LOSS(_LIMIT), TAKE_PROFIT(_LIMIT); GTC, IOC, FOK.
"""

from __future__ import annotations

from omnid.errors import RejectedError
from omnid.model import Instrument, Order, OrderType, Side, TimeInForce

_TIF = {TimeInForce.GTC: "GTC", TimeInForce.IOC: "IOC", TimeInForce.FOK: "FOK"}


def stop_type(side: Side, stop: float, last_price: float | None, *, limit: bool) -> str:
    """Binance's stop flavour for "trigger when the price reaches ``stop``".

    A BUY STOP_LOSS triggers as the price rises to the stop and a BUY TAKE_PROFIT as it falls to it
    (and the reverse for SELL), so the type follows from where the stop sits against the market.
    Without a last price, a stop is assumed to be protective (STOP_LOSS).
    """
    take_profit = last_price is not None and (
        (side is Side.BUY and stop < last_price) or (side is Side.SELL and stop > last_price)
    )
    base = "TAKE_PROFIT" if take_profit else "STOP_LOSS"
    return f"{base}_LIMIT" if limit else base


def order_params(order: Order, inst: Instrument, *, last_price: float | None = None) -> dict[str, str]:
    """The POST /api/v3/order parameters for ``order``; raises :class:`RejectedError` if it cannot pass."""
    cid = order.client_order_id

    def reject(why: str, **ctx: object) -> RejectedError:
        return RejectedError(f"binance order {cid} ({inst.symbol}): {why}", client_order_id=cid,
                             symbol=inst.symbol, **ctx)

    if not cid or len(cid) > 36:
        raise reject("client order id must be 1-36 characters (newClientOrderId)")
    if order.side not in (Side.BUY, Side.SELL):
        raise reject(f"side must be buy or sell, got {order.side.value}")
    qty = inst.round_qty(order.qty)
    if qty <= 0:
        raise reject(f"quantity {order.qty} rounds to 0 at lot size {inst.lot_size}", qty=order.qty)
    if qty < inst.min_qty * (1 - 1e-9):
        raise reject(f"quantity {qty} is below the minimum {inst.min_qty} (LOT_SIZE)", qty=qty)
    p: dict[str, str] = {
        "symbol": inst.symbol,
        "side": order.side.value.upper(),
        "quantity": inst.format_qty(qty),
        "newClientOrderId": cid,
        "newOrderRespType": "RESULT",
    }
    price: float | None = None
    if order.order_type in (OrderType.LIMIT, OrderType.LIMIT_MAKER, OrderType.STOP_LIMIT):
        if order.limit_price is None or order.limit_price <= 0:
            raise reject(f"{order.order_type.value} order needs a positive limit price")
        price = inst.round_price(order.limit_price, order.side)
        if price <= 0:
            raise reject(f"limit price {order.limit_price} rounds to 0 at tick {inst.tick_size}")
        p["price"] = inst.format_price(price)
    if order.order_type in (OrderType.STOP, OrderType.STOP_LIMIT):
        if order.stop_price is None or order.stop_price <= 0:
            raise reject(f"{order.order_type.value} order needs a positive stop price")
        p["stopPrice"] = inst.format_price(inst.round_price(order.stop_price))
    if order.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        tif = _TIF.get(order.tif)
        if tif is None:
            raise reject(f"time in force {order.tif.value} is not supported on Binance spot")
        p["timeInForce"] = tif
    match order.order_type:
        case OrderType.MARKET:
            p["type"] = "MARKET"
        case OrderType.LIMIT:
            p["type"] = "LIMIT"
        case OrderType.LIMIT_MAKER:
            p["type"] = "LIMIT_MAKER"
        case OrderType.STOP_LIMIT:
            p["type"] = stop_type(order.side, order.stop_price or 0.0, last_price, limit=True)
        case OrderType.STOP:
            p["type"] = stop_type(order.side, order.stop_price or 0.0, last_price, limit=False)
    ref = price if price is not None else last_price
    if ref is not None and inst.min_notional > 0 and qty * ref < inst.min_notional * (1 - 1e-9):
        raise reject(f"value {qty * ref:.8g} is below the minimum notional {inst.min_notional} (NOTIONAL)",
                     notional=qty * ref)
    return p
