"""Crash test on the real daemon: SIGKILL at random points during paper trading, then restart.

The daemon runs as a subprocess on the embedded default plus two fast strategies (an SMA cross
sending market orders, and :mod:`tests.restart_strategy` keeping limit orders working). Each round
kills it with SIGKILL after a random time, restarts it and checks, against an independent replay
of the journal file written here (plain arithmetic over the records, not omnid's replay):

- every order the journal had working at the kill was re-booked by the paper broker (none closed);
- the daemon's positions, cash and open orders equal the replay's (read while the journal does
  not change, so both describe the same moment);
- no client order id was ever submitted twice: each appears in exactly one journaled ``Order``
  record (the manager journals an order once, before the broker sees it), across every restart.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from pathlib import Path

from omnid.config import load_config
from omnid.model import Fill, Order, OrderStatus
from omnid.ports import OrderUpdate
from omnid.storage.journal import read_journal

from tests.conftest import SLOW
from tests.test_daemon import EXAMPLE, FAST_STRATEGY, _env, ask, cli, log_events, wait_for

RESTING = """
[[strategies]]
name = "resting"
kind = "tests.restart_strategy:RestingLimits"
instruments = ["BTCUSDT.SIM", "ETHUSDT.SIM"]
"""

_TERMINAL = {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED}


class Replayed:
    """The journal's account, rebuilt with plain arithmetic."""

    def __init__(self, path: Path, multipliers: dict[str, float], cash: float) -> None:
        self.order_records: dict[str, int] = {}
        status: dict[str, OrderStatus] = {}
        left: dict[str, float] = {}
        seen: set[tuple[str, str]] = set()
        self.positions: dict[str, float] = {}
        self.cash = cash
        self.fills = 0
        for rec in read_journal(path, repair=False).records:
            if isinstance(rec, Order):
                coid = rec.client_order_id
                self.order_records[coid] = self.order_records.get(coid, 0) + 1
                status[coid] = rec.status
                left[coid] = rec.qty - rec.filled_qty
            elif isinstance(rec, OrderUpdate):
                if rec.status in _TERMINAL and status.get(rec.client_order_id) not in _TERMINAL:
                    status[rec.client_order_id] = rec.status
            elif isinstance(rec, Fill):
                key = (rec.client_order_id, rec.fill_id)
                if key in seen:
                    continue
                seen.add(key)
                self.fills += 1
                sign = 1.0 if rec.side.value == "buy" else -1.0
                iid = rec.instrument_id
                self.positions[iid] = self.positions.get(iid, 0.0) + sign * rec.qty
                self.cash -= sign * rec.qty * rec.price * multipliers.get(iid, 1.0) + rec.commission
                coid = rec.client_order_id
                if coid in left:
                    left[coid] -= rec.qty
                    if left[coid] <= 1e-12 and status[coid] not in _TERMINAL:
                        status[coid] = OrderStatus.FILLED
        self.open_orders = {c for c, s in status.items() if s not in _TERMINAL}


def _daemon_state(env: dict[str, str]) -> tuple[dict[str, float], float, set[str]]:
    positions = ask(env, "positions")
    orders = ask(env, "orders")
    pnl = ask(env, "pnl")
    assert positions.ok and orders.ok and pnl.ok, (positions.error, orders.error, pnl.error)
    pos = {p["instrument_id"]: float(p["qty"]) for p in positions.data}
    opened = {o["client_order_id"] for o in orders.data}
    return pos, float(pnl.data["cash"]), opened


def _check_against_journal(env: dict[str, str], journal: Path, mult: dict[str, float]) -> Replayed:
    """Compare the daemon with the replay at a moment the journal stood still (strategies are
    paused first; a working order may still fill, so retry until a read was not crossed)."""
    for _ in range(50):
        before = journal.stat().st_size
        pos, cash, opened = _daemon_state(env)
        if journal.stat().st_size != before:
            time.sleep(0.05)
            continue
        rep = Replayed(journal, mult, 100_000.0)
        want = {k: v for k, v in rep.positions.items() if abs(v) > 1e-9}
        got = {k: v for k, v in pos.items() if abs(v) > 1e-9}
        assert got.keys() == want.keys(), (got, want)
        for k, v in want.items():
            assert abs(got[k] - v) <= 1e-9, (k, got[k], v)
        assert abs(cash - rep.cash) <= 1e-6, (cash, rep.cash)
        assert opened == rep.open_orders, (opened ^ rep.open_orders)
        return rep
    raise AssertionError("the journal never stood still long enough to compare")


def _kill(env: dict[str, str], data_dir: Path) -> None:
    pid = int((data_dir / "omnid.pid").read_text().strip())
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not Path(f"/proc/{pid}").exists()
             or Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z", 10, "the kill")


def test_sigkill_at_random_points_restores_positions_cash_and_open_orders(tmp_path: Path) -> None:
    """Kill -9 at random points while trading; after each restart the daemon equals the journal,
    working paper orders are re-booked, and no client order id is ever sent twice."""
    rng = random.Random(int(os.environ.get("OMNID_SEED", "0")) or None)
    rounds = 12 if SLOW else 3
    data_dir = tmp_path / "var"
    config = tmp_path / "omnid.toml"
    config.write_text(EXAMPLE.read_text() + FAST_STRATEGY + RESTING)
    env = _env(data_dir, OMNID__SIM_MARKET__RATE_HZ="60", OMNID__PAPER__COMMISSION_RATE="0.0004")
    mult = {i.id: i.multiplier for i in load_config(config, env=env).instrument_models()}
    journal: Path | None = None
    rebooked_total = 0
    try:
        r = cli(env, "start", config=config)
        assert r.returncode == 0, r.stdout + r.stderr
        for n in range(rounds):
            time.sleep(rng.uniform(0.5, 2.5))  # trading at a random point
            if journal is None:
                journal = next(data_dir.rglob("journal.wal"))
            _kill(env, data_dir)
            at_kill = Replayed(journal, mult, 100_000.0)
            dup = {c: k for c, k in at_kill.order_records.items() if k != 1}
            assert not dup, f"round {n}: client order ids journaled more than once: {dup}"

            r = cli(env, "start", config=config)
            assert r.returncode == 0, r.stdout + r.stderr
            assert ask(env, "pause").ok
            st = ask(env, "status").data
            restored = st["restored"]
            assert restored["open_orders_found"] == len(at_kill.open_orders), (restored, at_kill.open_orders)
            assert restored["rebooked_at_paper"] == len(at_kill.open_orders)
            assert restored["closed_on_reconcile"] == 0
            assert restored["last_seq"] >= max((int(c.rsplit("-", 1)[-1]) for c in at_kill.order_records), default=0)
            rebooked_total += restored["rebooked_at_paper"]
            _check_against_journal(env, journal, mult)
            assert ask(env, "resume").ok
        assert journal is not None
        final = Replayed(journal, mult, 100_000.0)
        assert final.fills > 0 and len(final.order_records) >= 4, "the run hardly traded"
        assert all(k == 1 for k in final.order_records.values())
        events = log_events(data_dir)
        assert sum(e["event"] == "paper order re-booked after restart" for e in events) == rebooked_total
        assert cli(env, "stop", config=config).returncode == 0
    finally:
        pid_file = data_dir / "omnid.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
