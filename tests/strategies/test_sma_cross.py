"""sma_cross decisions on constructed averages: only real crosses act; long_short reverses."""

from __future__ import annotations

import pytest
from omnid.model import Bar, Instrument, IntentAction, Side, Trade

from tests.strategies.helpers import Rig

BTC = Instrument(symbol="BTCUSDT", venue="SIM", lot_size=0.001)
IID = BTC.id


def _trade(rig: Rig, price: float) -> Trade:
    ts = rig.clock.now_ns()
    return Trade(IID, price, 1.0, Side.BUY, ts, ts)


def _set(rig: Rig, fast: float, slow: float, kind: str = "sma") -> None:
    rig.features.set(IID, f"{kind}:3", fast)
    rig.features.set(IID, f"{kind}:5", slow)


def _rig(**params: object) -> Rig:
    rig = Rig("sma_cross", [BTC], {"fast": 3, "slow": 5, **params})
    rig.strategy.on_start()
    return rig


def test_warm_up_and_first_ready_side_do_not_trade() -> None:
    """NaN averages, and the first side seen once both are ready, produce no intent."""
    rig = _rig()
    assert rig.strategy.on_trade(_trade(rig, 100.0)) is None  # both NaN
    _set(rig, 101.0, 100.0)
    assert rig.strategy.on_trade(_trade(rig, 101.0)) is None  # first side: above, no cross yet
    assert rig.strategy.on_trade(_trade(rig, 101.5)) is None  # still above


def test_up_cross_goes_long_with_reason_and_numbers() -> None:
    """A cross above opens a long of the fixed qty, saying why with the averages and the price."""
    rig = _rig(qty=2.0)
    _set(rig, 99.0, 100.0)
    assert rig.strategy.on_trade(_trade(rig, 99.0)) is None
    _set(rig, 100.5, 100.0)
    out = rig.strategy.on_trade(_trade(rig, 101.0))
    assert out is not None and len(out) == 1
    it = out[0]
    assert (it.side, it.qty, it.action, it.strategy_id) == (Side.BUY, 2.0, IntentAction.OPEN, "s1")
    assert it.numbers == {"sma_3": 100.5, "sma_5": 100.0, "price": 101.0}
    assert "crossed above" in it.reason and "go long" in it.reason
    assert it.ts_event == rig.clock.now_ns()


def test_long_only_down_cross_closes_and_does_not_short() -> None:
    """long_only: a cross below closes the long; when flat it does nothing."""
    rig = _rig()
    _set(rig, 101.0, 100.0)
    rig.strategy.on_trade(_trade(rig, 101.0))
    rig.hold(IID, 3.0, 101.0)
    _set(rig, 99.0, 100.0)
    out = rig.strategy.on_trade(_trade(rig, 99.0))
    assert out is not None and len(out) == 1
    assert (out[0].side, out[0].qty, out[0].action) == (Side.SELL, 3.0, IntentAction.CLOSE)
    assert out[0].numbers["position"] == 3.0
    # Flat, another up and down cross: the down-cross opens nothing in long_only.
    rig.hold(IID, -3.0, 99.0)
    _set(rig, 101.0, 100.0)
    assert rig.strategy.on_trade(_trade(rig, 101.0)) is not None  # go long (flat)
    _set(rig, 99.0, 100.0)
    assert rig.strategy.on_trade(_trade(rig, 99.0)) is None


def test_long_short_reversal_is_a_close_then_an_open() -> None:
    """long_short: a cross against a long closes it, then opens a short, in that order."""
    rig = _rig(mode="long_short", qty=1.5)
    _set(rig, 101.0, 100.0)
    rig.strategy.on_trade(_trade(rig, 101.0))
    rig.hold(IID, 1.5, 101.0)
    _set(rig, 99.0, 100.0)
    out = rig.strategy.on_trade(_trade(rig, 98.0))
    assert out is not None
    assert [(i.side, i.qty, i.action) for i in out] == [
        (Side.SELL, 1.5, IntentAction.CLOSE),
        (Side.SELL, 1.5, IntentAction.OPEN),
    ]
    assert "close long" in out[0].reason and "reverse to short" in out[1].reason
    # Now short: the next up-cross closes the short and opens a long.
    rig.hold(IID, -3.0, 98.0)
    _set(rig, 100.2, 100.0)
    out = rig.strategy.on_trade(_trade(rig, 100.5))
    assert out is not None
    assert [(i.side, i.qty, i.action) for i in out] == [
        (Side.BUY, 1.5, IntentAction.CLOSE),
        (Side.BUY, 1.5, IntentAction.OPEN),
    ]


def test_ema_kind_and_bars_use_close() -> None:
    """kind = "ema" reads EMA features; bars decide on their close price."""
    rig = _rig(kind="ema")
    _set(rig, 1.0, 2.0, kind="ema")
    bar = Bar(IID, 60, 0, 10.0, 11.0, 9.0, 10.5, 5.0, 60, 60)
    assert rig.strategy.on_bar(bar) is None
    _set(rig, 3.0, 2.0, kind="ema")
    out = rig.strategy.on_bar(bar)
    assert out is not None and out[0].numbers == {"ema_3": 3.0, "ema_5": 2.0, "price": 10.5}


def test_equal_averages_keep_the_previous_side() -> None:
    """Touching without crossing is not a cross."""
    rig = _rig()
    _set(rig, 101.0, 100.0)
    rig.strategy.on_trade(_trade(rig, 101.0))
    _set(rig, 100.0, 100.0)
    assert rig.strategy.on_trade(_trade(rig, 100.0)) is None
    _set(rig, 100.5, 100.0)
    assert rig.strategy.on_trade(_trade(rig, 100.5)) is None


def test_scanner_universe_blocks_entries_but_not_exits() -> None:
    """Outside the universe a cross still closes but does not open."""
    rig = _rig(mode="long_short")
    rig.strategy.on_universe([])
    _set(rig, 101.0, 100.0)
    rig.strategy.on_trade(_trade(rig, 101.0))
    rig.hold(IID, 1.0, 101.0)
    _set(rig, 99.0, 100.0)
    out = rig.strategy.on_trade(_trade(rig, 99.0))
    assert out is not None and [i.action for i in out] == [IntentAction.CLOSE]


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"fast": 10, "slow": 5}, "slow (5) must be greater than fast (10)"),
        ({"kind": "wma"}, "allowed: 'sma', 'ema'"),
        ({"mode": "short_only"}, "allowed: 'long_only', 'long_short'"),
        ({"qty": -1}, "qty must be >= 0"),
        ({"fsat": 3}, "unknown parameter 'fsat'"),
    ],
)
def test_bad_params_are_config_errors_naming_strategy_and_key(params: dict[str, object], needle: str) -> None:
    """Unknown or invalid parameters raise a ConfigError naming the strategy and the key."""
    from omnid.errors import ConfigError

    with pytest.raises(ConfigError) as ei:
        Rig("sma_cross", [BTC], params, name="trend")
    text = str(ei.value)
    assert needle in text and "trend" in text
