"""Config: every problem named with file and key; env overrides; the example documents every key."""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import msgspec
import pytest
from omnid.config import OmnidConfig, apply_env_overrides, build_config, load_config
from omnid.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "omnid.toml.example"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "omnid.toml"
    p.write_text(text)
    return p


def test_example_is_valid() -> None:
    cfg = load_config(EXAMPLE, env={})
    assert cfg.instruments, "the example lists instruments"
    assert cfg.data_dir == (ROOT / "var").resolve()


def test_unknown_key_is_named_with_file(tmp_path: Path) -> None:
    p = write(tmp_path, "[omnid]\nnmae = 'x'\n")
    with pytest.raises(ConfigError) as info:
        load_config(p, env={})
    assert info.value.problems[0][0] == "omnid.nmae"
    assert str(p) in str(info.value) and "unknown key" in str(info.value)


def test_unknown_section_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="riks: unknown key"):
        load_config(write(tmp_path, "[riks]\nx = 1\n"), env={})


def test_wrong_type_and_missing_key_all_reported(tmp_path: Path) -> None:
    p = write(tmp_path, """
[[instruments]]
symbol = "A"
tick_size = "cheap"

[[instruments]]
venue = "SIM"
""")
    with pytest.raises(ConfigError) as info:
        load_config(p, env={})
    keys = [k for k, _ in info.value.problems]
    assert keys == ["instruments[0].venue", "instruments[0].tick_size", "instruments[1].symbol"]
    assert "Expected `float`, got `str`" in str(info.value)


def test_cross_field_checks(tmp_path: Path) -> None:
    p = write(tmp_path, """
[[instruments]]
symbol = "A"
venue = "SIM"
calendar = "moon"

[[instruments]]
symbol = "A"
venue = "SIM"
tick_size = 0
""")
    with pytest.raises(ConfigError) as info:
        load_config(p, env={})
    text = str(info.value)
    assert "instruments[1]: tick_size must be > 0" in text


def test_duplicate_instrument_and_unknown_calendar(tmp_path: Path) -> None:
    p = write(tmp_path, """
[[instruments]]
symbol = "A"
venue = "SIM"
calendar = "moon"

[[instruments]]
symbol = "A"
venue = "SIM"
""")
    with pytest.raises(ConfigError) as info:
        load_config(p, env={})
    text = str(info.value)
    assert "instrument A.SIM is listed twice" in text
    assert "instruments[0].calendar: unknown calendar 'moon'" in text


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml", env={})
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(write(tmp_path, "[omnid\n"), env={})


def test_env_overrides_win_and_parse_values(tmp_path: Path) -> None:
    p = write(tmp_path, "[omnid]\nname = 'file'\n[[instruments]]\nsymbol='A'\nvenue='SIM'\n")
    cfg = load_config(p, env={
        "OMNID__OMNID__NAME": "from-env",
        "OMNID__INSTRUMENTS__0__TICK_SIZE": "0.05",
        "UNRELATED": "x",
    })
    assert cfg.omnid.name == "from-env"
    assert cfg.instruments[0].tick_size == 0.05


def test_env_override_of_unknown_key_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"omnid\.colour: unknown key"):
        load_config(write(tmp_path, ""), env={"OMNID__OMNID__COLOUR": "red"})


def test_env_override_of_missing_list_item_is_reported() -> None:
    with pytest.raises(ConfigError, match="no list item 3"):
        apply_env_overrides({"instruments": []}, {"OMNID__INSTRUMENTS__3__SYMBOL": "X"})


def test_secret_strings_need_no_quoting() -> None:
    out = apply_env_overrides({}, {"OMNID__OMNID__NAME": "abc/def+ghi=="})
    assert out["omnid"]["name"] == "abc/def+ghi=="


def test_relative_paths_resolve_against_the_config_dir(tmp_path: Path) -> None:
    sub = tmp_path / "etc"
    sub.mkdir()
    cfg = load_config(write(sub, "[omnid]\ndata_dir = 'data'\n"), env={})
    assert cfg.data_dir == (sub / "data").resolve()
    assert cfg.path("/abs/x") == Path("/abs/x")


def test_config_path_cannot_be_set_from_the_file() -> None:
    with pytest.raises(ConfigError, match="config_path"):
        build_config({"config_path": "/x"})


# -- the example documents every key -----------------------------------------------------------

def _leaf_keys(typ: Any, seen: set[type] | None = None) -> set[str]:
    seen = seen or set()
    out: set[str] = set()
    if isinstance(typ, type) and issubclass(typ, msgspec.Struct):
        if typ in seen:
            return out
        seen.add(typ)
        for f in msgspec.structs.fields(typ):
            if f.encode_name == "config_path":
                continue
            out.add(f.encode_name)
            out |= _leaf_keys(f.type, seen)
        return out
    origin = get_origin(typ)
    if origin in (list, dict, Union, types.UnionType):
        for a in get_args(typ):
            out |= _leaf_keys(a, seen)
    return out


def test_example_documents_every_key_with_a_comment() -> None:
    lines = EXAMPLE.read_text().splitlines()
    missing, uncommented = [], []
    for key in sorted(_leaf_keys(OmnidConfig)):
        pat = re.compile(rf"^\s*#?\s*(\[\[?)?([\w.]+\.)?{re.escape(key)}(\]\]?|\s*=|\.)")
        idx = next((i for i, line in enumerate(lines) if pat.match(line)), None)
        if idx is None:
            missing.append(key)
            continue
        prev = next((lines[j] for j in range(idx - 1, -1, -1) if lines[j].strip()), "")
        if not prev.lstrip().startswith("#"):
            uncommented.append(key)
    assert not missing, f"keys not in omnid.toml.example: {missing}"
    assert not uncommented, f"keys without a comment above their first mention: {uncommented}"


def test_strategy_cross_checks_name_the_key(tmp_path: Path) -> None:
    p = write(tmp_path, """
[[instruments]]
symbol = "A"
venue = "SIM"
[[instruments]]
symbol = "B"
venue = "SIM"
[[strategies]]
name = "s1"
kind = "sma_cross"
instruments = ["C"]
[[strategies]]
name = "scan"
kind = "scanner"
instruments = ["A", "B"]
params = { target = "s2" }
[[strategies]]
name = "s2"
kind = "momentum"
instruments = ["A.SIM"]
[[strategies]]
name = "s1"
kind = "sma_cross"
instruments = ["A"]
""")
    with pytest.raises(ConfigError) as info:
        load_config(p, env={})
    problems = dict(info.value.problems)
    assert "'C' is not a configured instrument" in problems["strategies[0].instruments"]
    assert problems["strategies[3].name"] == "strategy name 's1' is used twice"
    assert problems["strategies[1].params.target"] == "'s2' does not trade B.SIM"


def test_scanner_target_must_exist(tmp_path: Path) -> None:
    p = write(tmp_path, """
[[instruments]]
symbol = "A"
venue = "SIM"
[[strategies]]
name = "scan"
kind = "scanner"
instruments = ["A"]
params = { target = "ghost" }
""")
    with pytest.raises(ConfigError, match=r"strategies\[0\]\.params\.target: no strategy named 'ghost'"):
        load_config(p, env={})


@pytest.mark.parametrize("path", sorted((ROOT / "config").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path: Path) -> None:
    cfg = load_config(path, env={})
    assert cfg.instruments and cfg.strategies
