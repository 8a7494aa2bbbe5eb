"""The backtest's fill book (round trips, cash, exposure) and the replay loop's event stream."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from omnid.clock import SimClock
from omnid.datafiles import TickData
from omnid.errors import DataError
from omnid.model import Bar, Fill, Side, Trade
from omnid.sim.book import TradeBook
from omnid.sim.replay import bar_interval_ns, replay_bars, replay_ticks
from omnid.sim.synthetic import NS_PER_DAY, generate_bars, generate_ticks


def _fill(side: Side, qty: float, price: float, commission: float = 0.0, ts: int = 0) -> Fill:
    return Fill(fill_id="f", client_order_id="o", instrument_id="X.SIM", strategy_id="s", side=side,
                qty=qty, price=price, commission=commission, ts_event=ts)


def test_round_trip_pnl_and_return_are_net_of_both_commissions() -> None:
    book = TradeBook(1000.0)
    book.on_fill(_fill(Side.BUY, 10, 50.0, commission=1.0, ts=1))
    book.sample(1)
    book.on_fill(_fill(Side.SELL, 10, 55.0, commission=1.1, ts=2))
    [t] = book.trips
    assert t.qty == 10 and t.entry_index == 0 and t.exit_index == 1
    assert math.isclose(t.pnl, 50 - 2.1)
    assert math.isclose(t.return_pct, (55 / 50 - 1 - 2.1 / 500) * 100)
    assert math.isclose(book.cash, 1000 - 500 - 1 + 550 - 1.1)
    assert math.isclose(book.commissions, 2.1)


def test_reversal_fill_closes_then_opens_the_other_side() -> None:
    book = TradeBook(1000.0)
    book.on_fill(_fill(Side.BUY, 4, 10.0, commission=0.4))
    book.on_fill(_fill(Side.SELL, 10, 12.0, commission=1.2))
    [closed] = book.trips
    assert closed.qty == 4 and math.isclose(closed.commission, 0.4 + 4 * 0.12)
    [still] = book.open_trips()
    assert still.qty == -6 and still.entry_price == 12.0 and still.open
    assert book.positions["X.SIM"] == -6


def test_partial_closes_are_first_in_first_out() -> None:
    book = TradeBook(1000.0)
    book.on_fill(_fill(Side.BUY, 2, 10.0))
    book.on_fill(_fill(Side.BUY, 2, 20.0))
    book.on_fill(_fill(Side.SELL, 3, 30.0))
    assert [(t.qty, t.entry_price) for t in book.trips] == [(2, 10.0), (1, 20.0)]


def test_equity_marks_open_positions_and_exposure_counts_fill_bars() -> None:
    book = TradeBook(100.0)
    book.last_price["X.SIM"] = 10.0
    book.sample(0)  # flat bar
    book.on_fill(_fill(Side.BUY, 5, 10.0))
    book.last_price["X.SIM"] = 11.0
    book.sample(1)  # entry bar
    book.on_fill(_fill(Side.SELL, 5, 12.0))
    book.sample(2)  # exit bar: exposed although flat at its end
    book.sample(3)
    ts, eq, flags = book.curve()
    assert ts.tolist() == [0, 1, 2, 3]
    assert eq.tolist() == [100.0, 105.0, 110.0, 110.0]
    assert flags.tolist() == [False, True, True, False]


def test_tick_replay_builds_trades_in_order_and_advances_the_clock() -> None:
    data = generate_ticks(2000, instruments=3, seed=5)
    clock = SimClock()
    seen: list[Trade] = []
    stamps: list[int] = []

    def handle(t: Trade) -> None:
        seen.append(t)
        stamps.append(clock.now_ns())

    fired: list[int] = []
    clock.set_timer("t", int(data.ts[1000]), lambda e: fired.append(e.ts_scheduled))
    ids = [f"{s}.SIM" for s in data.symbols]
    book = TradeBook(0.0)
    n = replay_ticks(data, ids, clock, handle, book, sample_ns=3_600_000_000_000)
    assert n == 2000 == len(seen)
    assert stamps == data.ts.tolist() == [t.ts_event for t in seen]
    assert [t.price for t in seen] == data.price.tolist()
    assert {type(t.price) for t in seen} == {float}
    assert [t.instrument_id for t in seen[:5]] == [ids[c] for c in data.symbol_codes[:5]]
    assert {t.side for t in seen} <= {Side.BUY, Side.SELL}
    assert fired == [int(data.ts[1000])]
    ts, _, _ = book.curve()
    hours = np.unique(data.ts // 3_600_000_000_000)
    assert ts.size == hours.size and ts[-1] == data.ts[-1]


def test_bar_replay_stamps_bars_with_their_close_and_samples_each_bar() -> None:
    bars = generate_bars(30, seed=2)
    clock = SimClock()
    got: list[Bar] = []
    book = TradeBook(50.0)
    replay_bars(bars, ["SYN.SIM"], clock, got.append, book)
    assert bar_interval_ns(bars) == NS_PER_DAY
    assert [b.ts_open for b in got] == bars.ts.tolist()
    assert all(b.ts_event == b.ts_open + NS_PER_DAY for b in got)
    assert [b.close for b in got] == bars.close.tolist()
    ts, eq, _ = book.curve()
    assert ts.tolist() == bars.ts.tolist() and set(eq.tolist()) == {50.0}


def test_replay_rejects_ticks_out_of_time_order() -> None:
    data = generate_ticks(10, seed=1)
    bad = TickData("bad.csv", data.ts[::-1].copy(), data.price, data.qty, data.side, data.symbols,
                   data.symbol_codes)
    with pytest.raises(DataError, match="time order"):
        replay_ticks(bad, ["SYM00.SIM"], SimClock(), lambda t: None)


def test_synthetic_data_is_deterministic_and_on_the_tick() -> None:
    a = generate_ticks(5000, instruments=4, seed=11)
    b = generate_ticks(5000, instruments=4, seed=11)
    assert np.array_equal(a.ts, b.ts) and np.array_equal(a.price, b.price)
    assert not np.array_equal(a.price, generate_ticks(5000, instruments=4, seed=12).price)
    cents = a.price * 100
    assert np.allclose(cents, np.round(cents))
    assert np.all(np.diff(a.ts) >= 0) and len(a.symbols) == 4




def test_synthetic_bars_are_consistent_and_round_trip_through_files(tmp_path: Path) -> None:
    from omnid.datafiles import load_bars, load_ticks
    from omnid.sim.synthetic import write_bars, write_ticks

    bars = generate_bars(250, seed=4)
    assert np.all(bars.high >= np.maximum(bars.open, bars.close))
    assert np.all(bars.low <= np.minimum(bars.open, bars.close))
    weekday = (bars.ts // NS_PER_DAY + 3) % 7
    assert weekday.max() <= 4  # weekdays only by default
    for suffix in (".csv", ".parquet"):
        write_bars(tmp_path / f"b{suffix}", bars)
        back = load_bars(tmp_path / f"b{suffix}")
        assert np.array_equal(back.ts, bars.ts) and np.array_equal(back.close, bars.close)
    ticks = generate_ticks(3000, instruments=3, seed=9)
    write_ticks(tmp_path / "t.parquet", ticks)
    back_t = load_ticks(tmp_path / "t.parquet")
    names = np.array(back_t.symbols)[back_t.symbol_codes]
    assert np.array_equal(names, np.array(ticks.symbols)[ticks.symbol_codes])
    assert np.array_equal(back_t.ts, ticks.ts) and np.array_equal(back_t.side, ticks.side)


def test_synthetic_ticks_cluster_at_the_session_ends() -> None:
    """The U-shaped intraday intensity: the first and last hour are busier than midday."""
    t = generate_ticks(50_000, seed=3, session_hours=8.0)
    hour = ((t.ts - t.ts.min()) % NS_PER_DAY) // 3_600_000_000_000
    counts = np.bincount(hour, minlength=8)
    assert counts[0] > 1.5 * counts[4] and counts[7] > 1.5 * counts[3]


@pytest.mark.parametrize("chunk", [1, 7, 1 << 16])
def test_tick_samples_are_stamped_with_each_buckets_last_tick_at_its_last_prices(
    chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Samples close every sample_ns bucket that has ticks, however the rows are chunked."""
    import omnid.sim.replay as replay_mod

    monkeypatch.setattr(replay_mod, "CHUNK", chunk)
    data = generate_ticks(600, instruments=3, seed=11)
    ids = [f"{s}.SIM" for s in data.symbols]
    sample_ns = 300_000_000_000
    book = TradeBook(1000.0)
    for iid in ids:  # hold one unit of each so every sample depends on every last price
        book.on_fill(Fill(fill_id="f", client_order_id="o", instrument_id=iid, strategy_id="s",
                          side=Side.BUY, qty=1.0, price=1.0, commission=0.0, ts_event=0))
    replay_ticks(data, ids, SimClock(), lambda t: None, book, sample_ns=sample_ns)
    want_ts: list[int] = []
    want_eq: list[float] = []
    last = dict.fromkeys(ids, 1.0)
    rows = list(zip(data.ts.tolist(), data.symbol_codes.tolist(), data.price.tolist(), strict=True))
    for i, (ts, code, px) in enumerate(rows):
        last[ids[code]] = px
        if i + 1 == len(rows) or rows[i + 1][0] // sample_ns != ts // sample_ns:
            want_ts.append(ts)
            want_eq.append(book.cash + sum(last[iid] for iid in ids))
    ts_arr, eq, _ = book.curve()
    assert len(want_ts) > 20
    assert ts_arr.tolist() == want_ts
    assert np.allclose(eq, want_eq, rtol=0, atol=1e-9)
