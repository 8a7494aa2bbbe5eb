"""omnid's one exception tree.

The class of an error says how to respond to it, so callers branch on the class, never on message
text:

- ``FatalError``: needs a human; stop trading (bad credentials, corrupt journal).
- ``TransientError``: temporary; retry with backoff (dropped socket, 5xx, rate limit).
- ``RejectedError``: this order or request is invalid; do not retry it unchanged.
- ``ConfigError``: the configuration is wrong; names the file and the key.
- ``StrategyError``: user strategy code raised; the strategy is disabled, the rest run on.
- ``DataError``: input data (a file, a tick, a frame) is malformed; names what and where.

Every error carries structured context (``context``) so logs and alerts can show it without
parsing the message.
"""

from __future__ import annotations

from typing import Any


class OmnidError(Exception):
    """Root of every error omnid raises on purpose."""

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context: dict[str, Any] = context

    def __str__(self) -> str:
        return self.message


class FatalError(OmnidError):
    """Needs a human: stop trading and say why."""


class TransientError(OmnidError):
    """Temporary: retry with backoff. ``retry_after`` (seconds) is set when the peer said."""

    def __init__(self, message: str, *, retry_after: float | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.retry_after = retry_after


class RateLimitedError(TransientError):
    """The venue or service asked us to slow down (HTTP 429/418, Telegram ``retry_after``)."""


class StatusUnknownError(TransientError):
    """A request may or may not have taken effect (timeout, 5xx): query, never resend blindly."""


class RejectedError(OmnidError):
    """This order or request is invalid as it stands; retrying it unchanged will not help."""


class RiskDenied(RejectedError):
    """The risk gate denied an intent; ``rule`` names the rule and ``context`` its numbers."""

    def __init__(self, rule: str, message: str, **context: Any) -> None:
        super().__init__(message, rule=rule, **context)
        self.rule = rule


class IllegalTransition(RejectedError):
    """An order was asked to move between states its state machine does not allow."""


class ConfigError(OmnidError):
    """The configuration is wrong. ``problems`` lists every finding as ``(key, message)``."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        lines = [f"{source}: {key}: {msg}" if key else f"{source}: {msg}" for key, msg in problems]
        super().__init__("\n".join(lines), source=source)
        self.source = source
        self.problems = problems


class StrategyError(OmnidError):
    """A strategy's own code raised; it is disabled and the others keep running."""


class DataError(OmnidError):
    """Input data is malformed: a file, a row, a tick or a wire frame."""


class StorageError(OmnidError):
    """A sink or the journal failed in a way the caller must know about."""
