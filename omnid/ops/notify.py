"""systemd's notify protocol (sd_notify) and the watchdog, without libsystemd.

Facts relied on (systemd docs, sd_notify(3) and systemd.service(5)):
- ``$NOTIFY_SOCKET`` names an ``AF_UNIX`` ``SOCK_DGRAM`` socket; a leading ``@`` means the Linux
  abstract namespace (replace it with a NUL byte).
- A message is newline-separated ``VAR=value`` assignments in one datagram: ``READY=1``,
  ``STATUS=...``, ``WATCHDOG=1``, ``STOPPING=1``, ``RELOADING=1``, ``MAINPID=...``.
- ``$WATCHDOG_USEC`` is the watchdog interval in µs (``WatchdogSec=``); send ``WATCHDOG=1`` more
  often than that (half is the documented advice). ``$WATCHDOG_PID``, when set, names the process
  the watchdog is meant for.

The watchdog ping runs as a task on the daemon's event loop, so a loop stalled by a blocking call
stops pinging and systemd restarts the service: that is the point.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Mapping

import structlog

log = structlog.get_logger("omnid.notify")


class SdNotifier:
    """Sends notify datagrams; does nothing when not run by systemd (no ``NOTIFY_SOCKET``)."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        addr = env.get("NOTIFY_SOCKET", "")
        self.address: str | None = None
        if addr:
            self.address = "\0" + addr[1:] if addr.startswith("@") else addr
        self.sent = 0
        self.errors = 0
        self._sock: socket.socket | None = None
        self.watchdog_interval_s: float | None = None
        usec = env.get("WATCHDOG_USEC", "")
        wpid = env.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not wpid or wpid == str(os.getpid())):
            self.watchdog_interval_s = int(usec) / 1_000_000

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *lines: str) -> bool:
        """Send ``lines`` (``"READY=1"``, ``"STATUS=..."``) as one datagram; never raises."""
        if self.address is None:
            return False
        payload = "\n".join(line.replace("\n", " ") for line in lines).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(payload, self.address)
        except OSError as exc:
            self.errors += 1
            if self.errors <= 3 or self.errors % 100 == 0:
                log.warning("sd_notify failed", address=self.address, error=str(exc), errors=self.errors)
            return False
        self.sent += 1
        return True

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1", f"STATUS={status}") if status else self.notify("READY=1")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def stopping(self, status: str = "") -> bool:
        return self.notify("STOPPING=1", f"STATUS={status}") if status else self.notify("STOPPING=1")

    def reloading(self) -> bool:
        return self.notify("RELOADING=1")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    async def watchdog_loop(self) -> None:
        """Ping at half the watchdog interval, from the loop itself, until cancelled."""
        if self.watchdog_interval_s is None or not self.enabled:
            return
        period = self.watchdog_interval_s / 2
        while True:
            self.watchdog()
            await asyncio.sleep(period)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
