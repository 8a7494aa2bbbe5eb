"""structlog set-up: JSON lines to a rotating file, a readable console on a terminal.

Everything goes through the standard library's logging (so library warnings land in the same
file), formatted by structlog. A redaction processor runs last before rendering: any key whose
name contains ``key``, ``secret``, ``token`` or ``password`` has its value masked, at any depth,
and registered secret values (the Telegram token, API keys) are masked inside any string, because
an error message quoting a URL can carry a token.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import structlog

from omnid.ops.config import LoggingConfig

MASK = "***"
_SECRET_NAME_PARTS = ("key", "secret", "token", "password")
_secret_values: set[str] = set()


def register_secret(value: str) -> None:
    """Mask ``value`` wherever it appears in a log line (ignores values too short to be secret)."""
    if len(value) >= 6:
        _secret_values.add(value)


def is_secret_name(name: str) -> bool:
    low = name.lower()
    return any(part in low for part in _SECRET_NAME_PARTS)


def redact(value: Any, name: str = "") -> Any:
    """``value`` with secrets masked: by key name at any depth, and known secret substrings."""
    if name and is_secret_name(name) and value not in (None, "", 0):
        return MASK
    if isinstance(value, str):
        for s in _secret_values:
            if s in value:
                value = value.replace(s, MASK)
        return value
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def redact_processor(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    """structlog processor: mask secrets in every field (the event text included)."""
    for k in list(event_dict):
        if k in ("level", "timestamp", "logger"):
            continue
        event_dict[k] = redact(event_dict[k], "" if k == "event" else k)
    if "exception" in event_dict and isinstance(event_dict["exception"], str):
        event_dict["exception"] = redact(event_dict["exception"])
    return event_dict


def rotate_by_size(path: Path, max_bytes: int, backup_count: int) -> bool:
    """Rotate ``path`` once it holds ``max_bytes`` or more, the way the JSON log file rotates.

    ``path`` becomes ``path.1``, ``path.1`` becomes ``path.2``, ... and the oldest beyond
    ``backup_count`` is dropped (with ``backup_count == 0`` the file is simply removed, so it stays
    bounded; the stdlib handler would let it grow). For files written by another process (the
    daemon's stdout/stderr), so it runs before the writer opens ``path``. Returns whether it rotated.
    An OSError from any step propagates with what is already moved left in place: no file is lost
    other than the oldest, and the caller decides whether to carry on with ``path`` as it is.
    """
    try:
        if path.stat().st_size < max_bytes:
            return False
    except FileNotFoundError:
        return False
    if backup_count == 0:
        path.unlink()
        return True
    for i in range(backup_count - 1, 0, -1):
        older = path.with_name(f"{path.name}.{i}")
        if older.exists():
            os.replace(older, path.with_name(f"{path.name}.{i + 1}"))
    os.replace(path, path.with_name(f"{path.name}.1"))
    return True


def configure_logging(cfg: LoggingConfig, log_file: Path | None, *, tty: bool | None = None) -> None:
    """Route structlog and stdlib logging to the configured file and console."""
    level = getattr(logging, cfg.level.upper())
    pre_chain: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
    ]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    root.setLevel(level)

    json_formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=pre_chain,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact_processor,
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
    )
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=cfg.max_bytes, backupCount=cfg.backup_count, encoding="utf-8"
        )
        fh.setFormatter(json_formatter)
        root.addHandler(fh)

    mode = cfg.console
    if mode == "auto":
        is_tty = sys.stderr.isatty() if tty is None else tty
        mode = "pretty" if is_tty else "json"
    if mode != "off":
        ch = logging.StreamHandler(sys.stderr)
        if mode == "pretty":
            ch.setFormatter(
                structlog.stdlib.ProcessorFormatter(
                    foreign_pre_chain=pre_chain,
                    processors=[
                        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        redact_processor,
                        structlog.dev.ConsoleRenderer(colors=False),
                    ],
                )
            )
        else:
            ch.setFormatter(json_formatter)
        root.addHandler(ch)
    # Quiet chatty libraries unless debugging.
    if level > logging.DEBUG:
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
        logging.getLogger("asyncio").setLevel(logging.WARNING)
