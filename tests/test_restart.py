"""Crash test on the real daemon: SIGKILL at random points during paper trading, then restart.

Paper: the daemon runs as a subprocess on the embedded default plus two fast strategies (an SMA
cross sending market orders, and :mod:`tests.restart_strategy` keeping limit orders working). Each
round kills it with SIGKILL after a random time, restarts it and checks, against an independent
replay of the journal file written here (plain arithmetic over the records, not omnid's replay):

- every order the journal had working at the kill was re-booked by the paper broker (none closed);
- the daemon's positions, cash and open orders equal the replay's (read while the journal does
  not change, so both describe the same moment);
- no client order id was ever submitted twice: each appears in exactly one journaled ``Order``
  record (the manager journals an order once, before the broker sees it), across every restart.

Binance: the same on the local Binance peer, whose market goes on trading and filling omnid's
orders while omnid is down; after each restart the daemon's position and open orders must equal
the venue's (the sum of its executed quantities, its working orders), the balance check finds no
difference, the journal replay agrees, and the peer got one ``POST /api/v3/order`` per
newClientOrderId. ``OMNID_SLOW=1`` runs more rounds; ``OMNID_SEED`` fixes the random points.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

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


BINANCE_CONFIG = """
[[instruments]]
symbol = "BTCUSDT"
venue = "BINANCE"
quote_currency = "USDT"
base_currency = "BTC"
tick_size = 0.01
lot_size = 0.00001
min_qty = 0.00001
min_notional = 5.0

[sim_market]
enabled = false

[admin]
cancel_orders_on_stop = false

[[strategies]]
name = "mom"
kind = "momentum"
instruments = ["BTCUSDT.BINANCE"]
params = {{ qty = 0.001 }}

[[strategies]]
name = "resting"
kind = "tests.restart_strategy:RestingLimits"
instruments = ["BTCUSDT.BINANCE"]

[binance]
enabled = true
trading = true
rest_url = "{rest}"
ws_url = "{ws}"
ws_api_url = "{api}"
symbols = ["BTCUSDT"]
streams = ["trade"]
reconnect_initial_s = 0.05
status_query_attempts = 3
"""


class VenueMarket:
    """The market behind the Binance peer: a random walk of trades, and a matcher that fills the
    peer's working orders against it (partly, at times) whether or not omnid is up."""

    def __init__(self, peer: Any, rng: random.Random) -> None:
        self.peer = peer
        self.rng = rng
        self.price = Decimal("50000.00")
        self.running = True
        self.held = Decimal(0)  # the account's BTC, as the venue books it
        self.filled: list[str] = []  # client order ids, one per fill made

    async def run(self) -> None:
        while True:
            await asyncio.sleep(0.02)
            if not self.running:
                continue
            step = Decimal(self.rng.choice((-3, -1, 1, 2, 3, -2))) * Decimal("2.50")
            self.price = max(self.price + step, Decimal("40000.00"))
            await self.peer.trade("BTCUSDT", str(self.price), "0.01000", buyer_maker=step < 0)
            self.match()

    def match(self) -> None:
        for cid, o in list(self.peer.orders.items()):
            if o.status not in ("NEW", "PARTIALLY_FILLED") or self.rng.random() < 0.5:
                continue
            buy = o.side == "BUY"
            if o.type == "LIMIT" and (self.price > o.price if buy else self.price < o.price):
                continue
            left = o.qty - o.executed
            qty = left if left <= Decimal("0.00001") or self.rng.random() < 0.7 else (
                left / 2).quantize(Decimal("0.00001"))
            px = self.price if o.type == "MARKET" else o.price
            self.peer.fill(cid, str(qty), str(px))
            self.filled.append(cid)
            self.held += qty if buy else -qty
            self.peer.balances["BTC"] = (self.held, Decimal(0))

    def positions(self) -> float:
        return float(sum((o.executed if o.side == "BUY" else -o.executed) for o in self.peer.orders.values()))

    def open_orders(self) -> set[str]:
        return {c for c, o in self.peer.orders.items() if o.status in ("NEW", "PARTIALLY_FILLED")}


async def test_sigkill_on_the_binance_peer_venue_truth_wins_and_nothing_is_sent_twice(tmp_path: Path) -> None:
    """Kill -9 at random points while trading on the Binance peer, with fills going on at the
    venue while omnid is down; after each restart the daemon's position and open orders equal the
    venue's and the journal's, and the peer received each newClientOrderId exactly once."""
    from tests.peers.binance_peer import API_KEY, SECRET, BinancePeer

    rng = random.Random(int(os.environ.get("OMNID_SEED", "0")) or None)
    rounds = 8 if SLOW else 3
    peer = BinancePeer()
    await peer.start()
    peer.balances["BTC"] = (Decimal(0), Decimal(0))
    market = VenueMarket(peer, rng)
    market_task = asyncio.create_task(market.run())
    data_dir = tmp_path / "var"
    config = tmp_path / "omnid.toml"
    config.write_text(BINANCE_CONFIG.format(rest=peer.rest_url, ws=peer.ws_url, api=peer.ws_api_url))
    env = _env(data_dir, BINANCE_API_KEY=API_KEY, BINANCE_API_SECRET=SECRET)
    journal = data_dir / "journal.wal"
    iid = "BTCUSDT.BINANCE"
    booked_at_reconcile = 0

    async def daemon_matches_venue() -> tuple[float, set[str]]:
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            pos, _cash, opened = await asyncio.to_thread(_daemon_state, env)
            if abs(pos.get(iid, 0.0) - market.positions()) <= 1e-9 and opened == market.open_orders():
                return pos.get(iid, 0.0), opened
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"daemon {pos}, {sorted(opened)} != venue {market.positions()}, "
                                     f"{sorted(market.open_orders())}")
            await asyncio.sleep(0.1)

    try:
        r = await asyncio.to_thread(cli, env, "start", config=config)
        assert r.returncode == 0, r.stdout + r.stderr
        for n in range(rounds):
            await asyncio.sleep(rng.uniform(1.0, 3.0))  # trading at a random point
            await asyncio.to_thread(_kill, env, data_dir)
            mark = len(market.filled)
            await asyncio.sleep(rng.uniform(0.2, 1.0))  # the venue goes on filling while omnid is down
            market.running = False  # then stands still until we have compared
            filled_while_down = set(market.filled[mark:])
            r = await asyncio.to_thread(cli, env, "start", config=config)
            assert r.returncode == 0, r.stdout + r.stderr
            assert (await asyncio.to_thread(ask, env, "pause")).ok
            await daemon_matches_venue()
            st = (await asyncio.to_thread(ask, env, "status")).data
            venue = st["restored"]["venues"]["BINANCE"]
            assert venue["position_differences"] == 0, st["restored"]
            # Each order filled while down is booked at reconcile (once: its cumulative quantity).
            assert venue["fills_booked"] >= len(filled_while_down), (venue, filled_while_down)
            booked_at_reconcile += venue["fills_booked"]
            rep = await asyncio.to_thread(_check_against_journal, env, journal, {})
            assert all(k == 1 for k in rep.order_records.values())
            assert peer.order_posts == len(peer.orders), f"round {n}: a client order id was sent twice"
            market.running = True
            assert (await asyncio.to_thread(ask, env, "resume")).ok
        assert len(peer.orders) >= 3 and any(o.executed for o in peer.orders.values()), "hardly traded"
        assert booked_at_reconcile == sum(
            e["event"] == "reconcile difference" and e.get("kind") == "missed_fill" for e in log_events(data_dir))
        assert (await asyncio.to_thread(cli, env, "stop", config=config)).returncode == 0
    finally:
        market_task.cancel()
        pid_file = data_dir / "omnid.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
        await peer.stop()
