"""Lazily exported package names: the same objects as the modules', loaded on first read, and a
clear error for a name the package does not have."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_names_resolve_to_the_modules_objects_and_stay() -> None:
    import omnid.risk
    import omnid.venues.paper
    from omnid.risk.gate import RiskGate
    from omnid.venues.paper.broker import PaperBroker

    assert omnid.risk.RiskGate is RiskGate and vars(omnid.risk)["RiskGate"] is RiskGate
    assert omnid.venues.paper.PaperBroker is PaperBroker
    for name in omnid.risk.__all__:
        assert getattr(omnid.risk, name).__name__ == name


def test_an_unknown_name_is_an_attribute_error_naming_it() -> None:
    import omnid.risk

    with pytest.raises(AttributeError, match=r"'omnid\.risk' has no attribute 'RiskGat'"):
        _ = omnid.risk.RiskGat  # type: ignore[attr-defined]


def test_the_config_does_not_load_the_gate_or_the_broker() -> None:
    code = ("import sys, omnid.config; "
            "print(sorted(m for m in ('omnid.risk.gate', 'omnid.venues.paper.broker', 'asyncio') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
