"""Binance spot wire formats, decoded with msgspec straight into omnid's domain model.

Each payload is a typed Struct whose field names are Binance's one-letter keys; decimal strings
become floats on the way in (``strict=False``). Field layouts follow binance-spot-api-docs:
web-socket-streams.md (trade, aggTrade, bookTicker, depthUpdate, kline, serverShutdown, the
combined-stream envelope), rest-api market-data-endpoints.md (depth, klines, historicalTrades,
aggTrades), general-endpoints.md
(exchangeInfo) and filters.md (PRICE_FILTER, LOT_SIZE, NOTIONAL, MIN_NOTIONAL).
Exchange timestamps are milliseconds; everything leaving this module is integer nanoseconds.
"""

from __future__ import annotations

from typing import Any

import msgspec

from omnid.errors import DataError
from omnid.model import AssetClass, Bar, BookDelta, BookLevel, BookSnapshot, Instrument, Quote, Side, Trade
from omnid.venues.binance.config import VENUE

MS = 1_000_000  # ns per ms

INTERVAL_MS: dict[str, int] = {
    "1s": 1_000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
    "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "8h": 28_800_000,
    "12h": 43_200_000, "1d": 86_400_000, "3d": 259_200_000, "1w": 604_800_000,
}


_IDS: dict[str, str] = {}
_BUY, _SELL = Side.BUY, Side.SELL


def instrument_id(symbol: str) -> str:
    """``SYMBOL.BINANCE`` (cached: this runs for every message)."""
    iid = _IDS.get(symbol)
    if iid is None:
        iid = _IDS[symbol] = f"{symbol.upper()}.{VENUE}"
    return iid


# --------------------------------------------------------------------------------------------------
# Stream payloads (web-socket-streams.md)


class Envelope(msgspec.Struct):
    """``{"stream": "<name>", "data": <payload>}`` of a combined stream; control replies have no stream."""

    stream: str = ""
    data: msgspec.Raw = msgspec.Raw(b"null")
    id: int | str | None = None
    result: Any = None
    code: int | None = None
    msg: str = ""


class WireTrade(msgspec.Struct):
    E: int
    s: str
    t: int
    p: float
    q: float
    T: int
    m: bool


class WireAggTrade(msgspec.Struct):
    E: int
    s: str
    a: int
    p: float
    q: float
    T: int
    m: bool


class WireBookTicker(msgspec.Struct):
    u: int
    s: str
    b: float
    B: float
    a: float
    A: float


class WireDepthUpdate(msgspec.Struct):
    E: int
    s: str
    U: int
    u: int
    b: list[tuple[float, float]]
    a: list[tuple[float, float]]


class WireKline(msgspec.Struct):
    t: int
    T: int
    s: str
    i: str
    o: float
    c: float
    h: float
    l: float  # noqa: E741 - Binance's key
    v: float
    x: bool


class WireKlineEvent(msgspec.Struct):
    E: int
    s: str
    k: WireKline


class WireEvent(msgspec.Struct):
    """Just the event type, for messages recognised by ``e`` (serverShutdown)."""

    e: str = ""
    E: int = 0


_trade_dec = msgspec.json.Decoder(WireTrade, strict=False)
_agg_dec = msgspec.json.Decoder(WireAggTrade, strict=False)
_bt_dec = msgspec.json.Decoder(WireBookTicker, strict=False)
_depth_dec = msgspec.json.Decoder(WireDepthUpdate, strict=False)
_kline_dec = msgspec.json.Decoder(WireKlineEvent, strict=False)
_event_dec = msgspec.json.Decoder(WireEvent, strict=False)
envelope_decoder = msgspec.json.Decoder(Envelope)


def trade_from(w: WireTrade, ts_init: int) -> Trade:
    return Trade(instrument_id(w.s), w.p, w.q, _SELL if w.m else _BUY, w.T * MS, ts_init, str(w.t))


def agg_trade_from(w: WireAggTrade, ts_init: int) -> Trade:
    return Trade(instrument_id(w.s), w.p, w.q, _SELL if w.m else _BUY, w.T * MS, ts_init, str(w.a))


def quote_from(w: WireBookTicker, ts_init: int) -> Quote:
    """bookTicker carries no event time; ``ts_event`` is when omnid received it."""
    return Quote(instrument_id(w.s), w.b, w.a, w.B, w.A, ts_init, ts_init)


def delta_from(w: WireDepthUpdate, ts_init: int) -> BookDelta:
    return BookDelta(
        instrument_id(w.s),
        [BookLevel(p, q) for p, q in w.b],
        [BookLevel(p, q) for p, q in w.a],
        w.E * MS,
        ts_init,
        w.U,
        w.u,
    )


def bar_from(w: WireKlineEvent, ts_init: int) -> tuple[Bar, bool]:
    """The kline as a Bar, and whether it is closed (only closed bars go to the engine)."""
    k = w.k
    interval = INTERVAL_MS.get(k.i, k.T + 1 - k.t) * MS
    bar = Bar(instrument_id(k.s), interval, k.t * MS, k.o, k.h, k.l, k.c, k.v, (k.T + 1) * MS, ts_init)
    return bar, k.x


def decode_trade(raw: bytes | msgspec.Raw, ts_init: int) -> Trade:
    return trade_from(_trade_dec.decode(raw), ts_init)


def decode_agg_trade(raw: bytes | msgspec.Raw, ts_init: int) -> Trade:
    return agg_trade_from(_agg_dec.decode(raw), ts_init)


def decode_book_ticker(raw: bytes | msgspec.Raw, ts_init: int) -> Quote:
    return quote_from(_bt_dec.decode(raw), ts_init)


def decode_depth(raw: bytes | msgspec.Raw, ts_init: int) -> BookDelta:
    return delta_from(_depth_dec.decode(raw), ts_init)


def decode_kline(raw: bytes | msgspec.Raw, ts_init: int) -> tuple[Bar, bool]:
    return bar_from(_kline_dec.decode(raw), ts_init)


# One-pass decoders for a whole combined-stream frame whose stream (so payload type) is known.
class TradeFrame(msgspec.Struct):
    stream: str
    data: WireTrade


class AggTradeFrame(msgspec.Struct):
    stream: str
    data: WireAggTrade


class BookTickerFrame(msgspec.Struct):
    stream: str
    data: WireBookTicker


class DepthFrame(msgspec.Struct):
    stream: str
    data: WireDepthUpdate


class KlineFrame(msgspec.Struct):
    stream: str
    data: WireKlineEvent


trade_frame_dec = msgspec.json.Decoder(TradeFrame, strict=False)
agg_frame_dec = msgspec.json.Decoder(AggTradeFrame, strict=False)
book_ticker_frame_dec = msgspec.json.Decoder(BookTickerFrame, strict=False)
depth_frame_dec = msgspec.json.Decoder(DepthFrame, strict=False)
kline_frame_dec = msgspec.json.Decoder(KlineFrame, strict=False)


def decode_event_type(raw: str | bytes | msgspec.Raw) -> str:
    return _event_dec.decode(raw).e


# --------------------------------------------------------------------------------------------------
# REST payloads (market-data-endpoints.md, general-endpoints.md, filters.md)


class WireDepthSnapshot(msgspec.Struct):
    lastUpdateId: int
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]


_snap_dec = msgspec.json.Decoder(WireDepthSnapshot, strict=False)
_KlineRow = tuple[int, float, float, float, float, float, int, Any, Any, Any, Any, Any]
_klines_dec = msgspec.json.Decoder(list[_KlineRow], strict=False)


def decode_depth_snapshot(raw: bytes, symbol: str, ts_init: int) -> BookSnapshot:
    try:
        w = _snap_dec.decode(raw)
    except msgspec.DecodeError as exc:
        raise DataError(f"binance depth snapshot for {symbol} is malformed: {exc}", symbol=symbol) from None
    return BookSnapshot(
        instrument_id(symbol),
        [BookLevel(p, q) for p, q in w.bids],
        [BookLevel(p, q) for p, q in w.asks],
        ts_init,
        ts_init,
        w.lastUpdateId,
    )


class WireHistTrade(msgspec.Struct):
    """One row of ``/api/v3/historicalTrades`` (and ``/api/v3/trades``)."""

    id: int
    price: float
    qty: float
    time: int
    isBuyerMaker: bool


class WireAggRow(msgspec.Struct):
    """One row of ``/api/v3/aggTrades``: the aggTrade stream's keys, without ``e``/``E``/``s``."""

    a: int
    p: float
    q: float
    T: int
    m: bool


_hist_dec = msgspec.json.Decoder(list[WireHistTrade], strict=False)
_agg_rows_dec = msgspec.json.Decoder(list[WireAggRow], strict=False)


def decode_historical_trades(raw: bytes, symbol: str, ts_init: int) -> list[tuple[int, Trade]]:
    """``[(trade id, Trade)]`` in the venue's order (ascending ids), as the ``@trade`` stream would give."""
    try:
        rows = _hist_dec.decode(raw)
    except msgspec.DecodeError as exc:
        raise DataError(f"binance historicalTrades for {symbol} are malformed: {exc}",
                        symbol=symbol) from None
    iid = instrument_id(symbol)
    return [(r.id, Trade(iid, r.price, r.qty, _SELL if r.isBuyerMaker else _BUY, r.time * MS, ts_init,
                         str(r.id))) for r in rows]


def decode_agg_trades(raw: bytes, symbol: str, ts_init: int) -> list[tuple[int, Trade]]:
    """``[(aggregate id, Trade)]`` in the venue's order, as the ``@aggTrade`` stream would give."""
    try:
        rows = _agg_rows_dec.decode(raw)
    except msgspec.DecodeError as exc:
        raise DataError(f"binance aggTrades for {symbol} are malformed: {exc}", symbol=symbol) from None
    iid = instrument_id(symbol)
    return [(r.a, Trade(iid, r.p, r.q, _SELL if r.m else _BUY, r.T * MS, ts_init, str(r.a))) for r in rows]


def decode_klines(raw: bytes, symbol: str, interval: str, ts_init: int) -> list[Bar]:
    """REST klines rows ``[openTime, o, h, l, c, v, closeTime, ...]`` as Bars."""
    try:
        rows = _klines_dec.decode(raw)
    except msgspec.DecodeError as exc:
        raise DataError(f"binance klines for {symbol} are malformed: {exc}", symbol=symbol) from None
    iid = instrument_id(symbol)
    interval_ns = INTERVAL_MS[interval] * MS
    return [
        Bar(iid, interval_ns, r[0] * MS, r[1], r[2], r[3], r[4], r[5], (r[6] + 1) * MS, ts_init) for r in rows
    ]


class WireFilter(msgspec.Struct, forbid_unknown_fields=False):
    filterType: str
    tickSize: float = 0.0
    stepSize: float = 0.0
    minQty: float = 0.0
    minNotional: float = 0.0


class WireSymbol(msgspec.Struct):
    symbol: str
    status: str
    baseAsset: str
    quoteAsset: str
    filters: list[WireFilter]


class WireRateLimit(msgspec.Struct):
    rateLimitType: str
    interval: str
    intervalNum: int
    limit: int


class WireExchangeInfo(msgspec.Struct):
    symbols: list[WireSymbol]
    rateLimits: list[WireRateLimit] = msgspec.field(default_factory=list)


_info_dec = msgspec.json.Decoder(WireExchangeInfo, strict=False)


class SymbolInfo(msgspec.Struct, frozen=True):
    """An instrument and its Binance trading status (``TRADING``, ``HALT``, ``BREAK``)."""

    instrument: Instrument
    status: str

    @property
    def trading(self) -> bool:
        return self.status == "TRADING"


def decode_exchange_info(raw: bytes) -> tuple[dict[str, SymbolInfo], int | None]:
    """Instruments by symbol, and the 1-minute REQUEST_WEIGHT limit if the venue states one."""
    try:
        info = _info_dec.decode(raw)
    except msgspec.DecodeError as exc:
        raise DataError(f"binance exchangeInfo is malformed: {exc}") from None
    out: dict[str, SymbolInfo] = {}
    for s in info.symbols:
        f = {x.filterType: x for x in s.filters}
        price, lot = f.get("PRICE_FILTER"), f.get("LOT_SIZE")
        notional = f.get("NOTIONAL") or f.get("MIN_NOTIONAL")
        inst = Instrument(
            symbol=s.symbol,
            venue=VENUE,
            asset_class=AssetClass.CRYPTO,
            quote_currency=s.quoteAsset,
            base_currency=s.baseAsset,
            tick_size=price.tickSize if price and price.tickSize > 0 else 1e-8,
            lot_size=lot.stepSize if lot and lot.stepSize > 0 else 1e-8,
            min_qty=lot.minQty if lot else 0.0,
            min_notional=notional.minNotional if notional else 0.0,
        )
        out[s.symbol] = SymbolInfo(inst, s.status)
    limit = next(
        (r.limit for r in info.rateLimits
         if r.rateLimitType == "REQUEST_WEIGHT" and r.interval == "MINUTE" and r.intervalNum == 1),
        None,
    )
    return out, limit
