"""The replay loop's per-instrument trade paths must behave exactly like ``Engine.on_trade``."""

from __future__ import annotations

import functools

import msgspec
import numpy as np
from omnid.engine import Engine
from omnid.model import Fill, Order, Side, Trade
from omnid.risk.config import RiskConfig, SizingConfig
from omnid.sim.book import TradeBook
from omnid.sim.core import BacktestCore
from omnid.sim.replay import replay_ticks
from omnid.sim.synthetic import generate_ticks


def _run(fast: bool, bad_rows: bool, plain_hook: bool = False, no_broker: bool = False) -> tuple[list[object], object, list[object], tuple[int, int, int]]:
    data = generate_ticks(20_000, instruments=3, seed=7)
    if bad_rows:  # malformed prints take the general path (recorded as bad events)
        data.price[100] = np.nan
        data.price[2_000] = -1.0
        data.qty[3_000] = np.inf
    ids = [f"{s}.SIM" for s in data.symbols]
    book = TradeBook(1_000_000.0)
    risk = RiskConfig(sizing=SizingConfig(mode="fraction", fraction_pct=10.0), max_open_positions=10)
    core = BacktestCore(
        ids, strategy="momentum",
        params={"no_book": "trade_flow", "stop_loss_pct": 0.0005, "take_profit_pct": 0.0005},
        cash=1_000_000.0, commission=0.0005, start_ns=int(data.ts[0]) - 1, on_fill=book.on_fill,
        lot_size=0.001, risk=risk,
    )
    fills: list[object] = []

    def listen(fill: Fill, order: Order | None) -> None:
        fills.append(msgspec.to_builtins(fill))

    core.engine.manager.fill_listeners.append(listen)
    core.start()
    if plain_hook:  # the strategy's own on_trade instead of its per-instrument trade_hook
        runner = core.engine.runners["backtest"]
        for iid, route in core.engine._routes.items():
            route.handlers = core.engine._trade_handlers[iid] = [(runner, runner.strategy.on_trade)]
    if no_broker:  # an engine whose trades reach no broker: the path compiles without that branch
        core.engine._paper_trade = None
    # A partial is not recognised as Engine.on_trade, so the loop calls the general method.
    handle = core.on_trade if fast else functools.partial(Engine.on_trade, core.engine)
    replay_ticks(data, ids, core.clock, handle, book)
    eng = core.engine
    counts = (eng.orders, eng.bad_events, len(book.trips))
    return fills, msgspec.to_builtins(eng.portfolio.ledger()), [list(a) for a in book.curve()], counts


def test_trade_path_matches_on_trade_with_managed_exits() -> None:
    fast = _run(True, bad_rows=False)
    slow = _run(False, bad_rows=False)
    assert fast[3][0] > 20  # the run trades, exits included
    assert fast == slow


def test_trade_path_hands_malformed_prints_to_on_trade() -> None:
    fast = _run(True, bad_rows=True)
    slow = _run(False, bad_rows=True)
    assert fast[3][1] == 3
    assert fast == slow


def test_trade_path_unknown_instrument_is_on_trade() -> None:
    core = BacktestCore(["A.SIM"], strategy="momentum", params={}, cash=1e6, commission=0.0, start_ns=0)
    assert core.engine.trade_path("B.SIM") == core.engine.on_trade
    assert core.engine.trade_path("A.SIM") != core.engine.on_trade


def test_momentum_trade_hook_matches_on_trade() -> None:
    hooked = _run(True, bad_rows=False)
    plain = _run(True, bad_rows=False, plain_hook=True)
    assert hooked[3][0] > 20
    assert hooked == plain


def _manual(fast: bool) -> tuple[object, ...]:
    """Ticks fed by hand while the engine changes under the paths: a strategy paused and resumed
    (new handler lists) and a feature added after the paths were built (the feed grows)."""
    data = generate_ticks(12_000, instruments=2, seed=11)
    ids = [f"{s}.SIM" for s in data.symbols]
    risk = RiskConfig(sizing=SizingConfig(mode="fraction", fraction_pct=10.0), max_open_positions=10)
    core = BacktestCore(ids, strategy="momentum", params={"no_book": "trade_flow"}, cash=1_000_000.0,
                        commission=0.0005, start_ns=int(data.ts[0]) - 1, lot_size=0.001, risk=risk)
    core.start()
    eng = core.engine
    paths = [eng.trade_path(iid) if fast else eng.on_trade for iid in ids]
    added = None
    sides = (Side.SELL, Side.NONE, Side.BUY)
    for i, (ts, code, px, qty, side) in enumerate(zip(
        data.ts.tolist(), data.symbol_codes.tolist(), data.price.tolist(), data.qty.tolist(),
        data.side.tolist(), strict=True,
    )):
        if i == 3_000:
            eng.pause("backtest")
        elif i == 5_000:
            eng.resume("backtest")
        elif i == 7_000:
            added = eng.features.ensure(ids[0], "sma:5", "tick")
        core.clock.advance_to(ts)
        paths[code](Trade(ids[code], px, qty, sides[side + 1], ts, ts))
    assert added is not None
    return eng.orders, msgspec.to_builtins(eng.portfolio.ledger()), added.value


def test_trade_path_follows_paused_strategies_and_late_features() -> None:
    fast = _manual(True)
    slow = _manual(False)
    assert fast[0] > 10
    assert fast[2] == fast[2]  # the late SMA was fed (not NaN)
    assert fast == slow


def test_trade_path_without_a_broker_matches_on_trade() -> None:
    fast = _run(True, bad_rows=True, no_broker=True)
    slow = _run(False, bad_rows=True, no_broker=True)
    assert fast[3][0] > 0 and fast[3][2] == 0  # orders are sent but no trade fills them
    assert fast == slow


def test_replay_leaves_out_the_malformed_print_test_only_for_checked_columns() -> None:
    """The per-tick malformed-print test is dropped only when every row passed it in numpy first."""
    seen: list[bool] = []
    for bad in (None, "nan_price", "zero_price", "inf_qty", "negative_qty"):
        data = generate_ticks(2_000, instruments=2, seed=3)
        if bad == "nan_price":
            data.price[500] = np.nan
        elif bad == "zero_price":
            data.price[500] = 0.0
        elif bad == "inf_qty":
            data.qty[500] = np.inf
        elif bad == "negative_qty":
            data.qty[500] = -1.0
        ids = [f"{s}.SIM" for s in data.symbols]
        core = BacktestCore(ids, strategy="momentum", params={"no_book": "trade_flow"}, cash=1e6,
                            commission=0.0, start_ns=int(data.ts[0]) - 1, lot_size=0.001)
        core.start()
        eng = core.engine
        build = eng.trade_path
        flags: list[bool] = []

        def spy(iid: str, *, checked: bool = False, build: object = build, flags: list[bool] = flags) -> object:
            flags.append(checked)
            return build(iid, checked=checked)  # type: ignore[operator]

        eng.trade_path = spy  # type: ignore[method-assign]
        replay_ticks(data, ids, core.clock, core.on_trade)
        assert len(flags) == 2 and len(set(flags)) == 1
        seen.append(flags[0])
        if bad is not None:
            assert eng.bad_events == 1  # the malformed row still reached the general path
    assert seen == [True, False, False, False, False]


def _sma_run(plain_hook: bool, mode: str) -> tuple[list[object], object, int]:
    data = generate_ticks(20_000, instruments=2, seed=9)
    ids = [f"{s}.SIM" for s in data.symbols]
    book = TradeBook(1_000_000.0)
    core = BacktestCore(ids, strategy="sma_cross",
                        params={"kind": "ema", "fast": 10, "slow": 50, "qty": 1.0, "mode": mode},
                        cash=1_000_000.0, commission=0.0005, start_ns=int(data.ts[0]) - 1,
                        on_fill=book.on_fill)
    fills: list[object] = []
    core.engine.manager.fill_listeners.append(lambda f, o: fills.append(msgspec.to_builtins(f)))
    core.start()
    runner = core.engine.runners["backtest"]
    hooks = [fn for route in core.engine._routes.values() for _, fn in route.handlers]
    assert all(fn != runner.strategy.on_trade for fn in hooks)  # the per-instrument hooks are in use
    if plain_hook:
        for iid, route in core.engine._routes.items():
            route.handlers = core.engine._trade_handlers[iid] = [(runner, runner.strategy.on_trade)]
    replay_ticks(data, ids, core.clock, core.on_trade, book)
    return fills, msgspec.to_builtins(core.engine.portfolio.ledger()), core.engine.orders


def test_sma_cross_trade_hook_matches_on_trade() -> None:
    for mode in ("long_only", "long_short"):
        hooked = _sma_run(False, mode)
        assert hooked[2] > 50
        assert hooked == _sma_run(True, mode)


def test_sma_cross_subclass_overriding_on_trade_keeps_its_own() -> None:
    from omnid.strategies.builtin.sma_cross import SmaCross

    class Mine(SmaCross):
        def on_trade(self, trade: Trade) -> None:  # type: ignore[override]
            return None

    s = Mine.__new__(Mine)
    s._legs = {}  # type: ignore[attr-defined]
    assert s.trade_hook("A.SIM") == s.on_trade
