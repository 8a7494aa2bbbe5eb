"""Strategy kinds by name: config says ``kind = "sma_cross"``, the registry finds the class.

Your own strategies: either register them (``@register`` on a class imported before the config
loads), or name them in config as ``kind = "package.module:ClassName"``; the module is imported
when the config is checked, and the class must subclass :class:`~omnid.strategies.base.Strategy`.
"""

from __future__ import annotations

import importlib
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
    """The class for ``kind``: a registered name, or ``module:Class``; None when there is none.

    Raises ValueError (with the reason) when ``module:Class`` names something that cannot be
    imported or is not a Strategy.
    """
    found = STRATEGY_KINDS.get(kind)
    if found is not None or ":" not in kind:
        return found
    module, _, name = kind.partition(":")
    try:
        obj = getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise ValueError(f"cannot import strategy module {module!r}: {exc}") from None
    except AttributeError:
        raise ValueError(f"module {module!r} has no {name!r}") from None
    if not (isinstance(obj, type) and issubclass(obj, Strategy)):
        raise ValueError(f"{kind!r} is not a Strategy subclass")
    return obj


def known_kinds() -> list[str]:
    return sorted(STRATEGY_KINDS)
