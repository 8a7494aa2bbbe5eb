"""Shared fixtures. Tests mirror the package: tests/<part>/test_<module>.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Long soak/fuzz runs scale down unless OMNID_SLOW=1 (CI runs the short version).
SLOW = os.environ.get("OMNID_SLOW") == "1"


@pytest.fixture
def root() -> Path:
    return ROOT
