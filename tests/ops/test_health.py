"""Health endpoints: /healthz always 200 while the loop runs; /readyz 503 with reasons until ready."""

from __future__ import annotations

from typing import Any

import aiohttp
from omnid.ops.config import HttpConfig
from omnid.ops.health import HealthServer, Readiness


async def test_healthz_and_readyz() -> None:
    state: dict[str, Any] = {"ready": False, "reasons": ["feed sim is connecting"]}

    def check() -> tuple[bool, list[str], dict[str, Any]]:
        return state["ready"], state["reasons"], {"storage": {"backlog": 3}}

    srv = HealthServer(HttpConfig(port=0), Readiness(check), lambda: {"uptime_s": 1.0})
    await srv.start()
    try:
        base = f"http://127.0.0.1:{srv.port}"
        async with aiohttp.ClientSession() as s:
            async with s.get(base + "/healthz") as r:
                assert r.status == 200 and (await r.json())["ok"] is True
            async with s.get(base + "/readyz") as r:
                body = await r.json()
                assert r.status == 503 and body["reasons"] == ["feed sim is connecting"]
            state.update(ready=True, reasons=[])
            async with s.get(base + "/readyz") as r:
                assert r.status == 200 and (await r.json())["storage"]["backlog"] == 3
            state["ready"] = None  # a broken check
            state.pop("reasons")
            async with s.get(base + "/readyz") as r:
                assert r.status == 503 and "check failed" in (await r.json())["reasons"][0]
    finally:
        await srv.close()
