"""``[binance]``: where Binance lives, what to stream, how hard to retry, and where the keys are.

Keys come from the environment or from a credentials file that only its owner may read; they are
held in :class:`Credentials`, whose ``repr`` never shows the secret, so a log line or a traceback
that prints the config or the client cannot leak it.
"""

from __future__ import annotations

import math
import os
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import msgspec

from omnid.configbase import Section
from omnid.errors import ConfigError

VENUE = "BINANCE"

#: Documented base URLs (binance-spot-api-docs: rest-api general info, web-socket-streams.md,
#: web-socket-api general info; testnet/general-info.md for the Spot Test Network).
NETWORKS: dict[str, tuple[str, str, str]] = {
    "spot": (
        "https://api.binance.com",
        "wss://stream.binance.com:9443",
        "wss://ws-api.binance.com:443/ws-api/v3",
    ),
    "testnet": (
        "https://testnet.binance.vision",
        "wss://stream.testnet.binance.vision",
        "wss://ws-api.testnet.binance.vision/ws-api/v3",
    ),
}

_STREAM_KINDS = ("trade", "aggTrade", "bookTicker", "depth", "depth@100ms")
_INTERVALS = ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w")


class BinanceConfig(Section):
    """Binance spot market data and (optionally) trading. Disabled by default: needs no network."""

    enabled: bool = False
    network: Literal["spot", "testnet"] = "spot"
    rest_url: str = ""
    ws_url: str = ""
    ws_api_url: str = ""
    symbols: list[str] = msgspec.field(default_factory=list)
    streams: list[str] = msgspec.field(
        default_factory=lambda: ["trade", "bookTicker", "depth@100ms", "kline_1m"]
    )
    snapshot_limit: int = 1000
    book_levels: int = 20
    silence_timeout_s: float = 30.0
    max_connection_age_s: float = 23.5 * 3600
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 30.0
    reconnect_max_attempts: int = 0
    recv_window_ms: int = 5000
    weight_limit_1m: int = 6000
    weight_headroom: float = 0.8
    time_sync_interval_s: float = 300.0
    request_timeout_s: float = 10.0
    status_query_attempts: int = 5
    #: After an unplanned reconnect (or a restart, see below), pages of 1000 trades fetched per
    #: symbol over REST to fill the gap (0: fetch nothing, only report the lost id range).
    trade_gap_max_pages: int = 10
    #: Seconds that fetch may take (live trades wait meanwhile); what is not fetched is reported lost.
    trade_gap_timeout_s: float = 10.0
    #: On start, fetch the trades missed while omnid was down, from the last ids the previous run
    #: delivered (kept in ``<data_dir>/binance_last_trade_ids.json``, written every few seconds
    #: and on a clean stop), with the same pages, timeout and lost-range reports as a reconnect.
    recover_on_start: bool = True
    #: Skip that recovery when the last ids are older than this many seconds: a long downtime on a
    #: busy symbol is far more than ``trade_gap_max_pages`` pages (historicalTrades costs weight 25
    #: a page), so only the newest part could be fetched anyway.
    recover_max_age_s: float = 900.0
    trading: bool = False
    #: Amounts per asset on the account that omnid leaves alone (savings, another bot's capital),
    #: e.g. ``{ BTC = 0.3, USDT = 5000 }``: taken off the venue's balances before every reconcile,
    #: so they never become an omnid position (which a strategy's exit would sell) nor cash its
    #: sizing spends. An asset held below its amount counts as 0.
    hold_back: dict[str, float] = msgspec.field(default_factory=dict)
    api_key_env: str = "BINANCE_API_KEY"
    api_secret_env: str = "BINANCE_API_SECRET"
    credentials_file: str = ""

    def __post_init__(self) -> None:
        for s in self.streams:
            if s not in _STREAM_KINDS and not (s.startswith("kline_") and s[6:] in _INTERVALS):
                raise ValueError(
                    f"unknown stream {s!r} (known: {', '.join(_STREAM_KINDS)}, kline_<interval>)"
                )
        if len(self.symbols) * len(self.streams) > 1024:  # web-socket-streams.md: per connection
            raise ValueError(f"{len(self.symbols)} symbols x {len(self.streams)} streams is more than the "
                             "1024 streams one Binance connection may carry")
        if self.snapshot_limit not in (5, 10, 20, 50, 100, 500, 1000, 5000):
            raise ValueError("snapshot_limit must be one of 5, 10, 20, 50, 100, 500, 1000, 5000")
        if self.silence_timeout_s <= 0 or self.reconnect_initial_s <= 0:
            raise ValueError("silence_timeout_s and reconnect_initial_s must be > 0")
        if not 0 < self.weight_headroom <= 1:
            raise ValueError("weight_headroom must be in (0, 1]")
        if not 0 < self.recv_window_ms <= 60000:
            raise ValueError("recv_window_ms must be in (0, 60000]")
        if self.trade_gap_max_pages < 0 or self.trade_gap_timeout_s <= 0:
            raise ValueError("trade_gap_max_pages must be >= 0 and trade_gap_timeout_s > 0")
        if not self.recover_max_age_s > 0:
            raise ValueError("recover_max_age_s must be > 0")
        for asset, amount in self.hold_back.items():
            if not asset or asset != asset.upper() or not asset.isalnum():
                raise ValueError(f"hold_back: asset {asset!r} must be an upper-case asset code such as BTC")
            if not (math.isfinite(amount) and amount >= 0):
                raise ValueError(f"hold_back.{asset} must be a finite amount >= 0, got {amount!r}")

    @property
    def urls(self) -> tuple[str, str, str]:
        """(REST, market-data WebSocket, WebSocket API) base URLs, overrides first."""
        rest, ws, wsapi = NETWORKS[self.network]
        return (self.rest_url or rest, self.ws_url or ws, self.ws_api_url or wsapi)


class Credentials:
    """An API key and secret. The secret is never shown by ``repr``/``str``."""

    __slots__ = ("_secret", "api_key")

    def __init__(self, api_key: str, secret: str) -> None:
        self.api_key = api_key
        self._secret = secret

    @property
    def secret(self) -> bytes:
        return self._secret.encode()

    def __repr__(self) -> str:
        shown = self.api_key[:4] + "…" if len(self.api_key) > 8 else "…"
        return f"Credentials(api_key={shown!r}, secret=<hidden>)"

    __str__ = __repr__


def load_credentials(
    cfg: BinanceConfig, *, env: Mapping[str, str] | None = None, base_dir: Path | None = None
) -> Credentials:
    """Keys from the environment, else from ``credentials_file`` (TOML: ``api_key``, ``api_secret``).

    Raises :class:`ConfigError` naming the key when none are found, when the file is readable by
    group or others (the daemon refuses to start rather than run with exposed keys), or when the
    file is malformed.
    """
    env = os.environ if env is None else env
    key, secret = env.get(cfg.api_key_env, ""), env.get(cfg.api_secret_env, "")
    if key and secret:
        return Credentials(key, secret)
    if not cfg.credentials_file:
        raise ConfigError(
            "binance",
            [("binance.credentials_file", f"no API key: set {cfg.api_key_env} and {cfg.api_secret_env} "
              "or point credentials_file at a file readable only by you")],
        )
    path = Path(cfg.credentials_file).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        st = path.stat()
    except OSError as exc:
        raise ConfigError(str(path), [("binance.credentials_file", f"cannot read: {exc.strerror}")]) from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        mode = stat.S_IMODE(st.st_mode)
        raise ConfigError(
            str(path),
            [("binance.credentials_file",
              f"is accessible by group/others (mode {mode:04o}); run: chmod 600 {path}")],
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(
            str(path), [("binance.credentials_file", f"not a valid TOML file: {exc}")]
        ) from None
    api_key, api_secret = data.get("api_key"), data.get("api_secret")
    if not isinstance(api_key, str) or not isinstance(api_secret, str) or not api_key or not api_secret:
        raise ConfigError(
            str(path), [("binance.credentials_file", "needs string keys api_key and api_secret")]
        )
    return Credentials(api_key, api_secret)
