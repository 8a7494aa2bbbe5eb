"""sd_notify datagrams on a test NOTIFY_SOCKET (path and abstract), and the watchdog interval."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

from omnid.ops.notify import SdNotifier


def _listener(addr: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(addr)
    s.settimeout(2)
    return s


def test_path_socket_messages(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    with _listener(path) as s:
        n = SdNotifier({"NOTIFY_SOCKET": path})
        assert n.enabled
        assert n.ready("trading enabled")
        assert n.watchdog()
        assert n.stopping()
        got = [s.recv(4096).decode() for _ in range(3)]
        n.close()
    assert got == ["READY=1\nSTATUS=trading enabled", "WATCHDOG=1", "STOPPING=1"]


def test_abstract_socket() -> None:
    name = f"omnid-test-{os.getpid()}"
    with _listener("\0" + name) as s:
        n = SdNotifier({"NOTIFY_SOCKET": "@" + name})
        assert n.status("line one\nline two")
        assert s.recv(4096) == b"STATUS=line one line two"
        n.close()


def test_disabled_without_socket_and_missing_socket_never_raises(tmp_path: Path) -> None:
    assert not SdNotifier({}).ready()
    n = SdNotifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    assert n.notify("READY=1") is False and n.errors == 1


def test_watchdog_interval_and_pid_filter() -> None:
    assert SdNotifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "4000000"}).watchdog_interval_s == 4.0
    other = SdNotifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"})
    assert other.watchdog_interval_s is None  # meant for another process


async def test_watchdog_loop_pings_at_half_the_interval(tmp_path: Path) -> None:
    path = str(tmp_path / "wd.sock")
    with _listener(path) as s:
        s.setblocking(False)
        n = SdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})
        task = asyncio.create_task(n.watchdog_loop())
        await asyncio.sleep(0.35)
        task.cancel()
        pings = []
        while True:
            try:
                pings.append(s.recv(64))
            except BlockingIOError:
                break
        n.close()
    assert 3 <= len(pings) <= 5 and set(pings) == {b"WATCHDOG=1"}
