"""Fixtures: a running local Binance peer and clients pointed at it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from omnid.venues.binance.config import BinanceConfig, Credentials
from omnid.venues.binance.rest import BinanceRest

from tests.peers.binance_peer import API_KEY, SECRET, BinancePeer


@pytest.fixture
async def peer() -> AsyncIterator[BinancePeer]:
    p = BinancePeer(ping_interval=0.5)
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def peer_config(peer: BinancePeer, **kw: object) -> BinanceConfig:
    base: dict[str, object] = {
        "enabled": True, "rest_url": peer.rest_url, "ws_url": peer.ws_url, "ws_api_url": peer.ws_api_url,
        "symbols": ["BTCUSDT"], "reconnect_initial_s": 0.02, "reconnect_max_s": 0.1,
        "silence_timeout_s": 5.0,
    }
    base.update(kw)
    return BinanceConfig(**base)  # type: ignore[arg-type]


def peer_rest(peer: BinancePeer, session: aiohttp.ClientSession, **kw: object) -> BinanceRest:
    return BinanceRest(session, peer.rest_url, credentials=Credentials(API_KEY, SECRET), **kw)  # type: ignore[arg-type]


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for ``cond`` (polling the loop); fail the test with a clear message on timeout."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)
