"""The [risk] section: defaults, validation that names the key, and the example file's values."""

from __future__ import annotations

from pathlib import Path

import pytest
from omnid.config import build_config, load_config
from omnid.errors import ConfigError
from omnid.risk import RiskConfig

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_turn_every_limit_off() -> None:
    cfg = RiskConfig()
    assert cfg.sizing.mode == "all_in" and cfg.max_open_positions == 0 and cfg.max_daily_loss == 0
    assert cfg.session_window and cfg.duplicate_guard and cfg.exits.square_off == {}


def test_example_file_configures_nse_cutoff_and_square_off() -> None:
    cfg = load_config(ROOT / "omnid.toml.example", env={})
    assert cfg.risk.entry_cutoff == {"nse": "15:00"}
    assert cfg.risk.exits.square_off == {"nse": "15:20"}


@pytest.mark.parametrize(
    ("raw", "key", "words"),
    [
        ({"max_open_positions": -1}, "risk", "max_open_positions must be >= 0"),
        ({"max_drawdown_pct": 100}, "risk", "below 100"),
        ({"rate_window_seconds": 0}, "risk", "rate_window_seconds must be > 0"),
        ({"day_timezone": "Mars/Olympus"}, "risk", "unknown time zone"),
        ({"entry_cutoff": {"nse": "3pm"}}, "risk", "entry_cutoff.nse"),
        ({"exits": {"square_off": {"nse": "15:61"}}}, "risk.exits", "square_off.nse"),
        ({"exits": {"stop_loss_pct": 100}}, "risk.exits", "stop_loss_pct"),
        ({"sizing": {"mode": "martingale"}}, "risk.sizing.mode", "martingale"),
        ({"max_ordrs": 5}, "risk.max_ordrs", "unknown key"),
    ],
)
def test_bad_values_name_the_key(raw: dict[str, object], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_config({"risk": raw}, source="t.toml")
    text = str(err.value)
    assert f"t.toml: {key}" in text and words in text, text


def test_env_override_reaches_the_risk_section() -> None:
    cfg = build_config({}, env={"OMNID__RISK__MAX_DAILY_LOSS": "250", "OMNID__RISK__SIZING__MODE": '"fixed"'})
    assert cfg.risk.max_daily_loss == 250.0 and cfg.risk.sizing.mode == "fixed"
