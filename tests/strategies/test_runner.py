"""The wrapper around user code: a crash disables one strategy and records why; pause/resume."""

from __future__ import annotations

import msgspec
import pytest
from omnid.model import Instrument, Side, Trade
from omnid.strategies import Strategy, StrategyParams, StrategyRunner, register
from omnid.strategies.base import RunState, StrategyErrorRecord, StrategyStateChange
from omnid.strategies.config import StrategyConfig

from tests.strategies.helpers import Rig

BTC = Instrument(symbol="BTCUSDT", venue="SIM")


class BoomParams(StrategyParams, frozen=True):
    after: int = 1


@register
class Boom(Strategy):
    """Raises on the ``after``-th price."""

    kind = "test_boom"
    params_type = BoomParams
    params: BoomParams

    def on_start(self) -> None:
        self.seen = 0

    def on_price(self, instrument_id: str, price: float, ts: int) -> None:
        self.seen += 1
        if self.seen >= self.params.after:
            raise ZeroDivisionError("user bug")


def test_raise_disables_and_records_a_strategy_error() -> None:
    """The hook's exception is caught, the runner is disabled, the record names strategy and hook."""
    rig = Rig("test_boom", [BTC], {"after": 2})
    runner = StrategyRunner(rig.strategy, rig.recorder)
    runner.start()
    t = Trade(BTC.id, 1.0, 1.0, Side.BUY, 1, 1)
    assert runner.call("on_trade", rig.strategy.on_trade, t) is None
    assert runner.active
    assert runner.call("on_trade", rig.strategy.on_trade, t) is None
    assert runner.state is RunState.DISABLED and not runner.active
    errs = [r for r in rig.recorder.items if isinstance(r, StrategyErrorRecord)]
    assert len(errs) == 1
    e = errs[0]
    assert (e.strategy_id, e.hook, e.error_type, e.message) == ("s1", "on_trade", "ZeroDivisionError", "user bug")
    assert any("raise ZeroDivisionError" in line for line in e.traceback)
    err = runner.as_error()
    assert err is not None and err.context["strategy"] == "s1" and err.context["hook"] == "on_trade"
    assert runner.status()["state"] == "disabled"
    assert not runner.resume()  # a disabled strategy stays disabled
    states = [r.state for r in rig.recorder.items if isinstance(r, StrategyStateChange)]
    assert states == ["running", "disabled"]


def test_pause_and_resume() -> None:
    rig = Rig("test_boom", [BTC], {"after": 100})
    runner = StrategyRunner(rig.strategy, rig.recorder)
    runner.start()
    assert runner.pause("operator") and runner.state is RunState.PAUSED and runner.live
    assert not runner.pause()
    assert runner.resume() and runner.active
    runner.stop()
    assert runner.state is RunState.STOPPED


def test_config_names_unknown_kind_and_bad_params() -> None:
    """[[strategies]] entries are validated when the config is decoded."""
    with pytest.raises(ValueError, match="unknown kind 'nope'"):
        StrategyConfig(name="x", kind="nope", instruments=["A"])
    with pytest.raises(msgspec.ValidationError, match=r"unknown parameter 'bogus' for momentum strategy 'm1'"):
        msgspec.convert({"name": "m1", "kind": "momentum", "instruments": ["A"], "params": {"bogus": 1}},
                        StrategyConfig)
    with pytest.raises(msgspec.ValidationError, match="needs exactly 2 instruments"):
        msgspec.convert({"name": "p", "kind": "pairs", "instruments": ["A"]}, StrategyConfig)
    ok = msgspec.convert({"name": "t", "kind": "sma_cross", "instruments": ["A"], "params": {"fast": 2}},
                         StrategyConfig)
    assert ok.decoded_params().fast == 2


def test_user_strategies_load_by_module_path() -> None:
    """kind = "module:Class" imports a user's Strategy subclass; bad paths are config errors."""
    ok = msgspec.convert({"name": "u", "kind": "tests.strategies.user_strategy:BuyOnce", "instruments": ["A"],
                          "params": {"qty": 2.0}}, StrategyConfig)
    assert ok.decoded_params().qty == 2.0
    for kind, needle in [
        ("tests.strategies.nope:X", "cannot import strategy module"),
        ("tests.strategies.user_strategy:Missing", "has no 'Missing'"),
        ("tests.strategies.user_strategy:NotAStrategy", "is not a Strategy subclass"),
    ]:
        with pytest.raises(msgspec.ValidationError, match=needle):
            msgspec.convert({"name": "u", "kind": kind, "instruments": ["A"]}, StrategyConfig)
