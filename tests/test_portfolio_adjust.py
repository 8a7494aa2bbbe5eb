"""Position and cash adjustments that are not trades: the venue's number set on the ledger exactly,
with no realised P&L and no cash movement, and a journal replay that gives the same ledger."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from omnid.clock import SimClock
from omnid.errors import DataError
from omnid.model import Fill, Instrument, Order, OrderStatus, OrderType, Side
from omnid.portfolio import CashAdjustment, Portfolio, PositionAdjustment
from omnid.storage.journal import Journal, decode_record, encode_record, read_journal, replay

T0 = 1_700_000_000_000_000_000
IID = "BTCUSDT.BINANCE"


def make(cash: float = 10_000.0) -> tuple[Portfolio, SimClock]:
    clock = SimClock(T0)
    return Portfolio(clock, initial_cash=cash), clock


def fill(side: Side, qty: float, price: float, *, fid: str, fee: float = 0.0, iid: str = IID,
         cid: str = "s-1") -> Fill:
    return Fill(fill_id=fid, client_order_id=cid, venue_order_id="v1", instrument_id=iid,
                strategy_id="s", side=side, qty=qty, price=price, commission=fee, ts_event=T0)


def identity_holds(pf: Portfolio) -> bool:
    e = pf.exact()
    return e["cash"] == e["initial_cash"] + e["realised"] - e["commissions"] - e["open_cost"]


def test_deposit_in_kind_enters_at_the_reference_price_without_pnl_or_cash() -> None:
    """A long grown by an adjustment: cost rises by delta*price, cash and realised stay, capital grows."""
    pf, _ = make()
    pf.apply_fill(fill(Side.BUY, 0.1, 50_000.0, fid="f1", fee=0.5))
    cash, realised = pf.exact()["cash"], pf.exact()["realised"]
    adj = pf.adjust_position(IID, 0.3, price=60_000.0, reason="deposit", ts=T0 + 1)
    assert adj is not None
    assert (adj.qty_before, adj.qty_after, adj.price) == ("0.1", "0.3", "60000.0")
    assert Decimal(adj.cost_change) == Decimal("12000.00")  # 0.2 * 60000, exactly
    q, cost, _ = pf.exact_position(IID)
    assert q == Decimal("0.3") and cost == Decimal("17000.00")
    assert pf.exact()["cash"] == cash and pf.exact()["realised"] == realised
    assert pf.exact()["initial_cash"] == Decimal("22000.0")
    assert identity_holds(pf)
    assert pf.position_qty(IID) == 0.3 and pf.open_position_count() == 1


def test_withdrawal_leaves_at_book_cost_and_to_flat_clears_the_cost() -> None:
    """A long shrunk by an adjustment removes its average-cost share; set to zero it is flat."""
    pf, _ = make()
    pf.apply_fill(fill(Side.BUY, 1.0, 100.0, fid="f1"))
    pf.apply_fill(fill(Side.BUY, 1.0, 110.0, fid="f2"))
    adj = pf.adjust_position(IID, 0.5, price=999.0, reason="withdrawal", ts=T0)
    assert adj is not None and Decimal(adj.cost_change) == Decimal("-157.5")  # 1.5 of 2 at avg 105
    assert pf.exact_position(IID)[:2] == (Decimal("0.5"), Decimal("52.5"))
    assert pf.realised_pnl() == 0.0 and identity_holds(pf)
    flat = pf.adjust_position(IID, 0, price=0.0, reason="withdrawal", ts=T0)  # no price needed to leave
    assert flat is not None and pf.exact_position(IID)[:2] == (Decimal(0), Decimal(0))
    assert pf.open_position_count() == 0 and pf.positions() == [] and identity_holds(pf)
    assert pf.cash() == 10_000.0 - 210.0


def test_short_grows_shrinks_and_crosses_zero() -> None:
    """Short positions adjust symmetrically; crossing zero leaves at book cost, the rest enters."""
    pf, _ = make()
    pf.apply_fill(fill(Side.SELL, 2.0, 100.0, fid="f1"))
    assert pf.adjust_position(IID, -3, price=90.0, reason="r", ts=T0) is not None
    assert pf.exact_position(IID)[:2] == (Decimal(-3), Decimal("-290.0"))
    assert pf.adjust_position(IID, -1.5, price=1.0, reason="r", ts=T0) is not None
    assert pf.exact_position(IID)[:2] == (Decimal("-1.5"), Decimal("-145.0"))
    assert pf.adjust_position(IID, 2, price=80.0, reason="r", ts=T0) is not None
    assert pf.exact_position(IID)[:2] == (Decimal(2), Decimal("160.0"))
    assert pf.realised_pnl() == 0.0 and pf.cash() == 10_200.0 and identity_holds(pf)
    pf.apply_fill(fill(Side.SELL, 2.0, 90.0, fid="f2"))  # trading goes on from the adjusted book
    assert pf.realised_pnl() == 20.0 and pf.open_position_count() == 0 and identity_holds(pf)


def test_from_nothing_no_op_and_exact_decimals() -> None:
    """An unseen instrument opens at the reference price; an equal quantity changes nothing; quantities
    whose floats do not add up (0.1 + 0.2) are still exact."""
    pf, _ = make()
    assert pf.adjust_position(IID, 0.0, price=1.0, reason="r", ts=T0) is None
    assert pf.position(IID) is None
    pf.adjust_position(IID, 0.1, price=0.3, reason="r", ts=T0 + 5)
    pos = pf.position(IID)
    assert pos is not None and pos.ts_opened == T0 + 5 and pos.avg_price == pytest.approx(0.3)
    pf.adjust_position(IID, "0.3", price="0.1", reason="r", ts=T0)
    assert pf.exact_position(IID)[:2] == (Decimal("0.3"), Decimal("0.05"))  # 0.03 + 0.02
    before = pf.ledger()
    assert pf.adjust_position(IID, 0.3, price=7.0, reason="r", ts=T0) is None
    assert msgspec.structs.replace(pf.ledger(), ts_event=0) == msgspec.structs.replace(before, ts_event=0)


def test_multiplier_scales_the_cost() -> None:
    """A contract multiplier enters the cost as it does for fills."""
    pf = Portfolio(SimClock(T0), initial_cash=0.0,
                   instruments=[Instrument(symbol="ES", venue="CME", multiplier=50.0)])
    pf.adjust_position("ES.CME", 2, price=4000.25, reason="r", ts=T0)
    assert pf.exact_position("ES.CME")[1] == Decimal("400025.000")
    assert pf.equity() == pytest.approx(400_025.0) and identity_holds(pf)


@pytest.mark.parametrize(("qty", "price"), [(float("nan"), 1.0), (2.0, float("inf")), (2.0, 0.0),
                                            (-1.0, -5.0), ("abc", 1.0)])
def test_bad_input_is_a_data_error_and_changes_nothing(qty: float | str, price: float) -> None:
    """Non-finite numbers, text that is not a number, or no value for entering quantity: refused."""
    pf, _ = make()
    pf.apply_fill(fill(Side.BUY, 1.0, 100.0, fid="f1"))
    before = pf.ledger()
    with pytest.raises(DataError):
        pf.adjust_position(IID, qty, price=price, reason="r", ts=T0)
    with pytest.raises(DataError):
        pf.adjust_position("NEW.X", qty, price=price, reason="r", ts=T0)
    assert pf.ledger() == before and pf.position("NEW.X") is None


def test_cash_adjustment_is_capital_not_pnl() -> None:
    """Cash set to the venue's balance moves the initial cash with it; realised P&L stays."""
    pf, _ = make(1000.0)
    pf.apply_fill(fill(Side.BUY, 1.0, 100.0, fid="f1", fee=0.01))
    adj = pf.adjust_cash(1500.07, reason="deposit", ts=T0)
    assert adj is not None and (adj.cash_before, adj.cash_after) == ("899.99", "1500.07")
    assert adj.delta == pytest.approx(600.08)
    assert pf.exact()["cash"] == Decimal("1500.07") and pf.exact()["initial_cash"] == Decimal("1600.08")
    assert pf.realised_pnl() == 0.0 and identity_holds(pf)
    assert pf.adjust_cash(1500.07, reason="again", ts=T0) is None
    with pytest.raises(DataError):
        pf.adjust_cash(float("nan"), reason="bad", ts=T0)


def test_journal_records_round_trip() -> None:
    """Both adjustment structs have journal tags and decode to what was encoded."""
    pa = PositionAdjustment(instrument_id=IID, qty_before="0.1", qty_after="0.3", price="5",
                            cost_change="1.0", reason="r", ts_event=T0)
    ca = CashAdjustment(currency="USD", cash_before="1", cash_after="2.5", reason="r", ts_event=T0)
    assert decode_record(encode_record(pa)) == pa and decode_record(encode_record(ca)) == ca


def _journal_run(journal: Journal, pf: Portfolio, checkpoint_at: int | None) -> None:
    """Fills and adjustments interleaved (order matters), journaled as the daemon does."""
    order = Order(client_order_id="s-1", instrument_id=IID, strategy_id="s", side=Side.BUY, qty=10.0,
                  order_type=OrderType.MARKET, status=OrderStatus.ACCEPTED)
    journal.append(order)
    steps: list[Fill | tuple[str, float, float] | float] = [
        fill(Side.BUY, 0.7, 101.1, fid="f1", fee=0.07),
        (IID, 1.2, 99.9),
        fill(Side.BUY, 0.3, 102.2, fid="f2"),
        2500.0,
        fill(Side.SELL, 0.4, 105.5, fid="f3", fee=0.01),
        (IID, 0.35, 104.0),
        fill(Side.BUY, 1.0, 103.3, fid="f4"),
        ("ETHUSDT.BINANCE", -2.5, 3000.0),
    ]
    for i, step in enumerate(steps):
        if checkpoint_at == i:
            journal.append(pf.ledger())
        if isinstance(step, Fill):
            pf.apply_fill(step)
            journal.append(step)
        elif isinstance(step, tuple):
            adj = pf.adjust_position(step[0], step[1], price=step[2], reason="reconcile", ts=T0)
            assert adj is not None
            journal.append(adj)
        else:
            cadj = pf.adjust_cash(step, reason="reconcile", ts=T0)
            assert cadj is not None
            journal.append(cadj)
    journal.close()


@pytest.mark.parametrize("checkpoint_at", [None, 0, 3, 6])
def test_restart_replay_gives_the_same_ledger(tmp_path: Path, checkpoint_at: int | None) -> None:
    """A journal of fills and adjustments, with or without a ledger checkpoint between them, replays
    into a fresh portfolio with the very same exact ledger; replaying twice changes nothing."""
    pf, _ = make()
    path = tmp_path / "journal.wal"
    _journal_run(Journal(path), pf, checkpoint_at)
    state = replay(path)
    assert state.problems == []
    kinds = [type(r).__name__ for r in state.after_ledger]
    assert kinds.count("PositionAdjustment") + kinds.count("CashAdjustment") == {None: 4, 0: 4, 3: 3, 6: 1}[
        checkpoint_at]
    fresh, _ = make()
    state.restore_portfolio(fresh)
    want = msgspec.structs.replace(pf.ledger(), ts_event=0, peak_equity=0.0)
    got = msgspec.structs.replace(fresh.ledger(), ts_event=0, peak_equity=0.0)
    assert got == want
    assert fresh.exact() == pf.exact() and identity_holds(fresh)
    # A second restart: the same journal replayed again gives the same ledger again.
    again, _ = make()
    replay(read_journal(path).records).restore_portfolio(again)
    assert again.exact() == pf.exact()


def test_replay_applies_adjustments_in_journal_order(tmp_path: Path) -> None:
    """An adjustment before a fill and after it are different ledgers: replay keeps the order."""
    pf, _ = make()
    path = tmp_path / "journal.wal"
    j = Journal(path)
    adj = pf.adjust_position(IID, 1.0, price=100.0, reason="r", ts=T0)
    assert adj is not None
    j.append(adj)
    f = fill(Side.SELL, 1.0, 120.0, fid="f1")
    pf.apply_fill(f)
    j.append(f)
    j.close()
    fresh, _ = make()
    replay(path).restore_portfolio(fresh)
    assert fresh.realised_pnl() == 20.0 and fresh.exact() == pf.exact()
