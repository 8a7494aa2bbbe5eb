"""``omnid strategies kinds`` lists every kind with its parameters and defaults."""

from __future__ import annotations

import json

from omnid.cli import app
from typer.testing import CliRunner


def test_kinds_lists_every_builtin_with_params() -> None:
    r = CliRunner().invoke(app, ["strategies", "kinds"])
    assert r.exit_code == 0, r.output
    for kind in ("momentum", "sma_cross", "pairs", "scanner"):
        assert f"{kind}: " in r.output
    assert "'long_only' | 'long_short'" in r.output and "exactly 2" in r.output


def test_kinds_json_and_unknown_kind() -> None:
    r = CliRunner().invoke(app, ["strategies", "kinds", "scanner", "--json"])
    assert r.exit_code == 0, r.output
    (info,) = json.loads(r.output)
    params = {p["name"]: p["default"] for p in info["params"]}
    assert params["min_score"] == "-inf" and params["top_k"] == 3
    assert info["summary"].startswith("every N minutes")
    bad = CliRunner().invoke(app, ["strategies", "kinds", "nope"])
    assert bad.exit_code == 2 and "unknown kind 'nope'" in bad.output
