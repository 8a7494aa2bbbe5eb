"""Strategy kinds by name: config says ``kind = "sma_cross"``, the registry finds the class."""

from __future__ import annotations

from typing import TypeVar

from omnid.strategies.base import Strategy

S = TypeVar("S", bound=type[Strategy])

#: kind -> class. Built-ins register on import of :mod:`omnid.strategies`; user code may add more.
STRATEGY_KINDS: dict[str, type[Strategy]] = {}


def register(cls: S) -> S:
    """Class decorator: make ``cls`` available under ``cls.kind`` (a kind may be registered once)."""
    kind = cls.kind
    if not kind:
        raise ValueError(f"{cls.__name__} has no kind")
    known = STRATEGY_KINDS.get(kind)
    if known is not None and known is not cls:
        raise ValueError(f"strategy kind {kind!r} is already registered by {known.__name__}")
    STRATEGY_KINDS[kind] = cls
    return cls


def strategy_class(kind: str) -> type[Strategy] | None:
    """The class registered for ``kind``, if any."""
    return STRATEGY_KINDS.get(kind)


def known_kinds() -> list[str]:
    return sorted(STRATEGY_KINDS)
