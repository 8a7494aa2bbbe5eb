"""[binance] config: defaults need no network, bad values are named, keys are guarded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from omnid.config import OmnidConfig, build_config
from omnid.errors import ConfigError
from omnid.venues.binance.config import BinanceConfig, load_credentials


def test_defaults_are_off_and_point_at_spot() -> None:
    cfg = OmnidConfig().binance
    assert cfg.enabled is False and cfg.trading is False
    assert cfg.urls == ("https://api.binance.com", "wss://stream.binance.com:9443",
                        "wss://ws-api.binance.com:443/ws-api/v3")
    assert BinanceConfig(network="testnet").urls[0] == "https://testnet.binance.vision"
    assert BinanceConfig(network="testnet", rest_url="http://x").urls[0] == "http://x"


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"streams": ["trades"]}, "unknown stream 'trades'"),
        ({"streams": ["kline_7m"]}, "unknown stream 'kline_7m'"),
        ({"snapshot_limit": 7}, "snapshot_limit"),
        ({"network": "mainnet"}, "network"),
        ({"recv_window_ms": 70000}, "recv_window_ms"),
        ({"weight_headroom": 0}, "weight_headroom"),
        ({"api_secret": "x"}, "api_secret"),
        ({"symbols": [f"S{i}" for i in range(300)]}, "1024 streams"),
    ],
)
def test_bad_values_name_the_key(raw: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError) as e:
        build_config({"binance": raw}, source="t.toml", env={})
    assert needle in str(e.value) and "binance" in str(e.value)


def test_keys_from_the_environment_first(tmp_path: Path) -> None:
    creds = load_credentials(BinanceConfig(credentials_file=str(tmp_path / "nope")),
                             env={"BINANCE_API_KEY": "k" * 64, "BINANCE_API_SECRET": "s" * 64})
    assert creds.api_key == "k" * 64 and creds.secret == b"s" * 64
    assert "s" * 64 not in repr(creds) and "k" * 64 not in repr(creds)


def test_no_keys_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="no API key: set BINANCE_API_KEY"):
        load_credentials(BinanceConfig(), env={})


def test_credentials_file_must_be_private(tmp_path: Path) -> None:
    path = tmp_path / "binance.toml"
    path.write_text('api_key = "abc123abc123"\napi_secret = "very-secret"\n')
    cfg = BinanceConfig(credentials_file=str(path))
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError) as e:
        load_credentials(cfg, env={})
    assert "mode 0644" in str(e.value) and "chmod 600" in str(e.value) and "very-secret" not in str(e.value)
    os.chmod(path, 0o640)
    with pytest.raises(ConfigError, match="group/others"):
        load_credentials(cfg, env={})
    os.chmod(path, 0o600)
    creds = load_credentials(cfg, env={})
    assert creds.api_key == "abc123abc123" and creds.secret == b"very-secret"


def test_relative_credentials_file_and_bad_contents(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text('api_key = "a"\n')
    os.chmod(tmp_path / "c.toml", 0o600)
    with pytest.raises(ConfigError, match="needs string keys"):
        load_credentials(BinanceConfig(credentials_file="c.toml"), env={}, base_dir=tmp_path)
    (tmp_path / "c.toml").write_text("api_key = \n")
    with pytest.raises(ConfigError, match="not a valid TOML"):
        load_credentials(BinanceConfig(credentials_file="c.toml"), env={}, base_dir=tmp_path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_credentials(BinanceConfig(credentials_file="missing.toml"), env={}, base_dir=tmp_path)



def test_environment_overrides_reach_the_section() -> None:
    cfg = build_config({"binance": {"symbols": ["BTCUSDT"]}}, source="t.toml",
                       env={"OMNID__BINANCE__API_KEY_ENV": "MY_KEY", "OMNID__BINANCE__NETWORK": "testnet"})
    assert cfg.binance.api_key_env == "MY_KEY" and cfg.binance.network == "testnet"
