"""Admin socket: mode 0600, one reply per line, errors for bad input, many clients, client errors."""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from omnid.errors import FatalError, RejectedError
from omnid.ops.admin import AdminProtocolError, AdminServer, DaemonNotRunning, request
from omnid.ops.protocol import PROTOCOL_VERSION, AdminRequest


async def _status(req: AdminRequest) -> Any:
    return {"ok": "yes", "strategy": req.strategy}


async def _reject(req: AdminRequest) -> Any:
    raise RejectedError(f"no strategy {req.strategy!r}")


async def _fail(req: AdminRequest) -> Any:
    raise FatalError("broken")


async def _crash(req: AdminRequest) -> Any:
    return 1 / 0


async def _slow(req: AdminRequest) -> Any:
    await asyncio.sleep(0.2)
    return "slow"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[AdminServer]:
    srv = AdminServer(
        tmp_path / "a.sock",
        {"status": _status, "pause": _reject, "flatten": _fail, "orders": _crash, "pnl": _slow},
        max_request_bytes=1024,
    )
    await srv.start()
    yield srv
    await srv.close()


async def _exchange(path: Path, *lines: bytes) -> list[dict[str, Any]]:
    r, w = await asyncio.open_unix_connection(str(path))
    for line in lines:
        w.write(line)
    await w.drain()
    out = [json.loads(await asyncio.wait_for(r.readline(), 5)) for _ in lines]
    w.close()
    return out


async def test_socket_mode_is_0600(server: AdminServer) -> None:
    assert stat.S_IMODE(server.path.stat().st_mode) == 0o600


async def test_replies_carry_version_and_id(server: AdminServer) -> None:
    [rep] = await _exchange(server.path, b'{"cmd":"status","strategy":"mom","id":7}\n')
    assert rep == {"v": PROTOCOL_VERSION, "ok": True, "cmd": "status", "id": 7,
                   "data": {"ok": "yes", "strategy": "mom"}}


async def test_malformed_and_unknown_requests_get_errors_and_connection_survives(server: AdminServer) -> None:
    reps = await _exchange(
        server.path,
        b"not json\n",
        b'{"cmd": 5}\n',
        b'{"cmd":"status","bogus":1}\n',
        b"[1,2,3]\n",
        b'{"cmd":"launch_rockets"}\n',
        b'{"cmd":"pause","strategy":"x"}\n',
        b'{"cmd":"flatten"}\n',
        b'{"cmd":"orders"}\n',
        b'{"cmd":"status"}\n',
    )
    codes = [r["error"]["code"] if not r["ok"] else "ok" for r in reps]
    assert codes == ["bad_request"] * 4 + ["unknown_command", "rejected", "failed", "internal", "ok"]
    assert all(r["v"] == PROTOCOL_VERSION for r in reps)
    assert "launch_rockets" in reps[4]["error"]["message"]
    assert "ZeroDivisionError" in reps[7]["error"]["message"]


async def test_oversized_request_is_refused_and_server_keeps_serving(server: AdminServer) -> None:
    r, w = await asyncio.open_unix_connection(str(server.path))
    w.write(b'{"cmd":"status","strategy":"' + b"x" * 5000 + b'"}\n')
    await w.drain()
    rep = json.loads(await asyncio.wait_for(r.readline(), 5))
    assert rep["ok"] is False and rep["error"]["code"] == "bad_request"
    w.close()
    [ok] = await _exchange(server.path, b'{"cmd":"status"}\n')
    assert ok["ok"]


async def test_many_clients_at_once(server: AdminServer) -> None:
    results = await asyncio.gather(*[_exchange(server.path, b'{"cmd":"pnl"}\n') for _ in range(20)])
    assert all(r[0]["data"] == "slow" for r in results)


async def test_sync_client(server: AdminServer) -> None:
    rep = await asyncio.to_thread(request, server.path, "status", strategy="s1")
    assert rep.ok and rep.data == {"ok": "yes", "strategy": "s1"}
    bad = await asyncio.to_thread(request, server.path, "pause", strategy="zz")
    assert not bad.ok and bad.error is not None and "zz" in bad.error.message


def test_client_without_daemon(tmp_path: Path) -> None:
    with pytest.raises(DaemonNotRunning, match="no omnid daemon is running"):
        request(tmp_path / "none.sock", "status")
    with pytest.raises(RejectedError):
        request(tmp_path / "none.sock", "bogus")


async def test_client_rejects_other_protocol_version(tmp_path: Path) -> None:
    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.readline()
        w.write(b'{"v":99,"ok":true}\n')
        await w.drain()
        w.close()

    srv = await asyncio.start_unix_server(serve, path=str(tmp_path / "v.sock"))
    async with srv:
        with pytest.raises(AdminProtocolError, match="v99"):
            await asyncio.to_thread(request, tmp_path / "v.sock", "status")


def test_fuzz_any_line_gets_one_versioned_reply() -> None:
    """Random bytes and random JSON shapes: handle_line always returns one decodable reply line."""
    import random

    from omnid.ops.protocol import reply_decoder

    from tests.conftest import SLOW

    srv = AdminServer(Path("/nonexistent"), {"status": _status, "orders": _crash})
    rng = random.Random(11)
    shapes = [
        lambda: bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64))),
        lambda: json.dumps({"cmd": rng.choice(["status", "orders", "x", 1, None, [], {}])}).encode(),
        lambda: json.dumps({"cmd": "status", "strategy": rng.choice([1, "a", None, [1]]),
                            "id": rng.choice([1, "x", None, 2.5, {}])}).encode(),
        lambda: json.dumps(rng.choice([[], 1, "s", None, {"x": 1}])).encode(),
    ]

    async def run() -> None:
        for _ in range(20_000 if SLOW else 1_000):
            out = await srv.handle_line(rng.choice(shapes)())
            assert out.endswith(b"\n") and out.count(b"\n") == 1
            rep = reply_decoder.decode(out)
            assert rep.v == PROTOCOL_VERSION and (rep.ok or rep.error is not None)

    asyncio.run(run())
