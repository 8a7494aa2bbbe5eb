"""TOML configuration → frozen, typed structs.

Each part owns its section's struct (``omnid/risk/config.py`` owns ``[risk]``, and so on); this
module composes them into :class:`OmnidConfig`, loads files, applies ``OMNID__SECTION__KEY``
environment overrides (for secrets) and turns every problem into a :class:`ConfigError` that names
the file and the key. It reports *all* the problems it finds, not just the first: unknown keys,
missing keys and wrong types anywhere in the tree.

Relative paths in a config resolve against the directory of the config file, so a daemon started
from anywhere finds the same files (see :meth:`OmnidConfig.path`).
"""

from __future__ import annotations

import os
import tomllib
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin

import msgspec
import msgspec.structs

from omnid.calendar import CRYPTO_24_7, NSE_EQUITY, US_EQUITY, TradingCalendar
from omnid.configbase import Section
from omnid.errors import ConfigError
from omnid.features.config import FeaturesConfig
from omnid.model import AssetClass, Instrument
from omnid.ops.config import AdminConfig, AlertsConfig, HttpConfig, LoggingConfig
from omnid.risk.config import RiskConfig
from omnid.storage.config import StorageConfig
from omnid.strategies.config import StrategyConfig
from omnid.venues.binance.config import BinanceConfig
from omnid.venues.paper.config import PaperConfig
from omnid.venues.sim.config import SimMarketConfig

ENV_PREFIX = "OMNID__"

BUILTIN_CALENDARS: dict[str, TradingCalendar] = {
    "crypto": CRYPTO_24_7,
    "nse": NSE_EQUITY,
    "us": US_EQUITY,
}


class GeneralConfig(Section):
    name: str = "omnid"
    data_dir: str = "var"
    base_currency: str = "USD"
    timezone: str = "UTC"


class InstrumentConfig(Section):
    symbol: str
    venue: str
    asset_class: AssetClass = AssetClass.CRYPTO
    quote_currency: str = "USD"
    base_currency: str = ""
    tick_size: float = 0.01
    lot_size: float = 1.0
    min_qty: float = 0.0
    min_notional: float = 0.0
    multiplier: float = 1.0
    calendar: str = "crypto"

    def __post_init__(self) -> None:
        if self.tick_size <= 0:
            raise ValueError("tick_size must be > 0")
        if self.lot_size <= 0:
            raise ValueError("lot_size must be > 0")
        if self.min_notional < 0 or self.min_qty < 0:
            raise ValueError("min_qty and min_notional must be >= 0")


class OmnidConfig(Section):
    """The whole configuration: one field per section; each part owns its section's struct."""

    omnid: GeneralConfig = msgspec.field(default_factory=GeneralConfig)
    calendars: dict[str, TradingCalendar] = msgspec.field(default_factory=dict)
    instruments: list[InstrumentConfig] = msgspec.field(default_factory=list)
    risk: RiskConfig = msgspec.field(default_factory=RiskConfig)
    storage: StorageConfig = msgspec.field(default_factory=StorageConfig)
    logging: LoggingConfig = msgspec.field(default_factory=LoggingConfig)
    admin: AdminConfig = msgspec.field(default_factory=AdminConfig)
    http: HttpConfig = msgspec.field(default_factory=HttpConfig)
    alerts: AlertsConfig = msgspec.field(default_factory=AlertsConfig)
    sim_market: SimMarketConfig = msgspec.field(default_factory=SimMarketConfig)
    features: FeaturesConfig = msgspec.field(default_factory=FeaturesConfig)
    paper: PaperConfig = msgspec.field(default_factory=PaperConfig)
    binance: BinanceConfig = msgspec.field(default_factory=BinanceConfig)
    strategies: list[StrategyConfig] = msgspec.field(default_factory=list)
    # Set by the loader, never read from the file: where the file was, to resolve relative paths.
    config_path: str = ""

    def path(self, value: str | os.PathLike[str]) -> Path:
        """``value`` resolved against the config file's directory (absolute paths pass through)."""
        p = Path(value).expanduser()
        if p.is_absolute() or not self.config_path:
            return p
        return (Path(self.config_path).parent / p).resolve()

    @property
    def data_dir(self) -> Path:
        return self.path(self.omnid.data_dir)

    def calendar(self, name: str) -> TradingCalendar:
        cal = self.calendars.get(name) or BUILTIN_CALENDARS.get(name)
        if cal is None:
            raise ConfigError(self.config_path or "config", [("calendar", f"unknown calendar {name!r}")])
        return cal

    def instrument_models(self) -> list[Instrument]:
        """The configured instruments as domain :class:`Instrument` structs."""
        out = []
        for ic in self.instruments:
            out.append(
                Instrument(
                    symbol=ic.symbol,
                    venue=ic.venue,
                    asset_class=ic.asset_class,
                    quote_currency=ic.quote_currency,
                    base_currency=ic.base_currency,
                    tick_size=ic.tick_size,
                    lot_size=ic.lot_size,
                    min_qty=ic.min_qty,
                    min_notional=ic.min_notional,
                    multiplier=ic.multiplier,
                    calendar=self.calendar(ic.calendar),
                )
            )
        return out


# --------------------------------------------------------------------------------------------------
# Loading

T = TypeVar("T")


def load_config(path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None) -> OmnidConfig:
    """Read, override from the environment, and validate a config file.

    Raises :class:`ConfigError` listing every problem (file missing, TOML syntax, unknown or
    missing keys, wrong types, failed cross-field checks).
    """
    p = Path(path)
    source = str(p)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, [("", "file not found")]) from None
    except OSError as exc:
        raise ConfigError(source, [("", f"cannot read: {exc.strerror or exc}")]) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [("", f"invalid TOML: {exc}")]) from None
    return build_config(raw, source=source, env=os.environ if env is None else env, path=p)


def build_config(
    raw: dict[str, Any],
    *,
    source: str = "config",
    env: Mapping[str, str] | None = None,
    path: Path | None = None,
) -> OmnidConfig:
    """Validate a parsed TOML document (after environment overrides) into :class:`OmnidConfig`."""
    if "config_path" in raw:
        raise ConfigError(source, [("config_path", "unknown key (set by the loader, not the file)")])
    if env:
        raw = apply_env_overrides(raw, env, source=source)
    problems = collect_problems(raw, OmnidConfig)
    if problems:
        raise ConfigError(source, problems)
    doc = dict(raw)
    if path is not None:
        doc["config_path"] = str(path.resolve())
    try:
        cfg = msgspec.convert(doc, OmnidConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(source, [_from_msgspec(str(exc))]) from None
    cross = _cross_checks(cfg)
    if cross:
        raise ConfigError(source, cross)
    return cfg


def _cross_checks(cfg: OmnidConfig) -> list[tuple[str, str]]:
    """Named checks that span sections."""
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    for i, ic in enumerate(cfg.instruments):
        key = f"{ic.symbol}.{ic.venue}"
        if key in seen:
            problems.append((f"instruments[{i}]", f"instrument {key} is listed twice"))
        seen.add(key)
        if ic.calendar not in cfg.calendars and ic.calendar not in BUILTIN_CALENDARS:
            known = sorted({*cfg.calendars, *BUILTIN_CALENDARS})
            problems.append(
                (f"instruments[{i}].calendar", f"unknown calendar {ic.calendar!r} (known: {known})")
            )
    problems.extend(_strategy_checks(cfg, seen))
    for check in CROSS_CHECKS:
        problems.extend(check(cfg))
    return problems


def _strategy_checks(cfg: OmnidConfig, instrument_ids: set[str]) -> list[tuple[str, str]]:
    """Strategies name unique, configured instruments, and a scanner's target exists and trades its
    picks: caught by ``omnid config check`` rather than when the daemon builds the engine."""
    problems: list[tuple[str, str]] = []
    by_symbol: dict[str, list[str]] = {}
    for iid in instrument_ids:
        by_symbol.setdefault(iid.rsplit(".", 1)[0], []).append(iid)
    names: dict[str, int] = {}
    resolved: dict[str, set[str]] = {}
    for i, sc in enumerate(cfg.strategies):
        where = f"strategies[{i}]"
        if sc.name in names:
            problems.append((f"{where}.name", f"strategy name {sc.name!r} is used twice"))
        names[sc.name] = i
        ids: set[str] = set()
        for text in sc.instruments:
            if text in instrument_ids:
                ids.add(text)
            elif len(by_symbol.get(text, [])) == 1:
                ids.add(by_symbol[text][0])
            else:
                why = "is ambiguous" if by_symbol.get(text) else "is not a configured instrument"
                known = ", ".join(sorted(instrument_ids)) or "none configured"
                problems.append((f"{where}.instruments", f"{text!r} {why} (known: {known})"))
        resolved[sc.name] = ids
    for i, sc in enumerate(cfg.strategies):
        target = sc.params.get("target", "") if sc.kind == "scanner" else ""
        if not target or not sc.enabled:
            continue
        if target not in names:
            problems.append((f"strategies[{i}].params.target", f"no strategy named {target!r}"))
        elif not resolved[sc.name] <= resolved[target]:
            missing = sorted(resolved[sc.name] - resolved[target])
            problems.append(
                (f"strategies[{i}].params.target", f"{target!r} does not trade {', '.join(missing)}")
            )
    return problems


#: Other parts append ``(cfg) -> [(key, message)]`` functions here for checks that span sections.
CROSS_CHECKS: list[Any] = []


def apply_env_overrides(
    raw: dict[str, Any], env: Mapping[str, str], *, source: str = "config"
) -> dict[str, Any]:
    """Apply ``OMNID__SECTION__KEY=value`` variables on top of the parsed file.

    Keys are lower-cased; a numeric part indexes a list (``OMNID__INSTRUMENTS__0__TICK_SIZE``).
    The value is read as a TOML value when it parses as one (``5``, ``true``, ``[1, 2]``,
    ``"x"``), otherwise taken as a plain string, so secrets need no quoting.
    """
    out: dict[str, Any] = _deep_copy(raw)
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or len(name) <= len(ENV_PREFIX):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if any(not p for p in parts):
            raise ConfigError(source, [(name, "malformed override variable (empty key part)")])
        node: Any = out
        for i, part in enumerate(parts[:-1]):
            nxt_is_index = parts[i + 1].isdigit()
            if isinstance(node, list):
                idx = int(part) if part.isdigit() else -1
                if not 0 <= idx < len(node):
                    raise ConfigError(source, [(name, f"no list item {part} to override")])
                node = node[idx]
            else:
                if part not in node:
                    node[part] = [] if nxt_is_index else {}
                node = node[part]
        last = parts[-1]
        parsed = _parse_env_value(value)
        if isinstance(node, list):
            if not last.isdigit() or int(last) >= len(node):
                raise ConfigError(source, [(name, f"no list item {last} to override")])
            node[int(last)] = parsed
        elif isinstance(node, dict):
            node[last] = parsed
        else:
            raise ConfigError(source, [(name, "override goes below a value that is not a table")])
    return out


def _parse_env_value(value: str) -> Any:
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value


def _deep_copy(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _deep_copy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_deep_copy(v) for v in obj]
    return obj


# --------------------------------------------------------------------------------------------------
# Finding every problem, not just the first (msgspec stops at the first)


def collect_problems(value: Any, typ: Any, path: str = "") -> list[tuple[str, str]]:
    """Walk ``value`` against ``typ`` and list every unknown key, missing key and wrong type."""
    if isinstance(typ, type) and issubclass(typ, msgspec.Struct):
        return _walk_struct(value, typ, path)
    origin, args = get_origin(typ), get_args(typ)
    if origin is list and isinstance(value, list):
        return [p for i, item in enumerate(value) for p in collect_problems(item, args[0], f"{path}[{i}]")]
    if origin is dict and isinstance(value, dict):
        return [p for k, item in value.items() for p in collect_problems(item, args[1], _join(path, str(k)))]
    if origin in (Union, types.UnionType) and isinstance(value, dict):
        structs = [a for a in args if isinstance(a, type) and issubclass(a, msgspec.Struct)]
        if len(structs) == 1:
            return _walk_struct(value, structs[0], path)
    return _convert_problem(value, typ, path)


def _walk_struct(value: Any, typ: type[msgspec.Struct], path: str) -> list[tuple[str, str]]:
    if not isinstance(value, dict):
        return [(path or "(top)", f"expected a table, got {_kind(value)}")]
    problems: list[tuple[str, str]] = []
    fields = {f.encode_name: f for f in msgspec.structs.fields(typ) if f.encode_name != "config_path"}
    for key in value:
        if key not in fields:
            known = ", ".join(sorted(fields))
            problems.append((_join(path, key), f"unknown key (known keys here: {known})"))
    for name, f in fields.items():
        if name in value:
            problems.extend(collect_problems(value[name], f.type, _join(path, name)))
        elif f.required:
            problems.append((_join(path, name), "missing required key"))
    if not problems:
        problems.extend(_convert_problem(value, typ, path))
    return problems


def _convert_problem(value: Any, typ: Any, path: str) -> list[tuple[str, str]]:
    try:
        msgspec.convert(value, typ)
    except msgspec.ValidationError as exc:
        key, msg = _from_msgspec(str(exc))
        return [(_join(path, key) if key else (path or "(top)"), msg)]
    return []


def _from_msgspec(message: str) -> tuple[str, str]:
    """Split msgspec's ``"<msg> - at `$.a.b[0]`"`` into (``a.b[0]``, message)."""
    if " - at `$" in message:
        msg, _, where = message.rpartition(" - at `$")
        key = where.rstrip("`").lstrip(".")
        return key, _humanise(msg)
    return "", _humanise(message)


def _humanise(msg: str) -> str:
    if msg.startswith("Object contains unknown field"):
        return "unknown key " + msg.split("field", 1)[1].strip()
    if msg.startswith("Object missing required field"):
        return "missing required key " + msg.split("field", 1)[1].strip()
    return msg


def _join(path: str, key: str) -> str:
    if not path:
        return key
    if key.startswith("["):
        return f"{path}{key}"
    return f"{path}.{key}"


def _kind(value: Any) -> str:
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
            float: "a float"}.get(type(value), type(value).__name__)
