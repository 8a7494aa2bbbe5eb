"""scanner: clock-driven scans rank by log return over the look-back, record it, hand on the top K."""

from __future__ import annotations

import math

from omnid.model import Instrument, Side, Trade
from omnid.strategies.builtin.scanner import ScanRanking

from tests.strategies.helpers import Rig

SYMS = [Instrument(symbol=s, venue="SIM") for s in ("AAA", "BBB", "CCC", "DDD")]
MIN = 60 * 10**9
T0 = 1_700_000_400 * 10**9 - (1_700_000_400 * 10**9) % (15 * MIN)  # on a 15-minute boundary


def _trade(iid: str, px: float, ts: int) -> Trade:
    return Trade(iid, px, 1.0, Side.NONE, ts, ts)


def test_scans_on_the_clock_rank_and_hand_on_top_k() -> None:
    """Every 15 min: score = ln(now / 30 min ago); best 2 above min_score go to the target."""
    rig = Rig("scanner", SYMS, {"every_minutes": 15, "score": "return", "lookback_minutes": 30, "top_k": 2,
                                "min_score": 0.0, "target": "mom"}, start_ns=T0)
    s = rig.strategy
    s.on_start()
    # The scanner's timer calls back through the engine's sink; deliver it as the engine would.
    prices = {"AAA.SIM": [100, 101, 103], "BBB.SIM": [50, 50, 49], "CCC.SIM": [10, 11, 12],
              "DDD.SIM": [20, 20, 20.5]}
    for k in range(3):
        ts = T0 + k * 15 * MIN + MIN
        for iid, series in prices.items():
            s.on_trade(_trade(iid, series[k], ts))
        rig.clock.advance_to(T0 + (k + 1) * 15 * MIN)
        for _, ev in rig.timer_events:
            s.on_timer(ev)
        rig.timer_events.clear()
    rankings = [r for r in rig.recorder.items if isinstance(r, ScanRanking)]
    assert len(rankings) == 3
    assert rankings[0].ranking == [] and rankings[1].ranking == []  # look-back not yet covered
    last = rankings[2]
    assert [e.instrument_id for e in last.ranking] == ["CCC.SIM", "AAA.SIM", "DDD.SIM", "BBB.SIM"]
    assert last.ranking[0].score == math.log(12 / 10) and last.ranking[0].rank == 1
    assert last.selected == ["CCC.SIM", "AAA.SIM"]
    assert last.ts_event == T0 + 45 * MIN
    assert rig.handoffs == [("s1", "mom", ["CCC.SIM", "AAA.SIM"])]


def test_min_score_filters_and_ties_break_by_name() -> None:
    """Nothing above min_score selects nothing; equal scores rank alphabetically."""
    rig = Rig("scanner", SYMS, {"every_minutes": 5, "score": "return", "lookback_minutes": 5, "top_k": 3,
                                "min_score": 0.5},
              start_ns=T0)
    s = rig.strategy
    s.on_start()
    for iid in ("DDD.SIM", "AAA.SIM"):
        s.on_trade(_trade(iid, 10.0, T0))
    rec1 = s.scan(T0 + 5 * MIN)  # type: ignore[attr-defined]
    rec2 = s.scan(T0 + 10 * MIN)  # type: ignore[attr-defined]
    assert rec1.ranking == []
    assert [e.instrument_id for e in rec2.ranking] == ["AAA.SIM", "DDD.SIM"]
    assert rec2.selected == [] and rec2.unscored == ["BBB.SIM", "CCC.SIM"]
    assert rig.handoffs == []  # no target


def test_mom_score_reads_the_feature_and_skips_unready() -> None:
    """score = "mom": rank by the feature's value; NaN (warming up) is unscored."""
    rig = Rig("scanner", SYMS, {"every_minutes": 5, "mom_period": 20, "top_k": 2, "target": "t"},
              start_ns=T0)
    s = rig.strategy
    s.on_start()
    rig.features.set("AAA.SIM", "mom:20", 5.0)
    rig.features.set("BBB.SIM", "mom:20", 9.0)
    rig.features.set("CCC.SIM", "mom:20", 1.0)
    rec = s.scan(T0 + 5 * MIN)  # type: ignore[attr-defined]
    assert [(e.instrument_id, e.score, e.rank) for e in rec.ranking] == [
        ("BBB.SIM", 9.0, 1), ("AAA.SIM", 5.0, 2), ("CCC.SIM", 1.0, 3)]
    assert rec.selected == ["BBB.SIM", "AAA.SIM"] and rec.unscored == ["DDD.SIM"]
    assert rec.score == "mom_20"
    assert rig.handoffs == [("s1", "t", ["BBB.SIM", "AAA.SIM"])]
