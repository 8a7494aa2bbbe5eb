"""Every command's --help renders (a help text once crashed the markup renderer)."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from omnid.cli import app
from typer.testing import CliRunner


def _paths(cmd: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [prefix]
    for name, sub in (getattr(cmd, "commands", None) or {}).items():
        out.extend(_paths(sub, (*prefix, name)))
    return out


PATHS = _paths(typer.main.get_command(app))


def test_the_tree_has_the_commands_the_issues_name() -> None:
    names = {" ".join(p) for p in PATHS}
    for cmd in ("run", "start", "stop", "status", "backtest", "features", "config check", "db migrate",
                "data import", "data export", "pause", "resume", "flatten", "reload"):
        assert cmd in names, cmd


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "omnid")
def test_help_renders(path: tuple[str, ...]) -> None:
    r = CliRunner().invoke(app, [*path, "--help"])
    assert r.exit_code == 0, r.output + repr(r.exception)
    assert "Usage:" in r.output
