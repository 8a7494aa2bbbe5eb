"""Health endpoints for monitors, on loopback: ``/healthz`` (alive) and ``/readyz`` (trading).

``/healthz`` answers 200 while the event loop turns (an answer at all proves that). ``/readyz``
answers 200 only when trading is enabled, every feed is connected and recently heard from, and
storage keeps up (backlog under the limit); otherwise 503 with the reasons, so a monitor's log
says what is wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from omnid.ops.config import HttpConfig


class Readiness:
    """What ``/readyz`` needs from the daemon: a function returning (ready, reasons, detail)."""

    def __init__(self, check: Callable[[], tuple[bool, list[str], dict[str, Any]]]) -> None:
        self.check = check


class HealthServer:
    def __init__(self, cfg: HttpConfig, readiness: Readiness, alive: Callable[[], dict[str, Any]]) -> None:
        self.cfg = cfg
        self.readiness = readiness
        self.alive = alive
        self.port: int | None = None
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        return app

    async def start(self) -> None:
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.cfg.host, self.cfg.port, reuse_address=True)
        await site.start()
        self._runner = runner
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self.cfg.port

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"ok": True, **self.alive()})

    async def _readyz(self, _request: web.Request) -> web.Response:
        try:
            ready, reasons, detail = self.readiness.check()
        except Exception as exc:  # a broken check must say so, not crash the endpoint
            return web.json_response({"ready": False, "reasons": [f"check failed: {exc}"]}, status=503)
        return web.json_response({"ready": ready, "reasons": reasons, **detail}, status=200 if ready else 503)
