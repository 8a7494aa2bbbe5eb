"""The daemon's trading core: the Engine with storage, the journal and restart, behind one surface.

Start-up, first start or restart alike (:meth:`EngineCore.start`):

1. **restore**: replay the write-ahead journal: the portfolio's exact ledger and every fill after
   it, every order's last state, and the client-order-id sequence (so no id is ever reused);
2. **reconcile**: orders still open in the journal go back to their broker: a live venue client
   (Binance when ``[binance] trading``) adopts them and re-reads balances and orders from the
   venue (the venue's truth wins: a fill it reports that the journal lacks is booked once, then
   positions, and cash where the venue reports the account currency, are set to the venue's
   numbers; every difference is logged, alerted, journaled and recorded; a base asset the venue
   holds with no omnid position open in it is named in the log and in status, never adopted,
   so no strategy sells what omnid did not buy); the paper broker
   re-books them (it keeps its book in memory, so without this a restart would cancel every
   working paper order, which no real venue does), and its venue ids, fill ids and positions
   continue from the journal;
3. **warm up**: the strategies start without seeing data while their features take the last
   ``[admin] warmup_s`` of stored trades (features only: no broker, marks or exits see them);
4. :meth:`enable_trading` lets the strategies see market data.

Storage (:class:`~omnid.storage.service.Storage`: recorder, flusher, sinks, journal) runs beside
it; its recorder is wrapped by :class:`TapRecorder`, which also tells the daemon (logs, alerts)
about every order, fill, denial, halt, strategy error and execution issue as it is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from decimal import Context, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import structlog

from omnid.calendar import NS_PER_SECOND
from omnid.config import OmnidConfig
from omnid.engine import Engine, build_engine
from omnid.errors import ConfigError, OmnidError
from omnid.execution.events import ExecutionIssue
from omnid.model import Fill, MarketEvent, Order, OrderStatus, Quote, Trade
from omnid.portfolio import CashAdjustment, side_of, to_decimal
from omnid.ports import OrderUpdate
from omnid.risk.events import RiskDenial, RiskHaltEvent
from omnid.risk.gate import RiskGate
from omnid.storage.history import HistoryReader
from omnid.storage.recorder import BatchRecorder
from omnid.storage.service import Storage
from omnid.strategies.base import StrategyErrorRecord

if TYPE_CHECKING:
    from omnid.daemon import Daemon

log = structlog.get_logger("omnid.core")

#: Risk keys whose new values the live gate takes on reload; other risk changes need a restart.
LIVE_RISK_KEYS = frozenset(
    {
        "max_open_positions",
        "price_collar_pct",
        "max_symbol_exposure",
        "max_symbol_exposure_pct",
        "max_gross_exposure",
        "max_gross_exposure_pct",
        "sizing",
        "max_orders",
        "rate_window_seconds",
    }
)


class TapRecorder:
    """Records into storage, then hands selected types to a listener (logs and alerts).

    One dict lookup per record on top of the storage append; a listener that raises is logged and
    never reaches the trading path.
    """

    __slots__ = ("errors", "inner", "listeners")

    def __init__(self, inner: BatchRecorder, listeners: dict[type[Any], Callable[[Any], None]]) -> None:
        self.inner = inner
        self.listeners = listeners
        self.errors = 0

    def record(self, item: msgspec.Struct) -> None:
        self.inner.record(item)
        fn = self.listeners.get(type(item))
        if fn is not None:
            try:
                fn(item)
            except Exception:
                self.errors += 1
                log.exception("record listener failed", type=type(item).__name__)


class EngineCore:
    """Implements :class:`omnid.daemon.TradingCore` on the Engine."""

    def __init__(self, daemon: Daemon) -> None:
        cfg = daemon.cfg
        self.daemon = daemon
        self.cfg = cfg
        self.storage = Storage.from_config(cfg)
        self.batch = self.storage.recorder
        # Each alert's fate (sent, refused, given up, dropped) is recorded beside the orders.
        daemon.alerts.recorder = self.batch
        self.recorder = TapRecorder(
            self.batch,
            {
                Fill: daemon.on_fill,
                Order: daemon.on_order,
                RiskDenial: self._on_denial,
                RiskHaltEvent: self._on_halt,
                StrategyErrorRecord: self._on_strategy_error,
                ExecutionIssue: self._on_issue,
            },
        )
        self.flusher = self.storage.flusher
        self.journal = self.storage.journal
        self.engine: Engine = build_engine(
            cfg, clock=daemon.clock, recorder=self.recorder, journal=self.journal, session="D"
        )
        self.live_clients: list[Any] = []
        self._sessions: list[Any] = []
        if cfg.binance.enabled and cfg.binance.trading:
            self.live_clients.append(self._binance_broker())
        self.restored: dict[str, Any] = {}
        self.trading = "starting"
        self._record_market = True
        self._final_storage: dict[str, Any] | None = None
        #: Trades that arrived older than [admin] stale_trade_s: features only (see on_event).
        self._stale_ns = int(daemon.cfg.admin.stale_trade_s * NS_PER_SECOND)
        self._now_ns = daemon.clock.now_ns
        self.stale_trades = 0
        self.warmed_up = 0
        self._owners: dict[str, str] = {}  # instrument id -> the strategy that last traded it

    def _binance_broker(self) -> Any:
        """The Binance execution client, routed for venue BINANCE (credentials checked here)."""
        import aiohttp

        from omnid.venues.binance.service import build_broker

        session = aiohttp.ClientSession()
        self._sessions.append(session)
        engine = self.engine

        def last_price(symbol: str) -> float | None:
            px = engine.last_price(f"{symbol}.BINANCE")
            return px if math.isfinite(px) else None

        base = Path(self.cfg.config_path).parent if self.cfg.config_path else None
        broker = build_broker(self.cfg.binance, session=session, base_dir=base, last_price=last_price)
        engine.manager.router.add(broker)
        return broker

    # ---- start-up --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Storage up, then restore from the journal and reconcile with the brokers."""
        await self.storage.start()
        state = self.storage.restore()
        state.restore_portfolio(self.engine.portfolio)
        # Restored positions get the configured stop/target levels again, owned by the strategy
        # that last traded them (the ledger keeps positions, not owners).
        owners = self._owners = {f.instrument_id: f.strategy_id for f in state.fills}
        adopted = 0
        for pos in self.engine.portfolio.positions():
            self.engine.gate.exits.adopt(pos, strategy_id=owners.get(pos.instrument_id, "risk"))
            adopted += 1
        open_before = self.engine.manager.resume(state.orders.values(), last_seq=state.last_seq)
        for order in state.open_orders:
            # The gate counts them as in flight again (exposure, duplicate guard), as before the stop.
            self.engine.gate.on_order_open(order)
        live = {c.venue: c for c in self.live_clients}
        paper_open: list[Order] = []
        for order in state.open_orders:
            client = live.get(order.instrument_id.rpartition(".")[2])
            if client is not None:
                client.adopt(order)  # the venue knows it: its state comes back in reconcile
            else:
                paper_open.append(order)
        rebooked, cancelled = self._reconcile_paper(paper_open, state.fills)
        venues: dict[str, Any] = {}
        for client in self.live_clients:
            venues[client.venue] = await self._reconcile_venue(client)
        self.restored = {
            "orders": len(state.orders),
            "fills": len(state.fills),
            "open_orders_found": open_before,
            "rebooked_at_paper": rebooked,
            "closed_on_reconcile": cancelled,
            "last_seq": state.last_seq,
            "torn_tail_bytes_repaired": self.journal.recovered.truncated_bytes,
            "positions": adopted,
            "problems": state.problems[:20],
            "venues": venues,
        }
        log.info("state restored from the journal", **self.restored)
        # Strategies start (features resolved, timers set) but see no market data until
        # enable_trading; meanwhile their features warm up from stored trades.
        self.engine.start(trading=False)
        self.warmed_up = await self._warm_up()
        clock = self.daemon.clock
        clock.set_periodic("core.bars", NS_PER_SECOND, lambda ev: self.engine.on_time(ev.ts_fired))
        sync_ns = max(self.cfg.storage.journal.fsync_interval_ms, 50) * 1_000_000
        clock.set_periodic("core.journal_sync", sync_ns, lambda _ev: self._sync_journal())

    async def _warm_up(self) -> int:
        """Feed the last ``admin.warmup_s`` of stored trades to the features (only the features:
        no broker, marks, exits or strategies see them). Returns how many; never fatal."""
        window = self.cfg.admin.warmup_s
        if window <= 0:
            return 0
        now = self.daemon.clock.now_ns()
        start = now - int(window * NS_PER_SECOND)
        features = self.engine.features
        n = 0
        try:
            async with HistoryReader.open(self.cfg.storage, self.cfg.data_dir, table="md.trades") as reader:
                for iid in self.engine.instruments:
                    for trade in await reader.trades(iid, start, now):
                        try:
                            features.on_trade(trade)
                        except OmnidError:
                            continue  # a bad stored row is skipped, as live would
                        n += 1
        except Exception as exc:
            log.warning("feature warm-up skipped", error=str(exc))
            return n
        log.info("features warmed up from stored trades", trades=n, window_s=window)
        return n

    def _reconcile_paper(self, open_orders: list[Order], fills: list[Fill]) -> tuple[int, int]:
        """Give journaled open orders back to the paper broker, as a venue would still hold them.

        Its fill and venue-order numbering continues past the journal's (fill ids stay unique
        across runs) and it learns the restored positions. An order it cannot take (no paper
        broker, or already known) is closed as cancelled. Returns (re-booked, cancelled).
        """
        paper = self.engine.paper
        now = self.daemon.clock.now_ns()
        rebooked = cancelled = 0
        if paper is not None:
            prefix = f"{paper.venue}-"
            order_seq = fill_seq = 0
            for f in fills:
                if f.fill_id.startswith(prefix + "F"):
                    fill_seq = max(fill_seq, _trailing_int(f.fill_id))
                if f.venue_order_id.startswith(prefix):
                    order_seq = max(order_seq, _trailing_int(f.venue_order_id))
            for o in open_orders:
                if o.venue_order_id.startswith(prefix):
                    order_seq = max(order_seq, _trailing_int(o.venue_order_id))
            paper.skip_ids_past(order_seq, fill_seq)
            for pos in self.engine.portfolio.positions():
                paper.restore_position(pos.instrument_id, pos.qty)
        for order in open_orders:
            if paper is not None and paper.adopt(order):
                rebooked += 1
                log.info("paper order re-booked after restart", client_order_id=order.client_order_id,
                         status=order.status.value, filled_qty=order.filled_qty)
                continue
            self.engine.manager.on_order_update(
                OrderUpdate(
                    client_order_id=order.client_order_id,
                    status=OrderStatus.CANCELLED,
                    ts_event=now,
                    reason="not at the paper broker after a restart",
                )
            )
            cancelled += 1
        return rebooked, cancelled

    async def _reconcile_venue(self, client: Any) -> dict[str, Any]:
        """Start a live venue client and reconcile with it; the venue's truth wins.

        Fills the venue reports that the journal lacks (they happened while omnid was down) are
        booked once, through the order manager, by the client's reconcile; each is logged and
        alerted here. Then each restored position's base-asset balance at the venue is compared
        with it, and every difference is logged and alerted and the position is set to the venue's
        number (a deposit, a withdrawal or a trade made elsewhere: see
        :meth:`~omnid.portfolio.Portfolio.adjust_position`), journaled so a later restart replays
        it, and recorded. Cash is set likewise when the venue reports a balance in the portfolio's
        currency.
        """
        booked: list[Fill] = []

        def collect(fill: Fill, _order: Order | None) -> None:
            booked.append(fill)

        manager = self.engine.manager
        manager.fill_listeners.append(collect)
        try:
            await client.start()  # subscribes the user stream, which reconciles once
            summary: dict[str, Any] = dict(await client.reconcile())
        finally:
            manager.fill_listeners.remove(collect)
        for f in booked:
            text = (f"{client.venue}: fill {f.fill_id} of {f.client_order_id} ({f.side.value} {f.qty:g} "
                    f"{f.instrument_id} @ {f.price:g}) happened while omnid was down; booked at reconcile")
            log.warning("reconcile difference", venue=client.venue, kind="missed_fill", fill_id=f.fill_id,
                        client_order_id=f.client_order_id, qty=f.qty, price=f.price)
            self.daemon.alerts.emit("reconcile", text, venue=client.venue, client_order_id=f.client_order_id)
        diffs = self._position_differences(client)
        adjusted = 0
        for d in diffs:
            log.warning("reconcile difference", venue=client.venue, kind="position", **d)
            self.daemon.alerts.emit(
                "reconcile",
                f"{client.venue}: {d['instrument_id']} venue holds {d['venue_qty']:g} {d['asset']}, "
                f"the journal says {d['journal_qty']:g}; the position is set to the venue's",
                venue=client.venue, instrument_id=d["instrument_id"],
            )
            adjusted += self._adjust_position(client.venue, d)
        cash_adj = self._adjust_cash(client)
        unmanaged = self._unmanaged_holdings(client)
        for asset, qty in unmanaged.items():
            # Not adopted: a strategy must never sell what omnid did not buy (savings held on the
            # same account). Said once per start, so the operator knows why positions show flat.
            log.warning("venue holding not managed", venue=client.venue, asset=asset, venue_qty=qty,
                        why="no open omnid position in an instrument of this asset; strategies will "
                            "not trade it, risk limits do not count it. If it is not omnid's, say so "
                            f"with [binance] hold_back = {{ {asset} = {qty:g} }}: else the position "
                            "omnid opens next is set to the whole balance at the next reconcile")
        summary["unmanaged_holdings"] = unmanaged
        summary["fills_booked"] = len(booked)
        summary["position_differences"] = len(diffs)
        summary["positions_adjusted"] = adjusted
        summary["cash_adjusted"] = cash_adj is not None
        log.info("reconciled with the venue", venue=client.venue, **summary)
        return summary

    def _adjust_position(self, venue: str, d: dict[str, Any]) -> int:
        """Set one position to the venue's quantity (journal, recorder, exits); 1 if it was set.

        The difference enters at the last traded price if one is known, else at the position's
        last mark or average price. A failure is logged and alerted, never raised: reconcile must
        not stop the daemon. A base asset held by more than one instrument's position is left
        alone (alerted): the balance cannot say which position it belongs to.
        """
        iid = d["instrument_id"]
        if d["shared_by"] > 1:
            log.error("reconcile: position not adjusted, asset shared", venue=venue, instrument_id=iid,
                      asset=d["asset"], positions=d["shared_by"])
            self.daemon.alerts.emit("reconcile", f"{venue}: {iid} not set to the venue's {d['venue_qty']:g}: "
                                    f"{d['asset']} is held by {d['shared_by']} positions; check by hand",
                                    venue=venue, instrument_id=iid)
            return 0
        portfolio = self.engine.portfolio
        pos = portfolio.position(iid)
        price = self.engine.last_price(iid)
        if not (math.isfinite(price) and price > 0) and pos is not None:
            price = pos.last_price if pos.last_price > 0 else pos.avg_price
        try:
            adj = portfolio.adjust_position(iid, d["venue_exact"], price=price,
                                            reason=f"reconcile with {venue}", ts=self.daemon.clock.now_ns())
            if adj is None:
                return 0
            self.journal.append(adj)
        except OmnidError as exc:
            log.error("reconcile: position not adjusted", venue=venue, instrument_id=iid, error=str(exc))
            self.daemon.alerts.emit("reconcile", f"{venue}: {iid} could not be set to the venue's "
                                    f"{d['venue_qty']:g}: {exc}", venue=venue, instrument_id=iid)
            return 0
        self.recorder.record(adj)
        log.warning("position adjusted to the venue", venue=venue, instrument_id=iid,
                    qty_before=adj.qty_before, qty_after=adj.qty_after, price=adj.price,
                    cost_change=adj.cost_change)
        pos = portfolio.position(iid)
        exits = self.engine.gate.exits
        before = float(adj.qty_before)
        if pos is not None and pos.qty:
            exits.adopt(pos, strategy_id=self._owners.get(iid, "risk"))
        elif before:
            # Flat now: the exits drop their levels as after a closing fill (this Fill goes only to
            # their bookkeeping, never to the ledger or the journal), so no stop fires on nothing.
            exits.on_fill(Fill(fill_id=f"reconcile-{adj.ts_event}", client_order_id="", instrument_id=iid,
                               strategy_id="risk", side=side_of(-before), qty=abs(before),
                               price=float(adj.price), ts_event=adj.ts_event))
        return 1

    def _adjust_cash(self, client: Any) -> CashAdjustment | None:
        """Set cash to the venue's balance of the portfolio's currency, when the venue reports
        one (a venue quoting in another currency leaves cash alone); logged, alerted, journaled."""
        portfolio = self.engine.portfolio
        balances = getattr(client, "balances", None)
        if not isinstance(balances, dict) or portfolio.currency not in balances:
            return None
        exact = _venue_amount(client, portfolio.currency)
        venue_cash = float(exact)
        before = portfolio.cash()
        try:
            adj = portfolio.adjust_cash(exact, reason=f"reconcile with {client.venue}",
                                        ts=self.daemon.clock.now_ns())
            if adj is None:
                return None
            self.journal.append(adj)
        except OmnidError as exc:
            log.error("reconcile: cash not adjusted", venue=client.venue, error=str(exc))
            return None
        self.recorder.record(adj)
        log.warning("reconcile difference", venue=client.venue, kind="cash", currency=adj.currency,
                    venue_cash=venue_cash, journal_cash=before)
        self.daemon.alerts.emit(
            "reconcile",
            f"{client.venue}: {adj.currency} balance is {venue_cash:g}, the journal says {before:g}; "
            "cash is set to the venue's",
            venue=client.venue, currency=adj.currency,
        )
        return adj

    def _position_differences(self, client: Any) -> list[dict[str, Any]]:
        """Restored positions whose base asset the venue holds in a different quantity."""
        balance = getattr(client, "balance", None)
        if balance is None:
            return []
        suffix = f".{client.venue}"
        held: list[tuple[Any, str]] = []
        for pos in self.engine.portfolio.positions():
            if not pos.instrument_id.endswith(suffix):
                continue
            inst = self.engine.instruments.get(pos.instrument_id)
            asset = inst.base_currency if inst is not None else ""
            if asset:
                held.append((pos, asset))
        per_asset: dict[str, int] = {}
        for _, asset in held:
            per_asset[asset] = per_asset.get(asset, 0) + 1
        out: list[dict[str, Any]] = []
        for pos, asset in held:
            exact = _venue_amount(client, asset)
            venue_qty = float(exact)
            if abs(venue_qty - pos.qty) > 1e-9 * max(1.0, abs(pos.qty)):
                # An asset two positions share (BTCUSDT and BTCFDUSD) cannot say which one moved.
                out.append({"instrument_id": pos.instrument_id, "asset": asset, "venue_qty": venue_qty,
                            "journal_qty": pos.qty, "venue_exact": str(exact),
                            "shared_by": per_asset[asset]})
        return out

    def _unmanaged_holdings(self, client: Any) -> dict[str, float]:
        """Base assets of this venue's configured instruments that the venue holds while no omnid
        position in them is open (bought before omnid, or elsewhere): asset → free + locked."""
        if getattr(client, "balance", None) is None:
            return {}
        suffix = f".{client.venue}"
        instruments = self.engine.instruments
        open_assets = set()
        for pos in self.engine.portfolio.positions():
            inst = instruments.get(pos.instrument_id)
            if inst is not None and pos.instrument_id.endswith(suffix):
                open_assets.add(inst.base_currency)
        out: dict[str, float] = {}
        currency = self.engine.portfolio.currency
        for iid, inst in sorted(instruments.items()):
            asset = inst.base_currency
            if (not iid.endswith(suffix) or not asset or asset in open_assets or asset in out
                    or asset == currency):
                continue
            qty = float(_venue_amount(client, asset))
            if qty > 0.0:
                out[asset] = qty
        return out

    def enable_trading(self) -> None:
        self.engine.enable_trading()
        self.trading = "enabled"
        log.info("strategies started", strategies=sorted(self.engine.runners))

    # ---- hot path --------------------------------------------------------------------------------

    def on_event(self, event: MarketEvent) -> None:
        cls = type(event)
        stale = self._stale_ns
        if stale and cls is Trade and self._now_ns() - event.ts_event > stale:
            self._on_stale_trade(event)  # type: ignore[arg-type]
        else:
            self.engine.on_event(event)
        if self._record_market and (cls is Trade or cls is Quote):
            self.batch.record(event)

    def _on_stale_trade(self, trade: Trade) -> None:
        """Features only, as the warm-up feeds them: a strategy deciding, or the paper broker
        filling, on a price from before now would act on a market that has moved on."""
        self.stale_trades += 1
        n = self.stale_trades
        if n == 1 or n % 10_000 == 0:
            # A catch-up makes a burst of these; a steady stream means this machine's clock runs
            # ahead of the venue's (every trade looks old), which would silence the strategies.
            log.warning("stale trades go to the features only", trades=n, instrument_id=trade.instrument_id,
                        age_s=round((self._now_ns() - trade.ts_event) / NS_PER_SECOND, 3),
                        hint="a feed catching up, or this machine's clock ahead of the venue's "
                             "(check NTP); [admin] stale_trade_s sets the limit")
        with contextlib.suppress(OmnidError):  # a malformed print: the live path rejects it too
            self.engine.features.on_trade(trade)

    # ---- listeners (called from TapRecorder) -----------------------------------------------------

    def _on_denial(self, d: RiskDenial) -> None:
        log.info(
            "risk denied",
            strategy_id=d.strategy_id,
            instrument_id=d.instrument_id,
            side=d.side.value,
            rule=d.rule,
            message=d.message,
            numbers=d.numbers,
        )
        self.daemon.watcher.on_denial(d.strategy_id, d.instrument_id, d.rule, d.message)

    def _on_halt(self, h: RiskHaltEvent) -> None:
        log.warning("risk halt" if h.halted else "risk resume", source=h.source, reason=h.reason, **h.numbers)
        if h.halted and not self.daemon.stopping:
            self.daemon.watcher.on_halt(f"{h.source}: {h.reason}")

    def _on_strategy_error(self, e: StrategyErrorRecord) -> None:
        log.error(
            "strategy error: disabled",
            strategy_id=e.strategy_id,
            hook=e.hook,
            error_type=e.error_type,
            message=e.message,
            traceback=e.traceback,
        )
        self.daemon.watcher.on_strategy_error(e.strategy_id, f"{e.hook} raised {e.error_type}: {e.message}")

    def _on_issue(self, i: ExecutionIssue) -> None:
        log.warning("execution issue", kind=str(i.kind), client_order_id=i.client_order_id, message=i.message)

    def _sync_journal(self) -> None:
        try:
            self.journal.sync()
        except Exception:
            log.exception("journal fsync failed")

    # ---- control surface -------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        st = self.engine.status()
        st.pop("positions", None)
        st.pop("pnl", None)
        gate = self.engine.gate
        trading = self.trading
        if trading == "enabled" and gate.halted:
            trading = (
                "halted (new entries blocked: "
                + ", ".join(f"{k}: {v}" for k, v in gate.kill.halts.items())
                + ")"
            )
        st.pop("trading", None)  # the engine's flag; the daemon's word (below) says more
        return {"trading": trading, **st, "restored": self.restored, "warmed_up_trades": self.warmed_up,
                "stale_trades": self.stale_trades}

    def positions(self) -> list[dict[str, Any]]:
        return self.engine.positions()

    def orders(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = msgspec.to_builtins(self.engine.manager.open_orders())
        return out

    def pnl(self) -> dict[str, Any]:
        return {
            k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v)
            for k, v in self.engine.pnl().items()
        }

    def pause(self, strategy: str | None) -> list[str]:
        return self.engine.pause(strategy)

    def resume(self, strategy: str | None) -> list[str]:
        names = self.engine.resume(strategy)
        if self.trading == "halted":
            self.trading = "enabled"
        return names

    def flatten(self, reason: str) -> dict[str, Any]:
        return self.engine.flatten(reason)

    def halt_entries(self, reason: str) -> None:
        self.engine.halt_entries(reason)
        self.trading = "stopping"

    def cancel_open_orders(self) -> int:
        return len(self.engine.manager.cancel_all())

    def reload(self, cfg: OmnidConfig) -> tuple[list[str], list[str]]:
        """Apply the risk limits the live gate can take; report the rest (risk keys, strategies)."""
        applied: list[str] = []
        problems: list[str] = []
        old_risk, new_risk = self.cfg.risk, cfg.risk
        if old_risk != new_risk:
            changed = [
                f.name
                for f in msgspec.structs.fields(type(old_risk))
                if getattr(old_risk, f.name) != getattr(new_risk, f.name)
            ]
            live = [k for k in changed if k in LIVE_RISK_KEYS]
            problems.extend(f"risk.{k}: needs a restart" for k in changed if k not in LIVE_RISK_KEYS)
            if live:
                self._apply_risk(new_risk)
                applied.extend(f"risk.{k}" for k in live)
                log.info("risk limits reloaded", keys=live)
        if self.cfg.strategies != cfg.strategies:
            old = {sc.name: sc for sc in self.cfg.strategies}
            changed = [sc.name for sc in cfg.strategies if sc.enabled and old.get(sc.name) != sc]
            try:
                skipped = self.engine.reload_strategies(cfg.strategies)
            except ConfigError as exc:
                problems.append(f"strategies: not applied: {exc}")
            else:
                problems.extend(skipped)
                applied.extend(
                    f"strategies[{n}]" for n in changed if not any(f"{n!r}" in why for why in skipped)
                )
        self.cfg = msgspec.structs.replace(self.cfg, risk=new_risk, strategies=cfg.strategies)
        return applied, problems

    def _apply_risk(self, new_risk: Any) -> None:
        """Swap the gate's stateless limit rules for ones built from the new config."""
        gate = self.engine.gate
        fresh = RiskGate(
            new_risk,
            clock=self.daemon.clock,
            portfolio=self.engine.portfolio,
            instruments=self.engine.instruments,
            recorder=self.recorder,
            calendars=self.cfg.calendars,
        )
        gate.collar = fresh.collar
        gate.max_positions = fresh.max_positions
        gate.exposure = fresh.exposure
        gate.sizer = fresh.sizer
        gate.rate.max_orders = fresh.rate.max_orders
        gate.rate.window_ns = fresh.rate.window_ns

    def stop(self) -> None:
        self.engine.stop()
        self.trading = "stopped"

    def storage_status(self) -> dict[str, Any]:
        if self._final_storage is not None:
            return self._final_storage
        s = self.flusher.stats()
        sinks = s.get("sinks", {})
        queued = sum(int(w.get("queued", 0)) for w in sinks.values())
        errors = [
            f"{n}: {w['last_error']}" for n, w in sinks.items() if w.get("spooling") and w.get("last_error")
        ]
        out: dict[str, Any] = {
            "backlog": int(s.get("buffered", 0)) + queued,
            "recorded": s.get("recorded", 0),
            "dropped": s.get("dropped", 0),
            "written": {n: w.get("written", 0) for n, w in sinks.items()},
            "spooling": [n for n, w in sinks.items() if w.get("spooling")],
            "journal_appends": self.journal.appends,
        }
        # A sink that prunes a batch ledger (PostgreSQL): its retention counters, so a prune that
        # fails every hour (permissions, say) shows in `omnid status`, not only in the log. Not an
        # "error": no data is at risk, the ledger only grows until the cause is fixed.
        ledgers = {n: w["ledger"] for n, w in sinks.items() if isinstance(w.get("ledger"), dict)}
        if ledgers:
            out["ledger"] = ledgers
        rejected = {n: w["rejected"] for n, w in sinks.items() if w.get("rejected")}
        if rejected:  # rows left out as unstorable (logged one by one): the rest of their batch is stored
            out["rejected_rows"] = rejected
        if errors:
            out["error"] = "; ".join(errors)
        return out

    async def _await_venue_cancels(self) -> None:
        """Give cancels sent to live venues on stop a bounded time to be confirmed."""
        if not self.live_clients or not self.daemon.cfg.admin.cancel_orders_on_stop:
            return
        suffixes = tuple(f".{c.venue}" for c in self.live_clients)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(5.0, self.daemon.cfg.admin.stop_timeout_s / 3)
        while loop.time() < deadline:
            left = [o for o in self.engine.manager.open_orders() if o.instrument_id.endswith(suffixes)]
            if not left:
                return
            await asyncio.sleep(0.05)
        log.warning("venue orders still open at stop", orders=[o.client_order_id for o in left])

    async def flush(self) -> None:
        """Journal synced, storage flushed and closed (unwritten rows stay in the spool)."""
        try:
            self.journal.sync()
        except Exception:
            log.exception("journal sync on stop failed")
        await self._await_venue_cancels()
        for client in self.live_clients:
            try:
                await client.stop()
            except Exception:
                log.exception("stopping a venue client failed", venue=client.venue)
        for session in self._sessions:
            await session.close()
        await self.flusher.stop(timeout_s=max(self.daemon.cfg.admin.stop_timeout_s / 2, 1.0))
        self.journal.close()
        workers = self.flusher.workers
        self._final_storage = {
            "backlog": self.batch.pending + sum(w.queued_rows for w in workers.values()),
            "recorded": self.batch.recorded + self.batch.pending,
            "dropped": self.batch.dropped,
            "written": {n: w.rows_written for n, w in workers.items()},
            "spooling": [n for n, w in workers.items() if w.spooling],
            "journal_appends": self.journal.appends,
            "closed": True,
        }
        rejected = {n: int(getattr(w.sink, "rejected", 0) or 0) for n, w in workers.items()}
        if any(rejected.values()):
            self._final_storage["rejected_rows"] = {n: r for n, r in rejected.items() if r}
        log.info("storage flushed", **self._final_storage)


_SUM = Context(prec=120)  # far beyond any balance: exact for every real one


def _venue_amount(client: Any, asset: str) -> Decimal:
    """A venue balance (free + locked) less what the client holds back for others
    (``[binance] hold_back``), never below 0, exactly: each float is read as the decimal the
    venue sent, so ``0.1 + 0.2`` is ``0.3``, not ``0.30000000000000004``."""
    balances = getattr(client, "balances", None)
    if isinstance(balances, dict) and asset in balances:
        free, locked = balances[asset]
        amount = _SUM.add(to_decimal(free), to_decimal(locked))
    else:
        amount = to_decimal(float(client.balance(asset)))
    held = getattr(client, "hold_back", None)
    if isinstance(held, dict) and asset in held:
        amount = max(_SUM.subtract(amount, to_decimal(float(held[asset]))), Decimal(0))
    return amount


def _trailing_int(text: str) -> int:
    """The number an id ends with (``PAPER-F42`` → 42), 0 when it ends otherwise."""
    digits = len(text) - len(text.rstrip("0123456789"))
    return int(text[-digits:]) if digits else 0


def engine_core_factory(daemon: Daemon) -> EngineCore:
    return EngineCore(daemon)
