"""Build the Binance clients from config: what the daemon calls to trade on Binance.

    broker = build_broker(cfg.binance, session=session, base_dir=cfg.data_dir)   # refuses bad keys
    engine.manager.router.add(broker)
    await broker.start()        # server time, exchangeInfo filters, user stream, reconcile

Credentials are loaded here, once, so a missing key or a credentials file readable by others stops
the start-up with a :class:`~omnid.errors.ConfigError` that names the problem.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import aiohttp

from omnid.model import MarketEvent
from omnid.venues.binance.broker import BinanceBroker
from omnid.venues.binance.config import BinanceConfig, Credentials, load_credentials
from omnid.venues.binance.feed import BinanceFeed, TradeGap, backoff_policy
from omnid.venues.binance.lastids import FILE_NAME
from omnid.venues.binance.rest import BinanceRest


def build_rest(cfg: BinanceConfig, session: aiohttp.ClientSession, credentials: Credentials | None = None
               ) -> BinanceRest:
    return BinanceRest(session, cfg.urls[0], credentials=credentials, recv_window_ms=cfg.recv_window_ms,
                       weight_limit_1m=cfg.weight_limit_1m, weight_headroom=cfg.weight_headroom,
                       timeout_s=cfg.request_timeout_s)


def build_feed(cfg: BinanceConfig, on_event: Callable[[MarketEvent], None], *,
               session: aiohttp.ClientSession, data_dir: Path | None = None,
               on_trade_gap: Callable[[TradeGap], None] | None = None) -> BinanceFeed:
    """The market-data feed; with ``data_dir`` its last trade ids outlive a restart (see
    :mod:`omnid.venues.binance.lastids`), and ``on_trade_gap`` hears of every lost id range."""
    retry = backoff_policy(cfg.reconnect_initial_s, cfg.reconnect_max_s,
                           max_attempts=cfg.reconnect_max_attempts)
    last_ids = data_dir / FILE_NAME if data_dir is not None else None
    return BinanceFeed(cfg, on_event, session=session, rest=build_rest(cfg, session), retry=retry,
                       last_ids=last_ids, on_trade_gap=on_trade_gap)


def build_broker(
    cfg: BinanceConfig,
    *,
    session: aiohttp.ClientSession,
    base_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    last_price: Callable[[str], float | None] | None = None,
) -> BinanceBroker:
    """The execution client (not started). Raises ConfigError when the keys are missing or exposed."""
    creds = load_credentials(cfg, env=env, base_dir=base_dir)
    return BinanceBroker(cfg, build_rest(cfg, session, creds), creds, session=session, last_price=last_price)
