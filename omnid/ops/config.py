"""Config sections of the service layer: ``[logging]``, ``[admin]``, ``[http]``, ``[alerts]``.

Relative paths here resolve against the config's ``data_dir`` (itself relative to the config file),
so one setting of ``data_dir`` moves logs, the socket and the pid file together.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from omnid.configbase import Section

LogLevel = Literal["debug", "info", "warning", "error"]


class LoggingConfig(Section):
    """Where and how the daemon logs."""

    level: LogLevel = "info"
    #: JSON-lines log file, relative to data_dir ("" turns the file off).
    file: str = "logs/omnid.log"
    max_bytes: int = 10_000_000
    backup_count: int = 5
    #: auto: a readable console on a terminal, JSON otherwise; pretty | json | off.
    console: Literal["auto", "pretty", "json", "off"] = "auto"

    def __post_init__(self) -> None:
        if self.max_bytes < 1024:
            raise ValueError("max_bytes must be >= 1024")
        if self.backup_count < 0:
            raise ValueError("backup_count must be >= 0")


class AdminConfig(Section):
    """The admin socket and the daemon's lifecycle knobs."""

    #: Unix socket path, relative to data_dir.
    socket: str = "omnid.sock"
    #: Pid file path, relative to data_dir (locked while the daemon lives).
    pid_file: str = "omnid.pid"
    #: Seconds a graceful stop may take before the daemon exits anyway.
    stop_timeout_s: float = 10.0
    #: Cancel open orders when stopping.
    cancel_orders_on_stop: bool = True
    #: Longest request line accepted (bytes).
    max_request_bytes: int = 65_536
    #: Seconds `omnid start` waits for the daemon to become ready.
    start_timeout_s: float = 30.0
    #: Seconds of stored trades replayed into the features at start (0: none).
    warmup_s: float = 3600.0
    #: A trade older than this when it arrives (a feed catching up after a reconnect or a restart)
    #: updates the features and is recorded, but strategies, the paper broker, marks and exits do
    #: not see it: nothing trades or fills on old prices (0: every trade goes everywhere).
    stale_trade_s: float = 5.0

    def __post_init__(self) -> None:
        if self.stop_timeout_s <= 0 or self.start_timeout_s <= 0:
            raise ValueError("stop_timeout_s and start_timeout_s must be > 0")
        if self.max_request_bytes < 256:
            raise ValueError("max_request_bytes must be >= 256")
        if self.warmup_s < 0:
            raise ValueError("warmup_s must be >= 0")
        if not self.stale_trade_s >= 0:
            raise ValueError("stale_trade_s must be >= 0")


class HttpConfig(Section):
    """The health endpoint (loopback only by default)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    #: TCP port; 0 picks a free one (status shows which).
    port: int = 8377
    #: /readyz fails when the storage backlog exceeds this many records.
    max_storage_backlog: int = 100_000
    #: /readyz fails when a feed's last message is older than this (seconds).
    max_feed_silence_s: float = 30.0

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError("port must be 0..65535")


class TelegramConfig(Section):
    enabled: bool = False
    #: Bot token (secret: set it with OMNID__ALERTS__TELEGRAM__BOT_TOKEN).
    bot_token: str = ""
    chat_id: str = ""
    api_url: str = "https://api.telegram.org"


class WebhookConfig(Section):
    url: str
    #: slack ({"text"}), discord ({"content"}) or json (kind, text, context, ts).
    format: Literal["slack", "discord", "json"] = "json"
    name: str = ""


class PriceLevel(Section):
    instrument_id: str
    level: float


class AlertRules(Section):
    """Which events raise an alert."""

    fills: bool = True
    risk_denials: bool = True
    halts: bool = True
    strategy_errors: bool = True
    daemon_lifecycle: bool = True
    #: Alert when a feed has been silent this many seconds (0 turns it off).
    feed_silent_s: float = 60.0
    #: Alert when a feed loses trades it could not fetch again (after a reconnect or a restart).
    trade_gaps: bool = True
    #: Alert once a day when today's P&L falls to/below this (None: off).
    daily_pnl_below: float | None = None
    #: Alert once a day when today's P&L rises to/above this (None: off).
    daily_pnl_above: float | None = None
    #: Alert when an instrument's price crosses a level (either direction).
    price_levels: list[PriceLevel] = msgspec.field(default_factory=list)


class AlertsConfig(Section):
    enabled: bool = True
    #: Alerts waiting to be sent; more are dropped (and counted).
    queue_size: int = 1000
    #: Attempts per alert per channel after the first.
    max_retries: int = 5
    #: First retry delay (doubles each time) when the peer gives none.
    retry_backoff_s: float = 1.0
    #: Per-request timeout.
    timeout_s: float = 10.0
    telegram: TelegramConfig = msgspec.field(default_factory=TelegramConfig)
    webhooks: list[WebhookConfig] = msgspec.field(default_factory=list)
    rules: AlertRules = msgspec.field(default_factory=AlertRules)

    def __post_init__(self) -> None:
        if self.queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        if self.max_retries < 0 or self.retry_backoff_s < 0 or self.timeout_s <= 0:
            raise ValueError("max_retries/retry_backoff_s must be >= 0 and timeout_s > 0")
        if self.telegram.enabled and not (self.telegram.bot_token and self.telegram.chat_id):
            raise ValueError("telegram.enabled needs bot_token and chat_id")
