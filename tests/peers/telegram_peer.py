"""A local Telegram-Bot-API-shaped HTTP peer (aiohttp) for the alert tests.

Bot API facts it follows (core.telegram.org/bots/api, "Making requests" and "sendMessage"):
- Requests go to ``/bot<token>/<method>``; ``sendMessage`` takes ``chat_id`` and ``text`` (as JSON,
  form data or a query string); text must be 1-4096 characters after entity parsing.
- Every reply is JSON with a boolean ``ok``. Success: ``{"ok": true, "result": <Message>}``.
  Failure: ``{"ok": false, "error_code": <int>, "description": "<str>"}`` plus, for flood
  control, ``"parameters": {"retry_after": <seconds>}`` (ResponseParameters) with HTTP 429.
- A wrong token answers 401 ``Unauthorized``; an unknown chat 400 ``Bad Request: chat not found``.

Scripted failures: ``fail_next(status, retry_after=None)`` queues error replies for the next
requests, so tests can drive 429s and 5xx.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web


class TelegramPeer:
    def __init__(self, token: str = "123456:TEST-token-abcdef", chat_id: str = "42") -> None:
        self.token = token
        self.chat_id = chat_id
        self.messages: list[dict[str, Any]] = []
        self.requests: list[tuple[float, str]] = []  # (monotonic time, path)
        self._script: list[tuple[int, float | None]] = []
        self._runner: web.AppRunner | None = None
        self.url = ""
        self._next_id = 1

    def fail_next(self, status: int, retry_after: float | None = None, times: int = 1) -> None:
        self._script.extend([(status, retry_after)] * times)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._method)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _method(self, request: web.Request) -> web.Response:
        self.requests.append((time.monotonic(), request.path))
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        method = request.match_info["method"]
        if method != "sendMessage":
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        if request.content_type == "application/json":
            params: dict[str, Any] = await request.json()
        else:
            params = dict(await request.post()) or dict(request.query)
        if self._script:
            status, retry_after = self._script.pop(0)
            if status == 429:
                body: dict[str, Any] = {
                    "ok": False,
                    "error_code": 429,
                    "description": f"Too Many Requests: retry after {retry_after:g}",
                    "parameters": {"retry_after": retry_after},
                }
            else:
                body = {"ok": False, "error_code": status, "description": "Internal Server Error"}
            return web.json_response(body, status=status)
        text = str(params.get("text", ""))
        if str(params.get("chat_id")) != self.chat_id:
            return web.json_response(
                {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}, status=400
            )
        if not 1 <= len(text) <= 4096:
            return web.json_response(
                {"ok": False, "error_code": 400, "description": "Bad Request: message text is empty"}, status=400
            )
        self.messages.append(params)
        msg_id = self._next_id
        self._next_id += 1
        return web.json_response(
            {
                "ok": True,
                "result": {
                    "message_id": msg_id,
                    "date": int(time.time()),
                    "chat": {"id": int(self.chat_id), "type": "private"},
                    "text": text,
                },
            }
        )


class WebhookPeer:
    """A generic JSON webhook receiver (Slack/Discord-like: 200 on success, 429 + Retry-After)."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self._script: list[tuple[int, float | None]] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    def fail_next(self, status: int, retry_after: float | None = None, times: int = 1) -> None:
        self._script.extend([(status, retry_after)] * times)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _hook(self, request: web.Request) -> web.Response:
        if self._script:
            status, retry_after = self._script.pop(0)
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
            return web.Response(status=status, text="slow down", headers=headers)
        self.payloads.append(await request.json())
        return web.Response(status=200, text="ok")
