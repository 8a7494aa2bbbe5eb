"""The synchronous core's dispatch: one market event in, everything that follows from it, in order.

For a trade::

    paper broker        pending orders fill at this price first (a decision never fills on the
                        price it was taken on: it fills at the next one)
    portfolio.mark      positions valued at the new price
    features            indicators updated (and bars completed from trades)
    managed exits       stop-loss / take-profit / trailing stop crossings become CLOSE intents
    strategies          their hooks return intents (reason + numbers)
    risk gate           each intent approved (sized, rounded) or denied (recorded)
    order manager       approved intents become journaled orders, routed to the broker
    recorder            intents, denials, orders and fills are appended (never blocks)

Bars go the same way (a decision on a bar's close fills at the next bar's open); quotes and book
updates feed the paper broker and the features. Nothing here awaits: the backtester calls
:meth:`Engine.on_trade` in a plain loop with a :class:`~omnid.clock.SimClock`, the daemon calls
:meth:`Engine.on_event` from its feed tasks with a :class:`~omnid.clock.LiveClock`.

Speed: everything that can be decided once is decided at :meth:`Engine.start` — per instrument
the list of strategy hooks to call (only running strategies, only those fed by that event's
source), the bound methods of the parts — so a tick that changes nothing costs a few dict lookups
and direct calls. The lists are rebuilt when a strategy is paused, resumed or disabled. A caller
that knows the instrument (the backtester's replay loop) takes :meth:`Engine.trade_path` once per
instrument and skips the remaining per-tick lookups; a strategy may offer ``trade_hook(iid)``, its
``on_trade`` bound to one instrument, which the dispatch lists then hold.

Intents that arise while the paper broker is matching (a strategy's ``on_fill``, a loss-limit
flatten) are queued and processed right after it, so an order is never added to the broker's
book in the middle of its own matching loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import msgspec

from omnid.clock import Clock, TimeEvent
from omnid.config import OmnidConfig
from omnid.errors import ConfigError, DataError, RejectedError, StrategyError
from omnid.execution.journal import Journal
from omnid.execution.manager import OrderManager
from omnid.execution.router import Router
from omnid.features.engine import TICK, FeatureEngine, parse_source, source_name
from omnid.features.spec import parse_item
from omnid.model import (
    Bar,
    BookDelta,
    BookSnapshot,
    Fill,
    Instrument,
    IntentAction,
    MarketEvent,
    Order,
    OrderIntent,
    OrderStatus,
    Quote,
    Trade,
)
from omnid.portfolio import Portfolio
from omnid.ports import ExecutionClient, Recorder
from omnid.risk.events import RiskDenial
from omnid.risk.gate import RiskGate
from omnid.risk.rules import KillSwitch
from omnid.strategies.base import (
    Indicator,
    Intents,
    RunState,
    Strategy,
    StrategyContext,
    StrategyRunner,
    decode_params,
)
from omnid.strategies.config import StrategyConfig
from omnid.strategies.registry import known_kinds, strategy_class
from omnid.tradepath import compile_trade_path
from omnid.venues.paper.broker import PaperBroker
from omnid.venues.paper.config import PaperConfig

_ACCEPTED = OrderStatus.ACCEPTED
# Read per order status change: module globals, since an enum member read through its class
# (``OrderStatus.SUBMITTED``) and the ``is_terminal`` property each cost ~80-90 ns on Python 3.11.
_SUBMITTED = OrderStatus.SUBMITTED
_TERMINAL = frozenset(s for s in OrderStatus if s.is_terminal)
_OPEN = IntentAction.OPEN
#: Feature kinds computed from the order book (tick source only).
_BOOK_KINDS = frozenset({"obi"})

#: (runner, bound hook) pairs the engine calls for one event.
Handlers = list[tuple[StrategyRunner, Callable[[Any], Intents]]]


class RejectedEvent(msgspec.Struct, kw_only=True):
    """A market event the engine dropped as malformed (NaN/inf, non-positive price, ...), and why."""

    kind: str
    instrument_id: str
    reason: str
    ts_event: int


class _Route:
    """One instrument's trade handlers, held in a stable object so a per-instrument trade path
    (:meth:`Engine.trade_path`) sees the lists :meth:`Engine._rebuild` assigns."""

    __slots__ = ("handlers",)

    def __init__(self) -> None:
        self.handlers: Handlers = []


class _Features:
    """A strategy's view of the feature engine: spec items resolve on the strategy's source, except
    order-book features, which only exist on the tick source (a book has no bars)."""

    __slots__ = ("_engine", "_source")

    def __init__(self, engine: FeatureEngine, source: int) -> None:
        self._engine = engine
        self._source = source

    def indicator(self, instrument_id: str, spec: str) -> Indicator:
        item = parse_item(spec)
        src = TICK if item.kind in _BOOK_KINDS else self._source
        ind: Indicator = self._engine.ensure(instrument_id, item, src)
        return ind


class Engine:
    """Dispatches market events through broker, features, exits, strategies, risk and orders.

    Build it with :func:`build_engine` (from config) or by handing it the parts; add strategies
    with :meth:`add_strategy`; call :meth:`start`; then feed events. The control surface for the
    daemon's admin socket is :meth:`pause`, :meth:`resume`, :meth:`flatten` and :meth:`status`.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        instruments: Iterable[Instrument],
        features: FeatureEngine,
        portfolio: Portfolio,
        gate: RiskGate,
        manager: OrderManager,
        recorder: Recorder,
        paper: PaperBroker | None = None,
        default_source: str | int = "tick",
        record_intents: bool = True,
    ) -> None:
        self.clock = clock
        self.instruments: dict[str, Instrument] = {i.id: i for i in instruments}
        self.features = features
        self.portfolio = portfolio
        self.gate = gate
        self.manager = manager
        self.recorder = recorder
        self.paper = paper
        self.default_source = parse_source(default_source)
        self._record_intents = record_intents
        self.runners: dict[str, StrategyRunner] = {}
        self._sources: dict[str, int] = {}
        self._last: dict[str, float] = {}
        self._trade_handlers: dict[str, Handlers] = {}
        self._routes: dict[str, _Route] = {iid: _Route() for iid in self.instruments}
        self._bar_handlers: dict[tuple[str, int], Handlers] = {}
        self._quote_handlers: dict[str, Handlers] = {}
        self._fill_handlers: dict[str, tuple[StrategyRunner, Callable[[Fill], Intents]]] = {}
        self._busy = 0  # > 0 while the paper broker matches: intents wait in _queue
        self._queue: list[OrderIntent] = []
        self._inflight: dict[str, float] = {}  # client order id -> signed leaves counted
        self.started = False
        self.stopped = False
        self.trading = True
        self.intents = 0
        self.orders = 0
        self.denials = 0
        self.bad_events = 0
        self.suppressed = 0  # entries not re-sent during a halt (see _one)
        self._halt_denied: set[tuple[str, str]] = set()
        # Bound once: the hot path calls these directly.
        self._paper_trade = paper.on_trade if paper is not None else None
        self._paper_working = paper.working_instruments if paper is not None else frozenset()
        self._mark = portfolio.mark
        self._feat_trade = features.on_trade
        self._exit_price = gate.exits.on_price
        manager.order_listeners.append(self._on_order)
        manager.fill_listeners.append(self._on_fill)

    # ---------------------------------------------------------------------------------------------
    # Set-up

    def add_strategy(
        self,
        name: str,
        kind: str,
        instruments: Sequence[str],
        params: Mapping[str, Any] | None = None,
        *,
        source: str | int | None = None,
    ) -> StrategyRunner:
        """Create a strategy of a registered ``kind``; ConfigError names any problem."""
        where = f"strategies[{name}]"
        if self.started:
            raise ConfigError(where, [("", "strategies are added before the engine starts")])
        if name in self.runners:
            raise ConfigError(where, [("name", f"strategy name {name!r} is used twice")])
        try:
            cls = strategy_class(kind)
        except ValueError as exc:
            raise ConfigError(where, [("kind", str(exc))]) from None
        if cls is None:
            known = ", ".join(known_kinds())
            raise ConfigError(where, [("kind", f"unknown kind {kind!r} (known: {known}; or module:Class)")])
        ids = [self.resolve_instrument(x, where=where) for x in instruments]
        src = self.default_source if source in (None, "") else parse_source(source)
        decoded = decode_params(name, kind, cls.params_type, params or {})
        ctx = StrategyContext(
            clock=self.clock,
            portfolio=self.portfolio,
            features=_Features(self.features, src),
            recorder=self.recorder,
            instruments=self.instruments,
            timer_sink=self._on_strategy_timer,
            universe_sink=self._on_universe,
        )
        strategy = cls(name, ids, decoded, ctx)
        runner = StrategyRunner(strategy, self.recorder)
        self.runners[name] = runner
        self._sources[name] = src
        return runner

    def add_strategy_config(
        self, sc: StrategyConfig, *, source: str | int | None = None
    ) -> StrategyRunner | None:
        """:meth:`add_strategy` from a ``[[strategies]]`` table (None when ``enabled = false``)."""
        if not sc.enabled:
            return None
        return self.add_strategy(sc.name, sc.kind, sc.instruments, sc.params, source=source or sc.source)

    def resolve_instrument(self, text: str, *, where: str = "strategies") -> str:
        """``SYMBOL.VENUE`` as is; a bare symbol when exactly one configured instrument has it."""
        if text in self.instruments:
            return text
        matches = [iid for iid, inst in self.instruments.items() if inst.symbol == text]
        if len(matches) == 1:
            return matches[0]
        known = ", ".join(sorted(self.instruments)) or "none configured"
        why = "is ambiguous" if matches else "is not a configured instrument"
        raise ConfigError(where, [("instruments", f"{text!r} {why} (known: {known})")])

    def start(self, *, trading: bool = True) -> None:
        """Start every strategy (features resolved, timers set), arm the risk gate's timers, and
        build the dispatch lists. Idempotent.

        With ``trading=False`` (the daemon's restart path: restore, reconcile, warm up) market data
        updates features, marks and the broker, but no strategy sees it until
        :meth:`enable_trading`.
        """
        if self.started:
            return
        self.started = True
        self.trading = trading
        self._check_targets()
        for name, runner in self.runners.items():
            src = self._sources[name]
            if src != TICK:
                # A bar-fed strategy needs bars of its interval built from trades even when none of
                # its features asks for that source: a 1-period SMA makes the feature engine keep
                # a bar builder for it (and costs one float update per bar).
                for iid in runner.strategy.instruments:
                    self.features.ensure(iid, "sma:1", src)
        self.gate.install(self.clock, self._emit)
        for runner in self.runners.values():
            out = runner.start()
            if out:
                self._accept(runner, "on_start", out)
        self._rebuild()

    def _check_targets(self) -> None:
        for name, runner in self.runners.items():
            target = getattr(runner.strategy.params, "target", "")
            if not target:
                continue
            other = self.runners.get(target)
            if other is None or other is runner:
                raise ConfigError(
                    f"strategies[{name}]",
                    [("params.target", f"{target!r} is not another configured strategy "
                                       f"(have: {', '.join(sorted(self.runners))})")],
                )
            missing = sorted(set(runner.strategy.instruments) - set(other.strategy.instruments))
            if missing:
                raise ConfigError(
                    f"strategies[{name}]",
                    [("instruments", f"scanner universe has {missing}, which target {target!r} does not "
                                     "trade: list them in its instruments too")],
                )
            # The target enters only what a scan picked: nothing until the first scan.
            other.strategy.universe = frozenset()

    def _rebuild(self) -> None:
        """Dispatch lists from the running strategies (after start, pause, resume, disable)."""
        trade: dict[str, Handlers] = {iid: [] for iid in self.instruments}
        bar: dict[tuple[str, int], Handlers] = {}
        quote: dict[str, Handlers] = {iid: [] for iid in self.instruments}
        fills: dict[str, tuple[StrategyRunner, Callable[[Fill], Intents]]] = {}
        for name, runner in self.runners.items():
            s = runner.strategy
            if runner.live and type(s).on_fill is not Strategy.on_fill:
                fills[name] = (runner, s.on_fill)
            if not runner.active or not self.trading:
                continue
            src = self._sources[name]
            overrides_quote = type(s).on_quote is not Strategy.on_quote
            # A strategy may offer a per-instrument on_trade (``trade_hook``): the same decisions
            # with that instrument's state bound once.
            hook = getattr(s, "trade_hook", None) if src == TICK else None
            for iid in s.instruments:
                if src == TICK:
                    trade[iid].append((runner, hook(iid) if hook is not None else s.on_trade))
                else:
                    bar.setdefault((iid, src), []).append((runner, s.on_bar))
                if overrides_quote:
                    quote[iid].append((runner, s.on_quote))
        self._trade_handlers = trade
        for iid, route in self._routes.items():
            route.handlers = trade[iid]
        self._bar_handlers = bar
        self._quote_handlers = quote
        self._fill_handlers = fills

    # ---------------------------------------------------------------------------------------------
    # Market data in (the hot path)

    def on_event(self, event: MarketEvent) -> None:
        """Any market event (the daemon's feeds call this)."""
        cls = event.__class__
        if cls is Trade:
            self.on_trade(event)  # type: ignore[arg-type]
        elif cls is Bar:
            self.on_bar(event)  # type: ignore[arg-type]
        elif cls is Quote:
            self.on_quote(event)  # type: ignore[arg-type]
        elif cls is BookSnapshot or cls is BookDelta:
            self.on_book(event)  # type: ignore[arg-type]

    def on_book(self, event: BookSnapshot | BookDelta) -> None:
        """Depth for the local book and its imbalance features; a malformed level drops the event."""
        try:
            self.features.on_book(event)
        except DataError as exc:
            self._bad(event, event.instrument_id, str(exc))

    def on_trade(self, trade: Trade) -> None:
        """A trade print: the hot path (see the module docstring for the order of the steps)."""
        iid = trade.instrument_id
        px = trade.price
        size = trade.size
        if px - px or size - size or px <= 0.0 or size < 0.0:  # NaN/inf, or not a price/size
            self._bad(trade, iid, f"trade price {px} / size {size}: need a finite price > 0 and size >= 0")
            return
        paper = self._paper_trade
        if paper is not None and iid in self._paper_working:  # only a working order can fill
            # No try/finally on the hot path: if the broker raises, the error propagates to the
            # caller and the next event resets the flag; queued intents run after that step.
            self._busy = 1
            paper(trade)
            self._busy = 0
            if self._queue:
                self._drain()
        elif self._busy:  # the broker raised on an earlier event: reset as its call would have
            self._busy = 0
            if self._queue:
                self._drain()
        self._mark(iid, px)
        self._last[iid] = px
        bar = self._feat_trade(trade)
        exit_intent = self._exit_price(iid, px, trade.ts_event)
        if exit_intent is not None:
            self._process([exit_intent])
        handlers = self._trade_handlers.get(iid)
        if handlers:
            for runner, fn in handlers:
                try:
                    out = fn(trade)
                except Exception as exc:
                    self._failed(runner, "on_trade", exc)
                    continue
                if out:
                    self._accept(runner, "on_trade", out)
        if bar is not None and self._bar_handlers:
            for done in list(self.features.completed):
                self._dispatch_bar(done)

    def trade_path(self, instrument_id: str, *, checked: bool = False) -> Callable[[Trade], None]:
        """:meth:`on_trade` specialised for one instrument: the same steps in the same order, for a
        caller that already knows the instrument (the backtester's replay loop calls one per tick).

        Everything per-instrument is bound once: the feature state, the handler route, the exits'
        managed map (:meth:`ExitManager.on_price` is only called for an instrument with a managed
        exit: it returns None for the others). What the fast path does not cover (a malformed
        print, a price the features reject, bar builders fed from trades, an unconfigured
        instrument) goes through :meth:`on_trade` itself, so behaviour is the same by construction.
        ``checked=True`` promises that every trade passed has a price in (0, 1e308) and a size in
        [0, 1e308) (a replay checks its columns once in numpy): the path then skips that test.
        """
        general = self.on_trade
        route = self._routes.get(instrument_id)
        st = self.features.find(instrument_id)
        if route is None or st is None:
            return general
        bound = {
            "paper": self._paper_trade,
            "working": self._paper_working,
            "mark": self._mark,
            "last": self._last,
            "managed": self.gate.exits.managed,
            "exit_price": self._exit_price,
            "drain": self._drain,
            "process": self._process,
            "accept": self._accept,
            "failed": self._failed,
        }
        return compile_trade_path(engine=self, iid=instrument_id, st=st, route=route, general=general,
                                  bound=bound, checked=checked)

    def on_bar(self, bar: Bar) -> None:
        """A bar from a file or a venue's kline stream; it fills pending orders at its open first."""
        iid = bar.instrument_id
        o, h, lo, c, v = bar.open, bar.high, bar.low, bar.close, bar.volume
        if o - o or h - h or lo - lo or c - c or v - v or c <= 0.0 or o <= 0.0 or lo > h or v < 0.0:
            self._bad(bar, iid, f"bar open {o} high {h} low {lo} close {c} volume {v}: need finite "
                                "prices > 0, low <= high and volume >= 0")
            return
        paper = self.paper
        if paper is not None:
            self._busy = 1
            paper.on_bar(bar)
            self._busy = 0
            if self._queue:
                self._drain()
        px = bar.close
        self.portfolio.mark(iid, px)
        self._last[iid] = px
        self.features.on_bar(bar)
        exit_intent = self.gate.exits.on_price(iid, px, bar.ts_event)
        if exit_intent is not None:
            self._process([exit_intent])
        self._dispatch_bar(bar)

    def _dispatch_bar(self, bar: Bar) -> None:
        handlers = self._bar_handlers.get((bar.instrument_id, bar.interval_ns))
        if not handlers:
            return
        for runner, fn in handlers:
            try:
                out = fn(bar)
            except Exception as exc:
                self._failed(runner, "on_bar", exc)
                continue
            if out:
                self._accept(runner, "on_bar", out)

    def on_quote(self, quote: Quote) -> None:
        """Top of book: the paper broker may fill at it, book features update, quote hooks run."""
        b, a, bs, az = quote.bid, quote.ask, quote.bid_size, quote.ask_size
        if b - b or a - a or bs - bs or az - az or bs < 0.0 or az < 0.0:
            self._bad(quote, quote.instrument_id, f"quote bid {b} x {bs} / ask {a} x {az}: need finite "
                                                  "prices and sizes >= 0")
            return
        paper = self.paper
        if paper is not None:
            self._busy = 1
            paper.on_quote(quote)
            self._busy = 0
            if self._queue:
                self._drain()
        self.features.on_quote(quote)
        handlers = self._quote_handlers.get(quote.instrument_id)
        if handlers:
            for runner, fn in handlers:
                try:
                    out = fn(quote)
                except Exception as exc:
                    self._failed(runner, "on_quote", exc)
                    continue
                if out:
                    self._accept(runner, "on_quote", out)

    def _bad(self, event: MarketEvent, instrument_id: str, why: str) -> None:
        """Drop a malformed event before any part sees it, and record why (never raise: a bad tick
        must not take the daemon down)."""
        self.bad_events += 1
        self.recorder.record(
            RejectedEvent(kind=type(event).__name__.lower(), instrument_id=instrument_id, reason=why,
                          ts_event=event.ts_event)
        )

    def on_time(self, now: int) -> None:
        """Close bars of quiet markets (the daemon calls this from a timer) and dispatch them."""
        done = list(self.features.on_time(now))
        for bar in done:
            self._dispatch_bar(bar)

    # ---------------------------------------------------------------------------------------------
    # Intents → risk → orders

    def _process(self, intents: list[OrderIntent]) -> None:
        if self._busy:
            self._queue.extend(intents)
            return
        for intent in intents:
            self._one(intent)

    def _emit(self, intent: OrderIntent) -> None:
        """Where the risk gate's own CLOSE intents (square-off, flatten) arrive."""
        self._process([intent])

    def _drain(self) -> None:
        queue = self._queue
        self._queue = []
        for intent in queue:
            self._one(intent)

    def _accept(self, runner: StrategyRunner, hook: str, out: object) -> None:
        """A hook's return value: a list of this strategy's OrderIntents (a single intent or a
        tuple is accepted too). Anything else is a bug in the strategy, which is disabled."""
        if out.__class__ is OrderIntent:
            out = [out]
        elif isinstance(out, tuple):
            out = list(out)
        problem = ""
        if not isinstance(out, list):
            problem = f"{hook} returned {type(out).__name__}, not a list of OrderIntent"
        else:
            for item in out:
                if item.__class__ is not OrderIntent:
                    problem = f"{hook} returned a {type(item).__name__} among its intents, not an OrderIntent"
                    break
                if item.strategy_id != runner.name:
                    problem = (f"{hook} returned an intent for strategy {item.strategy_id!r}: use "
                               "self.intent(...) so intents carry this strategy's name")
                    break
        if problem:
            self._failed(runner, hook, StrategyError(problem, strategy=runner.name, hook=hook))
            return
        if self._busy:  # _process, inline: one call less per order
            self._queue.extend(out)  # type: ignore[arg-type]
            return
        for intent in out:  # type: ignore[attr-defined]
            self._one(intent)

    def _one(self, intent: OrderIntent) -> None:
        opening = intent.action is _OPEN
        if opening and self._halt_denied:
            # While a halt holds, an entry the gate already denied for this strategy and instrument
            # is not sent again (nor recorded): one denial per halt, not one per tick.
            if not self.gate.halted:
                self._halt_denied.clear()
            elif (intent.strategy_id, intent.instrument_id) in self._halt_denied:
                self.suppressed += 1
                return
        self.intents += 1
        if self._record_intents:
            self.recorder.record(intent)
        out = self.gate.check(intent, self._last.get(intent.instrument_id, math.nan))
        if out.__class__ is RiskDenial:
            self.denials += 1
            if opening and out.rule in self.gate.kill.halts:
                self._halt_denied.add((intent.strategy_id, intent.instrument_id))
            return
        self.orders += 1
        self.manager.submit(out)  # type: ignore[arg-type]

    def _failed(self, runner: StrategyRunner, hook: str, exc: BaseException) -> None:
        runner.fail(hook, exc)
        self._rebuild()

    # ---------------------------------------------------------------------------------------------
    # What the order manager tells us

    def _on_order(self, order: Order) -> None:
        status = order.status
        if status is _ACCEPTED:  # an acknowledgement changes nothing the gate or strategy tracks
            return
        terminal = status in _TERMINAL
        if status is _SUBMITTED:
            self.gate.on_order_open(order)
        elif terminal:
            self.gate.on_order_closed(order)
        runner = self.runners.get(order.strategy_id)
        if runner is None:
            return
        # The owning strategy's in-flight quantity: what its open orders may still add.
        coid = order.client_order_id
        old = self._inflight.get(coid, 0.0)
        if terminal:
            new = 0.0
        else:  # sign × leaves_qty, without two attribute-descriptor calls per status change
            left = order.qty - order.filled_qty
            new = order.side.sign * left if left > 0.0 else 0.0
        if new != old:
            runner.strategy.note_in_flight(order.instrument_id, new - old)
            if new:
                self._inflight[coid] = new
            else:
                del self._inflight[coid]

    def _on_fill(self, fill: Fill, order: Order | None) -> None:
        self.gate.on_fill(fill)
        got = self._fill_handlers.get(fill.strategy_id)
        if got is None:
            return
        runner, fn = got
        try:
            out = fn(fill)
        except Exception as exc:
            self._failed(runner, "on_fill", exc)
            return
        if out:
            self._accept(runner, "on_fill", out)

    # ---------------------------------------------------------------------------------------------
    # Strategy timers and scanner hand-offs

    def _on_strategy_timer(self, name: str, event: TimeEvent) -> None:
        runner = self.runners.get(name)
        if runner is None or not runner.live:
            return
        out = runner.call("on_timer", runner.strategy.on_timer, event)
        if runner.state is RunState.DISABLED:
            self._rebuild()
        elif out:
            self._accept(runner, "on_timer", out)

    def _on_universe(self, source: str, target: str, instrument_ids: Sequence[str]) -> None:
        runner = self.runners.get(target)
        if runner is None or not runner.live:
            return
        out = runner.call("on_universe", runner.strategy.on_universe, list(instrument_ids))
        if runner.state is RunState.DISABLED:
            self._rebuild()
        elif out and runner.active:
            self._accept(runner, "on_universe", out)

    # ---------------------------------------------------------------------------------------------
    # Control surface (the daemon's admin socket)

    def _pick(self, strategy: str | None) -> list[StrategyRunner]:
        if strategy is None:
            return list(self.runners.values())
        runner = self.runners.get(strategy)
        if runner is None:
            raise RejectedError(
                f"no strategy named {strategy!r} (have: {', '.join(sorted(self.runners)) or 'none'})",
                strategy=strategy,
            )
        return [runner]

    def pause(self, strategy: str | None = None, reason: str = "paused by operator") -> list[str]:
        """Pause one strategy (or all): no market data, no new decisions; fills still arrive."""
        names = [r.name for r in self._pick(strategy) if r.pause(reason)]
        self._rebuild()
        return names

    def resume(self, strategy: str | None = None, reason: str = "resumed by operator") -> list[str]:
        """Resume one strategy (or all). Resuming all also lifts the operator's halt (flatten)."""
        names = [r.name for r in self._pick(strategy) if r.resume(reason)]
        if strategy is None and KillSwitch.name in self.gate.kill.halts:
            self.gate.resume(reason, source=KillSwitch.name)
        self._rebuild()
        return names

    def flatten(self, reason: str = "flatten by operator") -> dict[str, Any]:
        """Cancel every open order, close every position, and halt new entries until resumed.

        The risk gate's kill switch holds the halt (any entry is denied, whoever sends it), and the
        running strategies are paused too, so they do not send a denied entry on every tick;
        :meth:`resume` (all) lifts both. Managed exits and strategy timers keep working.
        """
        cancelled = self.manager.cancel_all()
        paused = [r.name for r in self.runners.values() if r.pause(f"flatten: {reason}")]
        self._rebuild()
        closes = self.gate.halt(reason, flatten=True)  # emitted through _emit: checked and routed
        return {
            "cancelled": cancelled,
            "closing": [
                {"instrument_id": i.instrument_id, "side": i.side.value, "qty": i.qty} for i in closes
            ],
            "paused": paused,
            "halted": self.gate.halted,
        }

    def reload_strategies(self, configs: Iterable[StrategyConfig]) -> list[str]:
        """Apply new ``params`` to running strategies (config reload); return what could not be
        applied live (new, removed or re-kinded strategies, other instruments or source).

        A strategy whose params changed is re-initialised: its timers are cancelled and
        ``on_start`` runs again with the new params (indicators re-resolved; a crossover waits
        for its next cross). Invalid params raise ConfigError before anything changes.
        """
        wanted = {sc.name: sc for sc in configs if sc.enabled}
        plans: list[tuple[StrategyRunner, Any]] = []
        skipped: list[str] = []
        for name, sc in wanted.items():
            runner = self.runners.get(name)
            if runner is None:
                skipped.append(f"strategy {name!r} is new: restart the daemon to add it")
                continue
            s = runner.strategy
            ids = tuple(self.resolve_instrument(x, where=f"strategies[{name}]") for x in sc.instruments)
            src = self.default_source if not sc.source else parse_source(sc.source)
            if sc.kind != s.kind or ids != s.instruments or src != self._sources[name]:
                skipped.append(f"strategy {name!r}: kind, instruments or source changed: restart to apply")
                continue
            params = decode_params(name, sc.kind, type(s).params_type, sc.params)
            if params != s.params:
                plans.append((runner, params))
        for name in self.runners:
            if name not in wanted:
                skipped.append(f"strategy {name!r} is no longer configured: pause it or restart")
        for runner, params in plans:
            if not runner.live:
                runner.strategy.params = params
                continue
            runner.strategy.cancel_timers()
            runner.strategy.params = params
            out = runner.call("on_start", runner.strategy.on_start)
            if out and runner.active:
                self._accept(runner, "on_start", out)
        self._rebuild()
        return skipped

    def enable_trading(self) -> None:
        """Let strategies see market data (after warm-up and reconciliation)."""
        self.trading = True
        self._rebuild()

    def disable_trading(self) -> None:
        """Keep features, marks and fills going, but stop feeding strategies."""
        self.trading = False
        self._rebuild()

    def cancel_open_orders(self) -> int:
        """Ask every venue to cancel every open order; how many cancels went out."""
        return len(self.manager.cancel_all())

    def open_orders(self) -> list[dict[str, Any]]:
        """Open orders as plain data (status and the admin socket)."""
        return [msgspec.to_builtins(o) for o in self.manager.open_orders()]

    def halt_entries(self, reason: str) -> None:
        """Halt new entries (exits still pass) without closing anything."""
        self.gate.halt(reason, flatten=False)

    def stop(self) -> None:
        """Stop every strategy (their ``on_stop`` intents are still processed). Idempotent."""
        if self.stopped:
            return
        self.stopped = True
        for runner in self.runners.values():
            out = runner.stop()
            if out:
                self._accept(runner, "on_stop", out)
        self._rebuild()

    def last_price(self, instrument_id: str) -> float:
        return self._last.get(instrument_id, math.nan)

    def status(self) -> dict[str, Any]:
        """Strategies and their state, positions, P&L, risk state, open orders (plain data)."""
        return {
            "strategies": [r.status() for r in self.runners.values()],
            "positions": self.positions(),
            "pnl": self.pnl(),
            "risk": msgspec.to_builtins(self.gate.status()),
            "trading": self.trading,
            "open_orders": len(self.manager.open_orders()),
            "counts": {"intents": self.intents, "orders": self.orders, "denials": self.denials,
                       "suppressed_during_halt": self.suppressed, "bad_events": self.bad_events},
        }

    def positions(self) -> list[dict[str, Any]]:
        out = []
        for p in self.portfolio.positions():
            d = msgspec.to_builtins(p)
            d["unrealised_pnl"] = p.unrealised_pnl
            out.append(d)
        return out

    def pnl(self) -> dict[str, Any]:
        pf = self.portfolio
        return {
            "equity": pf.equity(),
            "cash": pf.cash(),
            "realised": pf.realised_pnl(),
            "unrealised": pf.unrealised_pnl(),
            "commissions": pf.commissions(),
            "daily": pf.daily_pnl(),
            "peak_equity": pf.peak_equity(),
            "currency": pf.currency,
        }


# --------------------------------------------------------------------------------------------------
# Building the same engine for backtests and the daemon


def build_engine(
    cfg: OmnidConfig,
    *,
    clock: Clock,
    recorder: Recorder,
    cash: float = 100_000.0,
    clients: Iterable[ExecutionClient] = (),
    paper: PaperConfig | None = None,
    use_paper: bool | None = None,
    journal: Journal | None = None,
    session: str = "S",
    strategies: Iterable[StrategyConfig] | None = None,
    default_source: str | int = "tick",
    instruments: Iterable[Instrument] | None = None,
    record_intents: bool = True,
) -> Engine:
    """The engine from config: features, portfolio, risk gate, paper broker, router, order manager
    and the configured strategies (not started).

    ``clients`` are live venue clients; the paper broker is the router's default (it stands in
    for every venue without a client) unless ``use_paper`` is False. ``strategies`` replaces the
    config's list (a backtest runs one); ``default_source`` is the feature source of strategies
    that do not name one (``"tick"``, or the bar interval a backtest replays, e.g. ``"1d"``).
    """
    insts = list(instruments) if instruments is not None else cfg.instrument_models()
    features = FeatureEngine(insts, book_levels=cfg.features.book_levels)
    for inst in insts:
        for src, spec in cfg.features.indicators.items():
            features.ensure_all(inst.id, spec, src)
    portfolio = Portfolio(
        clock, initial_cash=cash, currency=cfg.omnid.base_currency, timezone=cfg.omnid.timezone,
        instruments=insts,
    )
    by_id = {i.id: i for i in insts}
    gate = RiskGate(
        cfg.risk, clock=clock, portfolio=portfolio, instruments=by_id, recorder=recorder,
        calendars=cfg.calendars,
    )
    client_list = list(clients)
    broker: PaperBroker | None = None
    if use_paper if use_paper is not None else True:
        pcfg = paper if paper is not None else cfg.paper
        broker = PaperBroker(clock, pcfg, instruments=insts, funds=gate.free_funds)
    router = Router(client_list, default=broker)
    manager = OrderManager(clock=clock, router=router, portfolio=portfolio, recorder=recorder,
                           journal=journal, session=session)
    engine = Engine(
        clock=clock, instruments=insts, features=features, portfolio=portfolio, gate=gate,
        manager=manager, recorder=recorder, paper=broker, default_source=default_source,
        record_intents=record_intents,
    )
    for sc in strategies if strategies is not None else cfg.strategies:
        engine.add_strategy_config(sc)
    return engine


__all__ = ["Engine", "RejectedEvent", "build_engine", "source_name"]
