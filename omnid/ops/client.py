"""The admin socket's client: synchronous (the CLI has no event loop to share) and light.

Every ``omnid status``/``stop``/``pause`` pays for what this module imports, so it needs only the
socket module, msgspec and the protocol: the server side (:mod:`omnid.ops.admin`) brings asyncio
and structlog, ~0.1 s the CLI does not need.
"""

from __future__ import annotations

import socket
from pathlib import Path

import msgspec

from omnid.errors import OmnidError, RejectedError
from omnid.ops.protocol import COMMANDS, PROTOCOL_VERSION, AdminReply, AdminRequest, reply_decoder


class DaemonNotRunning(OmnidError):
    """Nothing answers on the admin socket."""


class AdminProtocolError(OmnidError):
    """The daemon's reply could not be read (wrong protocol version, garbage, cut off)."""


def request(path: Path, cmd: str, *, strategy: str | None = None, timeout_s: float = 10.0) -> AdminReply:
    """Send one request and return the reply (synchronous, for the CLI).

    Raises :class:`DaemonNotRunning` if no daemon listens on ``path``, :class:`AdminProtocolError`
    if the reply is unreadable or of another protocol version.
    """
    if cmd not in COMMANDS:
        raise RejectedError(f"unknown command {cmd!r}", cmd=cmd)
    payload = msgspec.json.encode(AdminRequest(cmd=cmd, strategy=strategy)) + b"\n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        try:
            s.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise DaemonNotRunning(
                f"no omnid daemon is running on {path} ({exc.strerror})", socket=str(path)
            ) from None
        except PermissionError:
            raise DaemonNotRunning(
                f"cannot open {path}: permission denied (run as the daemon's user)"
            ) from None
        buf = b""
        try:
            s.sendall(payload)
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        except TimeoutError:
            raise AdminProtocolError(f"the daemon did not answer {cmd!r} within {timeout_s:g}s") from None
        except ConnectionError as exc:  # it died or closed on us mid-request
            raise AdminProtocolError(f"the daemon dropped the connection during {cmd!r}: {exc}") from None
    if not buf:
        raise AdminProtocolError(f"the daemon closed the connection without answering {cmd!r}")
    try:
        reply = reply_decoder.decode(buf)
    except msgspec.DecodeError as exc:
        raise AdminProtocolError(f"unreadable reply from the daemon: {exc}") from None
    if reply.v != PROTOCOL_VERSION:
        raise AdminProtocolError(f"the daemon speaks admin protocol v{reply.v}, this CLI v{PROTOCOL_VERSION}")
    return reply


def socket_alive(path: Path, timeout_s: float = 1.0) -> bool:
    """True if something accepts connections on ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        try:
            s.connect(str(path))
        except OSError:
            return False
        return True
