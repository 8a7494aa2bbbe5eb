"""The write-ahead journal: framing, torn tails, corruption, replay, and ids across SIGKILL."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omnid.clock import SimClock
from omnid.errors import StorageError
from omnid.model import Fill, Order, OrderIntent, OrderStatus, Side
from omnid.portfolio import Portfolio
from omnid.ports import OrderUpdate
from omnid.storage.framing import HEADER
from omnid.storage.journal import (
    Journal,
    JournalCorruptError,
    SeqMark,
    read_journal,
    register_record_type,
    replay,
)

from tests.conftest import ROOT, SLOW

T0 = 1_795_000_000_000_000_000


def order(cid: str, qty: float = 2.0, side: Side = Side.BUY, iid: str = "X.SIM") -> Order:
    return Order(client_order_id=cid, instrument_id=iid, strategy_id="s1", side=side, qty=qty,
                 ts_created=T0, ts_last=T0)


def fill(cid: str, fid: str, qty: float, price: float, side: Side = Side.BUY, iid: str = "X.SIM") -> Fill:
    return Fill(fill_id=fid, client_order_id=cid, instrument_id=iid, strategy_id="s1", side=side,
                qty=qty, price=price, commission=0.1, ts_event=T0 + 10)


def _write_session(path: Path) -> None:
    j = Journal(path)
    j.append(OrderIntent(strategy_id="s1", instrument_id="X.SIM", side=Side.BUY, reason="why", ts_event=T0))
    j.append(order("s1-0001"))
    j.append(OrderUpdate(client_order_id="s1-0001", status=OrderStatus.SUBMITTED, ts_event=T0 + 1))
    j.append(OrderUpdate(client_order_id="s1-0001", status=OrderStatus.ACCEPTED, ts_event=T0 + 2,
                         venue_order_id="v1"))
    j.append(fill("s1-0001", "f1", 1.0, 100.0))
    j.append(fill("s1-0001", "f1", 1.0, 100.0))  # duplicate delivery: counts once
    j.append(order("s1-0002", qty=1.0, side=Side.SELL))
    j.append(OrderUpdate(client_order_id="s1-0002", status=OrderStatus.SUBMITTED, ts_event=T0 + 3))
    j.append(fill("s1-0002", "f2", 1.0, 110.0, side=Side.SELL))
    j.append(order("s1-0003"))
    j.append(OrderUpdate(client_order_id="s1-0003", status=OrderStatus.SUBMITTED, ts_event=T0 + 4))
    j.append(OrderUpdate(client_order_id="s1-0003", status=OrderStatus.REJECTED, ts_event=T0 + 5,
                         reason="insufficient margin"))
    j.close()


def test_replay_rebuilds_orders_fills_and_sequence(tmp_path: Path) -> None:
    """Open orders, each order's last state, deduplicated fills and the id sequence come back."""
    path = tmp_path / "j.wal"
    _write_session(path)
    st = replay(path)
    assert st.last_seq == 3
    assert [o.client_order_id for o in st.open_orders] == ["s1-0001"]
    o1 = st.orders["s1-0001"]
    assert o1.status is OrderStatus.PARTIALLY_FILLED and o1.filled_qty == 1.0 and o1.venue_order_id == "v1"
    assert st.orders["s1-0002"].status is OrderStatus.FILLED
    assert st.orders["s1-0003"].status is OrderStatus.REJECTED
    assert st.orders["s1-0003"].reject_reason == "insufficient margin"
    assert [f.fill_id for f in st.fills] == ["f1", "f2"]
    assert len(st.intents) == 1 and st.problems == []


def test_restore_portfolio_from_checkpoint_and_later_fills(tmp_path: Path) -> None:
    """The ledger checkpoint plus the fills after it give the same cash and positions as live."""
    clock = SimClock(T0)
    live = Portfolio(clock, initial_cash=10_000.0)
    path = tmp_path / "j.wal"
    j = Journal(path)
    first = [fill("a-1", "f1", 2.0, 100.0), fill("a-1", "f2", 1.0, 101.0)]
    for f in first:
        j.append(order(f.client_order_id, qty=3.0)) if f.fill_id == "f1" else None
        j.append(f)
        live.apply_fill(f)
    j.append(live.ledger())
    later = [fill("a-2", "f3", 1.5, 105.0, side=Side.SELL), fill("b-3", "f4", 4.0, 20.0, iid="Y.SIM")]
    for f in later:
        j.append(order(f.client_order_id, qty=f.qty, side=f.side, iid=f.instrument_id))
        j.append(f)
        live.apply_fill(f)
    j.close()
    st = replay(path)
    assert [f.fill_id for f in st.fills_after_ledger] == ["f3", "f4"]
    restored = Portfolio(SimClock(T0), initial_cash=0.0)
    st.restore_portfolio(restored)
    assert restored.exact() == live.exact()
    assert restored.position_qty("X.SIM") == pytest.approx(1.5)
    assert restored.position_qty("Y.SIM") == pytest.approx(4.0)
    assert st.last_seq == 3


def test_torn_tail_is_truncated(tmp_path: Path) -> None:
    """A record cut short at the end (death mid-write) is dropped; appends continue after it."""
    path = tmp_path / "j.wal"
    _write_session(path)
    whole = path.read_bytes()
    for cut in (1, 5, HEADER.size + 3):
        path.write_bytes(whole[:-cut])
        j = Journal(path)
        assert j.recovered.truncated_bytes > 0
        assert len(j.recovered.records) == 11
        j.append(order("s1-0004"))
        j.close()
        st = replay(path)
        assert st.last_seq == 4 and "s1-0004" in st.orders


def test_crc_mismatch_at_end_is_torn_in_middle_is_corrupt(tmp_path: Path) -> None:
    """A bad CRC on the last record is a torn write; with good records after it, it is corruption."""
    path = tmp_path / "j.wal"
    _write_session(path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    assert len(read_journal(path).records) == 11
    data = bytearray(path.read_bytes())
    data[HEADER.size + 2] ^= 0xFF  # inside the first record's payload
    path.write_bytes(bytes(data))
    with pytest.raises(JournalCorruptError) as err:
        Journal(path)
    assert err.value.context["offset"] == 0


def test_garbage_length_in_middle_is_corrupt(tmp_path: Path) -> None:
    """A length field pointing inside the file but with a wrong CRC is reported with its offset."""
    path = tmp_path / "j.wal"
    _write_session(path)
    data = bytearray(path.read_bytes())
    first_len = int.from_bytes(data[0:4], "little")
    second = HEADER.size + first_len
    data[second : second + 4] = (5).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(JournalCorruptError) as err:
        read_journal(path)
    assert err.value.context["offset"] == second


def test_fsync_policies(tmp_path: Path) -> None:
    """orders: an Order is fsynced at once, a fill waits; always: every record; never: none."""
    j = Journal(tmp_path / "a.wal", fsync="orders", fsync_interval_ms=60_000)
    j.append(fill("x", "f", 1.0, 1.0))
    assert j.fsyncs == 0
    j.append(order("x-1"))
    assert j.fsyncs == 1
    j.close()
    j = Journal(tmp_path / "b.wal", fsync="always")
    for i in range(3):
        j.append(fill("x", f"f{i}", 1.0, 1.0))
    assert j.fsyncs == 3
    j.close()
    j = Journal(tmp_path / "c.wal", fsync="never")
    j.append(order("x-2"))
    assert j.fsyncs == 0
    j.close()


def test_compact_keeps_open_orders_ledger_and_sequence(tmp_path: Path) -> None:
    """After compaction the journal holds only the checkpoint, and replays to the same state."""
    path = tmp_path / "j.wal"
    _write_session(path)
    st = replay(path)
    clock = SimClock(T0)
    p = Portfolio(clock, initial_cash=1000.0)
    st.restore_portfolio(p)
    j = Journal(path)
    size_before = path.stat().st_size
    j.compact(p.ledger(), st.open_orders, st.last_seq)
    j.append(order("s1-0007"))
    j.close()
    again = replay(path)
    assert path.stat().st_size < size_before + 200
    assert again.last_seq == 7
    assert sorted(again.orders) == ["s1-0001", "s1-0007"]
    q = Portfolio(SimClock(T0))
    again.restore_portfolio(q)
    assert q.exact() == p.exact()
    assert SeqMark in {type(r) for r in read_journal(path).records}


def test_unknown_type_and_bad_tags_are_refused(tmp_path: Path) -> None:
    """Appending a type with no tag, or registering a reserved or taken tag, raises StorageError."""
    j = Journal(tmp_path / "j.wal")
    with pytest.raises(StorageError):
        j.append(SimClock(0).now_ns)  # type: ignore[arg-type]
    j.close()
    with pytest.raises(StorageError):
        register_record_type(3, SeqMark)
    with pytest.raises(StorageError):
        register_record_type(40, SeqMark)
        register_record_type(40, OrderIntent)


def _run_until_killed(path: Path, fsync: str, rng: random.Random) -> list[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.storage.journal_writer", str(path), fsync],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    seen: list[str] = []
    want = rng.randint(50, 400)
    deadline = time.monotonic() + 30
    while len(seen) < want and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line.strip())
    time.sleep(rng.random() * 0.02)  # land the kill somewhere inside the next appends
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rest = proc.stdout.read().split()
    proc.stdout.close()
    return seen + rest


@pytest.mark.parametrize("fsync", ["orders", "never"])
def test_sigkill_never_loses_or_reuses_an_id(tmp_path: Path, fsync: str) -> None:
    """Kill the writer with SIGKILL at random points, restart it each time: every id it reported
    journaled is there, and no id is ever used twice."""
    rng = random.Random(7)
    path = tmp_path / "j.wal"
    reported: list[str] = []
    for _ in range(6 if SLOW else 3):
        reported += _run_until_killed(path, fsync, rng)
        st = replay(path)
        assert set(reported) <= set(st.orders), "an id reported as journaled is missing"
    ids = [r.client_order_id for r in read_journal(path).records if isinstance(r, Order)]
    assert len(ids) == len(set(ids)), "a client order id was reused after a restart"
    assert len(ids) >= len(reported)
