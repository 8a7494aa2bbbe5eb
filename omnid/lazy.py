"""Package names loaded on first use (PEP 562), for packages the CLI's light commands import.

``omnid.config`` imports each part's config module, which imports that part's package first; a
package that re-exports its heavy modules at import time would make every ``omnid status`` pay for
them. Such a package sets ``__getattr__ = lazy_exports(__name__, {"Name": "module", ...})``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, where: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``package.<where[name]>`` when ``name`` is first read
    and keeps the value in the package, so later reads are plain attribute reads."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
