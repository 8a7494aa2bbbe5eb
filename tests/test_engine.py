"""The engine drives the real parts (features, risk gate, paper broker, order manager, portfolio):
ordering, crash isolation, reversals, control surface and determinism."""

from __future__ import annotations

import itertools
import math
from typing import Any

import msgspec
import pytest
from omnid.clock import SimClock
from omnid.config import OmnidConfig, build_config
from omnid.engine import Engine, build_engine
from omnid.errors import ConfigError, RejectedError
from omnid.model import Bar, Fill, IntentAction, OrderIntent, Quote, Side, Trade
from omnid.ports import ListRecorder
from omnid.risk.events import RiskDenial
from omnid.strategies import Strategy, StrategyParams, register
from omnid.strategies.base import StrategyErrorRecord
from omnid.strategies.builtin.scanner import ScanRanking
from omnid.strategies.config import StrategyConfig

DAY = 86_400 * 10**9
T0 = 1_767_225_600 * 10**9  # 2026-01-01 00:00 UTC
BTC = "BTCUSDT.SIM"
ETH = "ETHUSDT.SIM"


def _cfg(**risk: Any) -> OmnidConfig:
    return build_config({
        "instruments": [
            {"symbol": "BTCUSDT", "venue": "SIM", "lot_size": 0.001, "tick_size": 0.01},
            {"symbol": "ETHUSDT", "venue": "SIM", "lot_size": 0.001, "tick_size": 0.01},
        ],
        "risk": risk,
    })


def _sc(name: str, sk: str, instruments: list[str], source: str = "", **params: Any) -> StrategyConfig:
    return StrategyConfig(name=name, kind=sk, instruments=instruments, params=params, source=source)


def _engine(*scs: StrategyConfig, cash: float = 1_000_000.0, **risk: Any) -> tuple[Engine, SimClock, ListRecorder]:
    clock = SimClock(T0)
    rec = ListRecorder()
    eng = build_engine(_cfg(**risk), clock=clock, recorder=rec, cash=cash, strategies=list(scs))
    eng.start()
    return eng, clock, rec


def _bars(eng: Engine, clock: SimClock, iid: str, closes: list[float]) -> list[Bar]:
    """Daily bars; each opens 0.5 above the previous close so fills at an open are recognisable."""
    out = []
    prev = closes[0]
    for k, c in enumerate(closes):
        o = prev + 0.5
        ts_open = T0 + k * DAY
        bar = Bar(iid, DAY, ts_open, o, max(o, c) + 1, min(o, c) - 1, c, 1000.0, ts_open + DAY, ts_open + DAY)
        clock.advance_to(bar.ts_event)
        eng.on_bar(bar)
        out.append(bar)
        prev = c
    return out


def _of(rec: ListRecorder, cls: type) -> list[Any]:
    return [x for x in rec.items if isinstance(x, cls)]


CLOSES = [10, 10, 10, 9, 8, 9, 11, 12, 11, 9, 8, 8, 10, 12, 13]


def test_decision_on_a_bar_close_fills_at_the_next_bar_open() -> None:
    """Every intent taken at bar k's close fills at bar k+1's open, never at k's close."""
    eng, clock, rec = _engine(_sc("x", "sma_cross", [BTC], source="1d", fast=2, slow=3, qty=1.0))
    bars = _bars(eng, clock, BTC, CLOSES)
    intents = _of(rec, OrderIntent)
    fills = _of(rec, Fill)
    assert len(intents) >= 2 and len(fills) == len(intents)
    close_to_next_open = {b.ts_event: bars[k + 1].open for k, b in enumerate(bars[:-1])}
    for intent, fill in zip(intents, fills, strict=True):
        assert fill.price == close_to_next_open[intent.ts_event]
        assert fill.side is intent.side and fill.qty == 1.0
    # The first intent is a buy (the fast average rose above the slow one) with its reason.
    assert intents[0].side is Side.BUY and "crossed above" in intents[0].reason


def test_long_short_reversal_is_a_close_then_an_open_through_the_engine() -> None:
    """In long_short a down-cross while long sends a close and an open; the position goes +q to -q."""
    eng, clock, rec = _engine(_sc("x", "sma_cross", [BTC], source="1d", fast=2, slow=3, qty=2.0,
                                  mode="long_short"))
    _bars(eng, clock, BTC, CLOSES)
    intents = _of(rec, OrderIntent)
    pairs = [(i.side, i.action) for i in intents]
    k = pairs.index((Side.SELL, IntentAction.CLOSE))
    assert pairs[k + 1] == (Side.SELL, IntentAction.OPEN)
    assert intents[k].ts_event == intents[k + 1].ts_event
    fills = _of(rec, Fill)
    positions = []
    q = 0.0
    for f in fills:
        q += f.qty if f.side is Side.BUY else -f.qty
        positions.append(q)
    assert 2.0 in positions and -2.0 in positions
    assert eng.portfolio.position_qty(BTC) in (2.0, -2.0)


class _BoomParams(StrategyParams, frozen=True):
    after: int = 3


@register
class _Boom(Strategy):
    kind = "test_engine_boom"
    params_type = _BoomParams
    params: _BoomParams

    def on_start(self) -> None:
        self.n = 0

    def on_price(self, instrument_id: str, price: float, ts: int) -> None:
        self.n += 1
        if self.n == self.params.after:
            raise RuntimeError("bad user code")


def test_a_crashing_strategy_is_disabled_and_the_others_keep_trading() -> None:
    """The crash is recorded with strategy and hook; the healthy strategy still orders afterwards."""
    eng, clock, rec = _engine(
        _sc("boom", "test_engine_boom", [BTC], source="1d"),
        _sc("ok", "sma_cross", [BTC], source="1d", fast=2, slow=3, qty=1.0),
    )
    _bars(eng, clock, BTC, CLOSES)
    errs = _of(rec, StrategyErrorRecord)
    assert [(e.strategy_id, e.hook, e.error_type) for e in errs] == [("boom", "on_bar", "RuntimeError")]
    st = {s["name"]: s["state"] for s in eng.status()["strategies"]}
    assert st == {"boom": "disabled", "ok": "running"}
    crash_ts = T0 + 3 * DAY
    assert any(i.ts_event > crash_ts for i in _of(rec, OrderIntent) if i.strategy_id == "ok")


def _ticks(eng: Engine, clock: SimClock, prices: list[tuple[str, float]], step: int = 10**9,
           start: int = T0) -> int:
    ts = start
    for iid, px in prices:
        ts += step
        clock.advance_to(ts)
        eng.on_trade(Trade(iid, px, 1.0, Side.BUY, ts, ts))
    return ts


def _wave(n: int, seed: float = 0.0) -> list[float]:
    return [100.0 + 5.0 * math.sin(k / 7.0 + seed) + 0.01 * k for k in range(n)]


def test_ticks_fill_at_the_next_trade_and_runs_are_deterministic() -> None:
    """On ticks a market order fills at the next trade's price; two runs record identical events."""

    def run() -> list[bytes]:
        eng, clock, rec = _engine(_sc("e", "sma_cross", [BTC], fast=3, slow=8, kind="ema", qty=0.5,
                                      mode="long_short"))
        px = _wave(400)
        _ticks(eng, clock, [(BTC, p) for p in px])
        intents = _of(rec, OrderIntent)
        fills = _of(rec, Fill)
        assert len(intents) > 4
        by_ts = {T0 + (k + 1) * 10**9: p for k, p in enumerate(px)}
        for f in fills:
            assert f.price == by_ts[f.ts_event]
            assert any(i.ts_event == f.ts_event - 10**9 for i in intents)
        return [msgspec.json.encode(x) for x in rec.items]

    assert run() == run()


def test_pause_resume_and_unknown_strategy() -> None:
    """A paused strategy takes no decisions; resuming brings it back; unknown names are rejected."""
    eng, clock, rec = _engine(_sc("e", "sma_cross", [BTC], fast=3, slow=8, qty=0.5))
    assert eng.pause("e") == ["e"]
    ts = _ticks(eng, clock, [(BTC, p) for p in _wave(200)])
    assert _of(rec, OrderIntent) == []
    assert eng.resume("e") == ["e"]
    _ticks(eng, clock, [(BTC, p) for p in _wave(200, seed=1.0)], start=ts)
    assert _of(rec, OrderIntent)
    with pytest.raises(RejectedError, match="no strategy named 'nope'"):
        eng.pause("nope")


def test_flatten_cancels_closes_and_halts_entries_until_resumed() -> None:
    """flatten: orders cancelled, positions closed at the next price, strategies paused and entries
    denied until resume() lifts both."""
    eng, clock, rec = _engine(_sc("e", "sma_cross", [BTC], fast=3, slow=8, qty=0.5))
    ts = _ticks(eng, clock, [(BTC, p) for p in _wave(60)])
    if eng.portfolio.position_qty(BTC) == 0.0:
        ts = _ticks(eng, clock, [(BTC, p) for p in _wave(60, seed=2.0)], start=ts)
    assert eng.portfolio.position_qty(BTC) == 0.5
    out = eng.flatten("test")
    assert out["halted"] and out["closing"] == [{"instrument_id": BTC, "side": "sell", "qty": 0.5}]
    ts = _ticks(eng, clock, [(BTC, 100.0)], start=ts)
    assert eng.portfolio.position_qty(BTC) == 0.0
    assert out["paused"] == ["e"]
    n_intents = len(_of(rec, OrderIntent))
    ts = _ticks(eng, clock, [(BTC, p) for p in _wave(200)], start=ts)
    assert len(_of(rec, OrderIntent)) == n_intents  # paused: no entry attempts, no denial flood
    assert eng.portfolio.position_qty(BTC) == 0.0
    # An entry from anywhere is still denied by the kill switch while halted.
    eng._process([OrderIntent(strategy_id="e", instrument_id=BTC, side=Side.BUY, qty=1.0)])
    assert [d.rule for d in _of(rec, RiskDenial)] == ["kill_switch"]
    assert eng.resume() == ["e"]
    assert not eng.gate.halted
    _ticks(eng, clock, [(BTC, p) for p in _wave(200, seed=1.0)], start=ts)
    assert len(_of(rec, OrderIntent)) > n_intents + 1
    status = eng.status()
    assert status["risk"]["halted"] is False and status["pnl"]["equity"] > 0
    doc = msgspec.json.decode(msgspec.json.encode(status))  # the admin socket sends it as JSON
    assert doc["strategies"][0]["name"] == "e" and doc["positions"] == []  # flat after the flatten


def test_momentum_with_real_features_quotes_and_square_off_timer() -> None:
    """momentum on ticks + quotes through the real feature engine: enters with its numbers."""
    eng, clock, rec = _engine(_sc("m", "momentum", [BTC], qty=1.0, rsi_period=5, imbalance_levels=1))
    ts = T0
    px = [100.0, 99.0, 98.0, 99.0, 100.0, 101.0, 102.0, 103.0, 104.0, 105.0]
    for p in px:
        ts += 10**9
        clock.advance_to(ts)
        eng.on_quote(Quote(BTC, p - 0.01, p + 0.01, 5.0, 1.0, ts, ts))
        eng.on_trade(Trade(BTC, p, 1.0, Side.BUY, ts, ts))
    intents = _of(rec, OrderIntent)
    assert intents and intents[0].side is Side.BUY
    n = intents[0].numbers
    assert n["price"] > n["vwap"] and n["rsi_5"] > 50 and n["imbalance"] == pytest.approx(4 / 6)
    assert eng.portfolio.position_qty(BTC) == 1.0


def test_scanner_hands_top_k_to_its_target_through_the_engine() -> None:
    """Scanner's clock timer ranks (recorded), and the target only enters the picked instrument."""
    eng, clock, rec = _engine(
        _sc("scan", "scanner", [BTC, ETH], every_minutes=1, top_k=1, mom_period=3, target="trend"),
        _sc("trend", "sma_cross", [BTC, ETH], fast=2, slow=4, qty=1.0),
    )
    ts = T0
    for k in range(120):
        ts += 10**9
        clock.advance_to(ts)
        eng.on_trade(Trade(BTC, 100.0 + (k % 10), 1.0, Side.BUY, ts, ts))  # big swings: top momentum
        eng.on_trade(Trade(ETH, 50.0 + 0.01 * (k % 10), 1.0, Side.BUY, ts, ts))
    ranks = _of(rec, ScanRanking)
    assert ranks and ranks[-1].selected == [BTC]
    trend = next(s for s in eng.status()["strategies"] if s["name"] == "trend")
    assert trend["universe"] == [BTC]
    assert ranks[-1].ranking[0].instrument_id == BTC
    first_scan = ranks[0].ts_event
    opens = [i for i in _of(rec, OrderIntent) if i.action is IntentAction.OPEN]
    assert opens and {i.instrument_id for i in opens} == {BTC}
    assert all(i.ts_event > first_scan for i in opens)  # no entry before the first scan


def test_config_problems_name_the_strategy() -> None:
    """Unknown instruments, duplicate names and scanner targets outside the config are ConfigErrors."""
    clock = SimClock(T0)
    with pytest.raises(ConfigError, match="'DOGE' is not a configured instrument"):
        build_engine(_cfg(), clock=clock, recorder=ListRecorder(), strategies=[_sc("a", "sma_cross", ["DOGE"])])
    with pytest.raises(ConfigError, match="used twice"):
        build_engine(_cfg(), clock=clock, recorder=ListRecorder(),
                     strategies=[_sc("a", "sma_cross", ["BTCUSDT"]), _sc("a", "sma_cross", ["ETHUSDT"])])
    eng = build_engine(_cfg(), clock=clock, recorder=ListRecorder(),
                       strategies=[_sc("s", "scanner", [BTC], target="ghost")])
    with pytest.raises(ConfigError, match="'ghost' is not another configured strategy"):
        eng.start()


def test_orders_in_flight_are_not_sent_twice() -> None:
    """Volume-limited partial fills keep an order open for several ticks; the strategy sees it in
    flight (net_qty) and sends neither a second entry nor a second exit meanwhile."""
    eng, clock, rec = _engine(_sc("m", "momentum", [BTC], qty=1.0, rsi_period=3, no_book="ignore"))
    ts = T0
    for k in range(300):
        ts += 10**9
        clock.advance_to(ts)
        px = 100.0 + 3.0 * math.sin(k / 9.0)
        eng.on_trade(Trade(BTC, px, 0.3, Side.BUY, ts, ts))  # 0.3 per trade: a 1.0 order takes 4 fills
    intents = _of(rec, OrderIntent)
    actions = [i.action for i in intents]
    assert IntentAction.OPEN in actions and IntentAction.CLOSE in actions
    assert all(a != b for a, b in itertools.pairwise(actions))  # strictly alternating open/close
    assert _of(rec, RiskDenial) == []
    assert len(_of(rec, Fill)) > len(intents)  # partial fills happened


def test_the_example_config_builds_and_starts() -> None:
    """omnid.toml.example's [[strategies]] resolve their instruments and targets and start."""
    from pathlib import Path

    from omnid.config import load_config

    cfg = load_config(Path(__file__).resolve().parent.parent / "omnid.toml.example", env={})
    eng = build_engine(cfg, clock=SimClock(T0), recorder=ListRecorder())
    eng.start()
    states = {s["name"]: (s["kind"], s["state"]) for s in eng.status()["strategies"]}
    assert states == {
        "crypto_momentum": ("momentum", "running"),
        "spy_trend": ("sma_cross", "running"),
        "crypto_scanner": ("scanner", "running"),
    }
    assert eng.runners["spy_trend"].strategy.instruments == ("SPY.SIM",)


def test_reload_applies_new_params_and_lists_what_needs_a_restart() -> None:
    """Changed params re-initialise the strategy; kind/instrument changes and new names are listed."""
    eng, clock, rec = _engine(_sc("e", "sma_cross", [BTC], fast=3, slow=8, qty=0.5))
    skipped = eng.reload_strategies([
        _sc("e", "sma_cross", [BTC], fast=4, slow=9, qty=0.5),
        _sc("new", "sma_cross", [ETH]),
    ])
    assert skipped == ["strategy 'new' is new: restart the daemon to add it"]
    assert eng.runners["e"].strategy.params.fast == 4  # type: ignore[attr-defined]
    _ticks(eng, clock, [(BTC, p) for p in _wave(200)])
    assert _of(rec, OrderIntent)[0].numbers.keys() >= {"sma_4", "sma_9"}
    assert eng.reload_strategies([_sc("e", "sma_cross", [ETH], fast=4, slow=9)]) == [
        "strategy 'e': kind, instruments or source changed: restart to apply"]


def test_malformed_events_are_dropped_and_recorded_not_raised() -> None:
    """NaN, infinite or non-positive prices never reach the broker, features or strategies."""
    from omnid.engine import RejectedEvent

    eng, clock, rec = _engine(_sc("e", "sma_cross", [BTC], fast=3, slow=8, qty=0.5))
    ts = _ticks(eng, clock, [(BTC, p) for p in _wave(60)])
    before = eng.features.value(BTC, "sma_8")
    for bad in (math.nan, math.inf, -1.0, 0.0):
        eng.on_trade(Trade(BTC, bad, 1.0, Side.BUY, ts, ts))
    eng.on_trade(Trade(BTC, 100.0, math.nan, Side.BUY, ts, ts))
    eng.on_bar(Bar(BTC, DAY, ts, 1.0, 0.5, 2.0, 1.0, 1.0, ts + DAY, ts + DAY))  # low > high
    eng.on_quote(Quote(BTC, math.nan, 101.0, 1.0, 1.0, ts, ts))
    dropped = _of(rec, RejectedEvent)
    assert [d.kind for d in dropped] == ["trade"] * 5 + ["bar", "quote"]
    assert "need a finite price > 0" in dropped[0].reason
    assert eng.features.value(BTC, "sma_8") == before
    assert eng.status()["counts"]["bad_events"] == 7


def test_warm_up_without_trading_then_enable() -> None:
    """start(trading=False): features warm up, strategies see nothing until enable_trading."""
    clock = SimClock(T0)
    rec = ListRecorder()
    eng = build_engine(_cfg(), clock=clock, recorder=rec, strategies=[_sc("e", "sma_cross", [BTC], fast=3, slow=8,
                                                                             qty=0.5)])
    eng.start(trading=False)
    ts = _ticks(eng, clock, [(BTC, p) for p in _wave(100)])
    assert _of(rec, OrderIntent) == [] and math.isfinite(eng.features.value(BTC, "sma_8"))
    assert eng.status()["trading"] is False
    eng.enable_trading()
    _ticks(eng, clock, [(BTC, p) for p in _wave(100)], start=ts)
    assert _of(rec, OrderIntent)
    assert eng.open_orders() == [] or all(o["instrument_id"] == BTC for o in eng.open_orders())


def test_a_user_strategy_by_module_path_trades_through_the_engine() -> None:
    eng, clock, rec = _engine(_sc("mine", "tests.strategies.user_strategy:BuyOnce", [BTC], qty=0.25))
    _ticks(eng, clock, [(BTC, p) for p in (100.0, 101.0, 102.0)])
    assert [(i.strategy_id, i.qty) for i in _of(rec, OrderIntent)] == [("mine", 0.25)]
    assert eng.portfolio.position_qty(BTC) == 0.25


class _OddParams(StrategyParams, frozen=True):
    returns: str = "single"


@register
class _Odd(Strategy):
    """Returns odd things from on_price, as buggy user code might."""

    kind = "test_engine_odd"
    params_type = _OddParams
    params: _OddParams

    def on_price(self, instrument_id: str, price: float, ts: int) -> Any:
        if self.net_qty(instrument_id):
            return None
        it = self.intent(instrument_id, Side.BUY, "odd", {}, qty=0.1)
        if self.params.returns == "single":
            return it
        if self.params.returns == "dict":
            return {"buy": 1}
        it.strategy_id = "someone_else"
        return [it]


def test_hook_return_values_are_checked() -> None:
    """A bare intent is accepted; a dict or another strategy's intent disables only that strategy."""
    eng, clock, rec = _engine(
        _sc("single", "test_engine_odd", [BTC], returns="single"),
        _sc("dict", "test_engine_odd", [ETH], returns="dict"),
        _sc("spoof", "test_engine_odd", [ETH], returns="spoof"),
    )
    _ticks(eng, clock, [(BTC, 100.0), (ETH, 50.0), (BTC, 101.0), (ETH, 51.0)])
    assert eng.portfolio.position_qty(BTC) == 0.1
    st = {s["name"]: s["state"] for s in eng.status()["strategies"]}
    assert st == {"single": "running", "dict": "disabled", "spoof": "disabled"}
    msgs = {e.strategy_id: e.message for e in _of(rec, StrategyErrorRecord)}
    assert "returned dict, not a list of OrderIntent" in msgs["dict"]
    assert "intent for strategy 'someone_else'" in msgs["spoof"]
    assert eng.portfolio.position_qty(ETH) == 0.0


def test_malformed_book_levels_are_dropped_and_recorded() -> None:
    from omnid.engine import RejectedEvent
    from omnid.model import BookLevel, BookSnapshot

    eng, _clock, rec = _engine(_sc("m", "momentum", [BTC], imbalance_levels=2))
    eng.on_event(BookSnapshot(BTC, [BookLevel(100.0, 2.0)], [BookLevel(101.0, math.nan)], T0, T0))
    eng.on_event(BookSnapshot(BTC, [BookLevel(100.0, 3.0)], [BookLevel(101.0, 1.0)], T0, T0))
    (bad,) = _of(rec, RejectedEvent)
    assert bad.kind == "booksnapshot" and "not a finite price" in bad.reason
    assert eng.features.value(BTC, "obi_2") == pytest.approx(0.5)


def test_managed_stop_loss_exits_through_the_engine_before_strategies() -> None:
    """An entry carrying stop_loss is managed by risk's exits: a drop through it sends a CLOSE."""
    eng, clock, rec = _engine(_sc("m", "momentum", [BTC], qty=1.0, rsi_period=3, no_book="ignore",
                                  stop_loss_pct=0.01, rsi_exit=0.0))
    ts = _ticks(eng, clock, [(BTC, p) for p in (100.0, 99.0, 100.0, 101.0, 102.0, 103.0)])
    entry = _of(rec, OrderIntent)[0]
    assert entry.stop_loss == pytest.approx(entry.numbers["price"] * 0.99)
    fill_px = eng.portfolio.position(BTC).avg_price  # type: ignore[union-attr]
    _ticks(eng, clock, [(BTC, fill_px * 1.02), (BTC, fill_px * 0.97), (BTC, fill_px * 0.97)], start=ts)
    closes = [i for i in _of(rec, OrderIntent) if i.action is IntentAction.CLOSE]
    assert len(closes) == 1 and "stop-loss" in closes[0].reason  # the strategy sees it in flight
    assert eng.portfolio.position_qty(BTC) == 0.0


def test_bar_sourced_strategy_on_ticks_decides_on_bars_built_from_trades() -> None:
    """pairs with source = "1m" fed trades: one observation per completed minute bar, and its
    decision comes when a minute's bar completes (at the first trade of the next minute)."""
    eng, clock, rec = _engine(_sc("p", "pairs", [ETH, BTC], source="1m", window=20, qty=1.0))
    ts = T0
    for k in range(40 * 60):  # 40 minutes of one-second ticks on both legs
        m = k // 60
        ts += 10**9
        clock.advance_to(ts)
        btc = 100.0 + m + 0.01 * math.sin(m * 1.7)
        eth = 0.5 * btc * (1.0 + 0.002 * math.sin(m * 2.3) + (0.03 if m >= 30 else 0.0))
        eng.on_trade(Trade(BTC, btc, 1.0, Side.BUY, ts, ts))
        eng.on_trade(Trade(ETH, eth, 1.0, Side.BUY, ts, ts))
    strat = eng.runners["p"].strategy
    assert strat._ols.n == 20  # type: ignore[attr-defined]  # the window filled from minute bars
    intents = _of(rec, OrderIntent)
    # The one entry: ETH rich after minute 30's jump; decided when both legs' minute-30 bars are
    # complete (at 31:00, the first trade of minute 31), never on one leg's bar alone.
    assert [(i.instrument_id, i.side, i.action) for i in intents[:2]] == [
        (ETH, Side.SELL, IntentAction.OPEN), (BTC, Side.BUY, IntentAction.OPEN)]
    assert intents[0].ts_event == T0 + 31 * 60 * 10**9
    assert all(i.action is IntentAction.CLOSE for i in intents[2:])


class _StartBoomParams(StrategyParams, frozen=True):
    where: str = "on_start"


@register
class _StartBoom(Strategy):
    kind = "test_engine_start_boom"
    params_type = _StartBoomParams
    params: _StartBoomParams

    def on_start(self) -> None:
        if self.params.where == "on_start":
            raise KeyError("missing feature")
        self.every("tick", 10**9)

    def on_timer(self, event: Any) -> None:
        raise ValueError("timer bug")

    def on_price(self, instrument_id: str, price: float, ts: int) -> None:
        return None


def test_crashes_in_on_start_and_on_timer_disable_only_that_strategy() -> None:
    eng, clock, rec = _engine(
        _sc("a", "test_engine_start_boom", [BTC], where="on_start"),
        _sc("b", "test_engine_start_boom", [BTC], where="timer"),
        _sc("ok", "sma_cross", [BTC], fast=3, slow=8, qty=0.5),
    )
    _ticks(eng, clock, [(BTC, p) for p in _wave(120)])
    errs = {(e.strategy_id, e.hook, e.error_type) for e in _of(rec, StrategyErrorRecord)}
    assert errs == {("a", "on_start", "KeyError"), ("b", "on_timer", "ValueError")}
    assert not any(n.startswith("strategy:b:") for n in clock.timer_names())  # its timers are gone
    assert {s["name"]: s["state"] for s in eng.status()["strategies"]}["ok"] == "running"
    assert [i for i in _of(rec, OrderIntent) if i.strategy_id == "ok"]


def test_random_streams_keep_in_flight_consistent_and_never_raise() -> None:
    """Seeded random ticks, quotes and operator actions: nothing raises, and every strategy's
    in-flight quantity equals the signed leaves of its open orders at every check."""
    import random

    from tests.conftest import SLOW

    rng = random.Random(11)
    eng, clock, rec = _engine(
        _sc("m", "momentum", [BTC, ETH], qty=0.7, rsi_period=3, flow_window=5),
        _sc("x", "sma_cross", [BTC], fast=2, slow=5, kind="ema", qty=0.4, mode="long_short"),
        _sc("p", "pairs", [ETH, BTC], window=20, qty=0.3),
    )
    px = {BTC: 100.0, ETH: 50.0}
    ts = T0
    n = 20_000 if SLOW else 3_000
    for k in range(n):
        ts += rng.randint(1, 3) * 10**8
        clock.advance_to(ts)
        iid = BTC if rng.random() < 0.6 else ETH
        px[iid] *= 1.0 + rng.gauss(0.0, 0.002)
        r = rng.random()
        if r < 0.2:
            p = px[iid]
            eng.on_quote(Quote(iid, p - 0.01, p + 0.01, rng.random() * 3, rng.random() * 3, ts, ts))
        else:
            eng.on_trade(Trade(iid, round(px[iid], 2), rng.choice([0.1, 0.2, 0.5]), rng.choice(list(Side)), ts, ts))
        if k % 997 == 0:
            eng.pause("x")
        elif k % 997 == 300:
            eng.resume("x")
        elif k % 1999 == 1000:
            eng.flatten("random flatten")
        elif k % 1999 == 1500:
            eng.resume()
        if k % 50 == 0:
            for name, runner in eng.runners.items():
                want: dict[str, float] = {}
                for o in eng.manager.open_orders(strategy_id=name):
                    want[o.instrument_id] = want.get(o.instrument_id, 0.0) + o.side.sign * o.leaves_qty
                got = runner.strategy.in_flight
                for key in set(want) | set(got):
                    assert got.get(key, 0.0) == pytest.approx(want.get(key, 0.0), abs=1e-9), (name, key)
    assert _of(rec, Fill)
    assert not _of(rec, StrategyErrorRecord)


def test_momentum_on_daily_bars_resolves_book_features_on_ticks_and_trades() -> None:
    """A bar-fed momentum still resolves obi (a book feature) and trades on bar-direction flow."""
    eng, clock, rec = _engine(_sc("m", "momentum", [BTC], source="1d", qty=1.0, rsi_period=3))
    closes = [100, 99, 98, 99, 101, 103, 105, 104, 106, 108, 107, 103, 100, 98, 101, 104, 107]
    _bars(eng, clock, BTC, [float(c) for c in closes])
    assert eng.runners["m"].state.value == "running"
    intents = _of(rec, OrderIntent)
    assert intents and "trade-flow imbalance" in intents[0].reason


def test_a_disabled_strategy_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    eng, clock, _rec = _engine(_sc("boom", "test_engine_boom", [BTC], source="1d", after=1))
    with caplog.at_level("ERROR"):
        _bars(eng, clock, BTC, [10.0, 11.0])
    assert any("strategy boom disabled: on_bar raised RuntimeError" in r.getMessage() for r in caplog.records)


def test_during_a_halt_each_strategy_instrument_is_denied_once_not_every_tick() -> None:
    """halt_entries: the first entry is denied and recorded; repeats are counted, not re-sent; after
    the halt lifts entries go through again."""
    eng, clock, rec = _engine(_sc("m", "momentum", [BTC], qty=1.0, rsi_period=3, no_book="ignore"))
    eng.halt_entries("maintenance")
    ts = _ticks(eng, clock, [(BTC, p) for p in _wave(200)])
    denials = _of(rec, RiskDenial)
    assert [(d.rule, d.instrument_id) for d in denials] == [("kill_switch", BTC)]
    assert eng.suppressed > 10 and eng.status()["counts"]["suppressed_during_halt"] == eng.suppressed
    eng.resume()
    _ticks(eng, clock, [(BTC, p) for p in _wave(200)], start=ts)
    assert eng.orders > 0 and len(_of(rec, RiskDenial)) == 1
