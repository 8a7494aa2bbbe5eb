"""The Strategy API: what user code implements, what it may read, and the wrapper that runs it.

A strategy is a class with one required hook, :meth:`Strategy.on_price` (a new price for one of its
instruments), and optional hooks with safe defaults (``on_start``, ``on_trade``, ``on_quote``,
``on_bar``, ``on_fill``, ``on_timer``, ``on_universe``, ``on_stop``). Hooks return order intents
(:class:`~omnid.model.OrderIntent`, each with a reason sentence and the numbers behind it) or
``None``; returning ``None`` costs nothing, so the common "no decision" path allocates nothing.

Settings are a per-strategy :class:`StrategyParams` struct that rejects unknown fields, so a typo
in ``params = {...}`` is a :class:`~omnid.errors.ConfigError` naming the strategy and the key.

A strategy reads three things, all through its :class:`StrategyContext`:

- features, resolved once in ``on_start`` into indicator objects whose ``.value`` it reads per
  event (no lookups, no allocation on the hot path);
- its position, through :class:`~omnid.ports.PortfolioView`;
- the clock (and clock timers that call ``on_timer``).

A whole strategy::

    class BreakoutParams(StrategyParams, frozen=True):
        period: int = 20
        qty: float = 0.0                      # 0: the risk gate sizes it

    class Breakout(Strategy):
        kind = "breakout"                     # or load it as kind = "mypkg.breakout:Breakout"
        params_type = BreakoutParams

        def on_start(self) -> Intents:
            self.hi = {i: self.feature(i, f"bbands:{self.params.period}:2") for i in self.instruments}
            return None

        def on_price(self, instrument_id: str, price: float, ts: int) -> Intents:
            band = self.hi[instrument_id]
            if self.net_qty(instrument_id) == 0 and price > band.upper:
                return [self.intent(instrument_id, Side.BUY, f"price {price} broke above the upper band",
                                    {"price": price, "upper": band.upper}, qty=self.params.qty)]
            return None

User code never runs bare: :class:`StrategyRunner` calls it, and a hook that raises disables that
strategy, records a :class:`StrategyErrorRecord` (strategy, hook, traceback summary) and lets every
other strategy run on. Runners can be paused and resumed one by one (the admin socket does this).
"""

from __future__ import annotations

import enum
import logging
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal, Protocol, get_args, get_origin

import msgspec

from omnid.clock import Clock, TimeEvent
from omnid.errors import ConfigError, StrategyError
from omnid.model import (
    Bar,
    Fill,
    Instrument,
    IntentAction,
    OrderIntent,
    OrderType,
    Quote,
    Side,
    Trade,
)
from omnid.ports import PortfolioView, Recorder

log = logging.getLogger(__name__)

#: What a hook returns: a list of intents, or None for "nothing to do" (the cheap, common case).
Intents = list[OrderIntent] | None

#: Version of this interface; bumped when a hook's signature changes.
STRATEGY_API_VERSION = 1


# --------------------------------------------------------------------------------------------------
# What a strategy reads


class Indicator(Protocol):
    """A live feature: the engine updates it before strategies run; strategies read ``value``.

    ``value`` is NaN until the indicator has seen enough data.
    """

    @property
    def value(self) -> float: ...


class FeatureSource(Protocol):
    """Resolves a feature spec item (``"ema:10"``, ``"rsi:14"``, ``"vwap"``, ``"obi:5"``: the
    language of :mod:`omnid.features.spec`) to a live indicator for one instrument.

    Asking twice for the same (instrument, spec) returns the same object, so two strategies share
    one EMA(10), updated once per event. Unknown kinds or bad parameters raise :class:`ConfigError`.
    """

    def indicator(self, instrument_id: str, spec: str) -> Indicator: ...


class StrategyParams(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """Base of every strategy's settings. Subclasses add fields with defaults and may check them in
    ``__post_init__`` (raise ``ValueError`` with a sentence; it becomes a ConfigError)."""


def decode_params(
    strategy: str, kind: str, params_type: type[StrategyParams], raw: Mapping[str, Any]
) -> StrategyParams:
    """Validate a config ``params`` table into ``params_type``; every problem names strategy and key."""
    fields = {f.encode_name: f for f in msgspec.structs.fields(params_type)}
    where = f"strategies[{strategy}].params"
    problems: list[tuple[str, str]] = []
    for key in raw:
        if key not in fields:
            known = ", ".join(sorted(fields)) or "none"
            problems.append(
                (f"{where}.{key}", f"unknown parameter {key!r} for {kind} strategy {strategy!r} "
                 f"(known: {known})")
            )
    if problems:
        raise ConfigError(f"strategy {strategy!r}", problems)
    try:
        return msgspec.convert(dict(raw), params_type)
    except msgspec.ValidationError as exc:
        msg, _, at = str(exc).rpartition(" - at `$")
        key = at.rstrip("`").lstrip(".") if msg else ""
        text = msg or str(exc)
        f = fields.get(key)
        choices = get_args(f.type) if f is not None and get_origin(f.type) is Literal else ()
        if choices:
            text = f"{text} (allowed: {', '.join(repr(c) for c in choices)})"
        raise ConfigError(
            f"strategy {strategy!r}",
            [(f"{where}.{key}" if key else where, f"{kind} strategy {strategy!r}: {text}")],
        ) from None


class StrategyContext:
    """Everything a strategy may touch, handed over by the engine at construction."""

    __slots__ = ("_timer_sink", "_universe_sink", "clock", "features", "instruments", "portfolio", "recorder")

    def __init__(
        self,
        *,
        clock: Clock,
        portfolio: PortfolioView,
        features: FeatureSource,
        recorder: Recorder,
        instruments: Mapping[str, Instrument],
        timer_sink: Callable[[str, TimeEvent], None] | None = None,
        universe_sink: Callable[[str, str, Sequence[str]], None] | None = None,
    ) -> None:
        self.clock = clock
        self.portfolio = portfolio
        self.features = features
        self.recorder = recorder
        self.instruments = instruments
        #: Called as ``sink(strategy_name, event)`` when one of a strategy's timers fires; the
        #: engine sets it so timer intents pass risk like any other.
        self._timer_sink = timer_sink
        #: Called as ``sink(from_strategy, to_strategy, instrument_ids)`` by a scanner handing its
        #: picks to another strategy; the engine delivers them to that strategy's ``on_universe``.
        self._universe_sink = universe_sink

    def hand_universe(self, source: str, target: str, instrument_ids: Sequence[str]) -> None:
        """Deliver a scanner's picks to strategy ``target`` (no-op when no engine is attached)."""
        if self._universe_sink is not None:
            self._universe_sink(source, target, instrument_ids)


# --------------------------------------------------------------------------------------------------
# The strategy base class


class Strategy:
    """Subclass this, set ``kind`` and ``params_type``, implement :meth:`on_price`.

    The engine builds it with its name, instrument ids and validated params; ``on_start`` is the
    place to resolve features (``self.feature(...)``) and set timers (``self.every(...)``).
    """

    #: The config ``kind`` this class implements (the registry key).
    kind: ClassVar[str] = ""
    #: The settings struct; ``params = {...}`` in config is decoded into it.
    params_type: ClassVar[type[StrategyParams]] = StrategyParams
    #: How many instruments it needs (``None``: any number >= 1).
    n_instruments: ClassVar[int | None] = None

    def __init__(
        self, name: str, instruments: Sequence[str], params: StrategyParams, ctx: StrategyContext
    ) -> None:
        if not instruments:
            raise ConfigError(f"strategy {name!r}", [(f"strategies[{name}].instruments", "no instruments")])
        if self.n_instruments is not None and len(instruments) != self.n_instruments:
            raise ConfigError(
                f"strategy {name!r}",
                [(f"strategies[{name}].instruments",
                  f"{self.kind} needs exactly {self.n_instruments} instruments, got {len(instruments)}")],
            )
        self.name = name
        self.instruments: tuple[str, ...] = tuple(instruments)
        self.params = params
        self.ctx = ctx
        self.clock = ctx.clock
        self.portfolio = ctx.portfolio
        #: Set by a scanner: instruments this strategy may open new positions in (None: all).
        self.universe: frozenset[str] | None = None
        #: Signed quantity of this strategy's open orders per instrument (kept by the engine).
        self.in_flight: dict[str, float] = {}

    # ---- helpers for subclasses -------------------------------------------------------------

    def feature(self, instrument_id: str, spec: str) -> Indicator:
        """Resolve a live feature once (call from ``on_start``), e.g. ``"ema:10"``; read its
        ``.value`` per event."""
        return self.ctx.features.indicator(instrument_id, spec)

    def position_qty(self, instrument_id: str) -> float:
        """This account's filled position in ``instrument_id`` (> 0 long, < 0 short)."""
        return self.portfolio.position_qty(instrument_id)

    def net_qty(self, instrument_id: str) -> float:
        """The filled position plus what this strategy's open orders may still add: the position
        it has asked for. Decide on this, so an order in flight is not sent twice."""
        return self.portfolio.position_qty(instrument_id) + self.in_flight.get(instrument_id, 0.0)

    def note_in_flight(self, instrument_id: str, delta: float) -> None:
        """The engine reports a change in this strategy's open-order quantity."""
        v = self.in_flight.get(instrument_id, 0.0) + delta
        if abs(v) <= 1e-12:
            self.in_flight.pop(instrument_id, None)
        else:
            self.in_flight[instrument_id] = v

    def may_enter(self, instrument_id: str) -> bool:
        """False when a scanner has narrowed the universe and ``instrument_id`` is not in it."""
        u = self.universe
        return u is None or instrument_id in u

    def every(self, timer: str, interval_ns: int, *, align: bool = True) -> None:
        """Call :meth:`on_timer` every ``interval_ns`` (aligned to multiples of it by default)."""
        self.ctx.clock.set_periodic(self._timer_name(timer), interval_ns, self._fire, align=align)

    def at(self, timer: str, at_ns: int) -> None:
        """Call :meth:`on_timer` once at ``at_ns``."""
        self.ctx.clock.set_timer(self._timer_name(timer), at_ns, self._fire)

    def daily(self, timer: str, local_time: str, tz: str, *, weekdays: Sequence[int] | None = None) -> None:
        """Call :meth:`on_timer` every day at a local wall time."""
        self.ctx.clock.set_daily(self._timer_name(timer), local_time, tz, self._fire, weekdays=weekdays)

    def cancel_timers(self) -> None:
        """Cancel every timer this strategy set."""
        prefix = f"strategy:{self.name}:"
        for name in self.ctx.clock.timer_names():
            if name.startswith(prefix):
                self.ctx.clock.cancel_timer(name)

    def _timer_name(self, timer: str) -> str:
        return f"strategy:{self.name}:{timer}"

    def _fire(self, event: TimeEvent) -> None:
        sink = self.ctx._timer_sink
        if sink is not None:
            sink(self.name, event)

    def intent(
        self,
        instrument_id: str,
        side: Side,
        reason: str,
        numbers: dict[str, float],
        *,
        qty: float = 0.0,
        action: IntentAction = IntentAction.OPEN,
        order_type: OrderType = OrderType.MARKET,
        limit_price: float | None = None,
        stop_loss: float | None = None,
        take_profit: float | None = None,
    ) -> OrderIntent:
        """An intent stamped with this strategy's name and the clock's time."""
        return OrderIntent(
            strategy_id=self.name,
            instrument_id=instrument_id,
            side=side,
            qty=qty,
            order_type=order_type,
            limit_price=limit_price,
            action=action,
            stop_loss=stop_loss,
            take_profit=take_profit,
            reason=reason,
            numbers=numbers,
            ts_event=self.clock.now_ns(),
        )

    def close(self, instrument_id: str, reason: str, numbers: dict[str, float]) -> OrderIntent | None:
        """An intent that closes the whole position in ``instrument_id`` (with what is in flight);
        None when there is nothing to close."""
        qty = self.net_qty(instrument_id)
        if abs(qty) <= 1e-12:
            return None
        side = Side.SELL if qty > 0 else Side.BUY
        return self.intent(instrument_id, side, reason, numbers, qty=abs(qty), action=IntentAction.CLOSE)

    # ---- hooks --------------------------------------------------------------------------------

    def on_start(self) -> Intents:
        """Resolve features and set timers. Called once before any data."""
        return None

    def on_price(self, instrument_id: str, price: float, ts: int) -> Intents:
        """The one required hook: a new price for one of this strategy's instruments."""
        raise NotImplementedError(f"{type(self).__name__} must implement on_price")

    def on_trade(self, trade: Trade) -> Intents:
        """A trade print; by default decides on its price."""
        return self.on_price(trade.instrument_id, trade.price, trade.ts_event)

    def on_quote(self, quote: Quote) -> Intents:
        """A top-of-book change; by default nothing (quotes feed features such as imbalance)."""
        return None

    def on_bar(self, bar: Bar) -> Intents:
        """A closed bar; by default decides on its close."""
        return self.on_price(bar.instrument_id, bar.close, bar.ts_event)

    def on_fill(self, fill: Fill) -> Intents:
        """One of this strategy's orders filled (the portfolio already reflects it)."""
        return None

    def on_timer(self, event: TimeEvent) -> Intents:
        """One of this strategy's timers fired."""
        return None

    def on_universe(self, instrument_ids: Sequence[str]) -> Intents:
        """A scanner picked the instruments this strategy may enter; by default narrows
        :attr:`universe` (open positions elsewhere are still managed and exited)."""
        self.universe = frozenset(instrument_ids)
        return None

    def on_stop(self) -> Intents:
        """The engine is stopping; intents returned here are still processed."""
        return None

    def state(self) -> dict[str, Any]:
        """Strategy-specific state for status output (override to add more)."""
        return {}


# --------------------------------------------------------------------------------------------------
# The wrapper that runs user code


class RunState(enum.StrEnum):
    NEW = "new"
    RUNNING = "running"
    PAUSED = "paused"
    DISABLED = "disabled"
    STOPPED = "stopped"


class StrategyErrorRecord(msgspec.Struct, kw_only=True):
    """A strategy raised: which one, in which hook, and a short traceback. Recorded, then the
    strategy is disabled."""

    strategy_id: str
    kind: str
    hook: str
    error_type: str
    message: str
    traceback: list[str]
    ts_event: int


class StrategyStateChange(msgspec.Struct, kw_only=True):
    """A strategy was started, paused, resumed, disabled or stopped, and why."""

    strategy_id: str
    state: str
    reason: str
    ts_event: int


_TB_FRAMES = 6


class StrategyRunner:
    """Runs one strategy's hooks: catches what they raise, disables the strategy and records why.

    The engine calls hooks through :meth:`call` for rare events and, on the hot path, calls the
    strategy's bound methods itself inside its own ``try`` and reports failures via :meth:`fail`
    (one Python call less per tick). ``active`` is what the engine's dispatch lists are built from.
    """

    __slots__ = ("error", "kind", "name", "reason", "recorder", "state", "strategy")

    def __init__(self, strategy: Strategy, recorder: Recorder) -> None:
        self.strategy = strategy
        self.name = strategy.name
        self.kind = strategy.kind
        self.recorder = recorder
        self.state = RunState.NEW
        self.reason = ""
        self.error: StrategyErrorRecord | None = None

    @property
    def active(self) -> bool:
        """Receives market data and may emit intents."""
        return self.state is RunState.RUNNING

    @property
    def live(self) -> bool:
        """Still being kept up to date (running or paused): fills and timers are delivered."""
        return self.state is RunState.RUNNING or self.state is RunState.PAUSED

    def call(self, hook: str, fn: Callable[..., Intents], *args: Any) -> Intents:
        """Call ``fn(*args)``; if it raises, disable the strategy and return None."""
        try:
            out = fn(*args)
        except Exception as exc:
            self.fail(hook, exc)
            return None
        return out

    def fail(self, hook: str, exc: BaseException) -> StrategyErrorRecord:
        """Disable the strategy after ``exc`` escaped ``hook``; record and return the error."""
        frames = traceback.extract_tb(exc.__traceback__)[-_TB_FRAMES:]
        summary = [f"{f.filename}:{f.lineno} in {f.name}: {f.line or ''}".rstrip() for f in frames]
        now = self.strategy.clock.now_ns()
        rec = StrategyErrorRecord(
            strategy_id=self.name,
            kind=self.kind,
            hook=hook,
            error_type=type(exc).__name__,
            message=str(exc),
            traceback=summary,
            ts_event=now,
        )
        self.error = rec
        self.recorder.record(rec)
        log.error(
            "strategy %s disabled: %s raised %s: %s (at %s)",
            self.name, hook, rec.error_type, rec.message, summary[-1] if summary else "?",
        )
        self._set(RunState.DISABLED, f"{hook} raised {type(exc).__name__}: {exc}")
        return rec

    def as_error(self) -> StrategyError | None:
        """The recorded failure as a typed error (for logs and alerts)."""
        rec = self.error
        if rec is None:
            return None
        return StrategyError(
            f"strategy {rec.strategy_id!r} disabled: {rec.hook} raised {rec.error_type}: {rec.message}",
            strategy=rec.strategy_id,
            hook=rec.hook,
            traceback=rec.traceback,
        )

    def start(self) -> Intents:
        self._set(RunState.RUNNING, "started")
        out = self.call("on_start", self.strategy.on_start)
        return out if self.active else None

    def pause(self, reason: str = "paused") -> bool:
        """Stop delivering market data (fills and timers still arrive); False if not running."""
        if self.state is not RunState.RUNNING:
            return False
        self._set(RunState.PAUSED, reason)
        return True

    def resume(self, reason: str = "resumed") -> bool:
        """Deliver market data again; False unless paused (a disabled strategy stays disabled)."""
        if self.state is not RunState.PAUSED:
            return False
        self._set(RunState.RUNNING, reason)
        return True

    def stop(self) -> Intents:
        if not self.live:
            return None
        out = self.call("on_stop", self.strategy.on_stop)
        self.strategy.cancel_timers()
        if self.state is not RunState.DISABLED:
            self._set(RunState.STOPPED, "stopped")
        return out

    def _set(self, state: RunState, reason: str) -> None:
        self.state = state
        self.reason = reason
        if state is RunState.DISABLED:
            self.strategy.cancel_timers()
        self.recorder.record(
            StrategyStateChange(
                strategy_id=self.name, state=state.value, reason=reason, ts_event=self.strategy.clock.now_ns()
            )
        )

    def status(self) -> dict[str, Any]:
        """Name, kind, state, why, instruments, and the strategy's own state, for status output."""
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "state": self.state.value,
            "reason": self.reason,
            "instruments": list(self.strategy.instruments),
            "in_flight": dict(self.strategy.in_flight),
        }
        if self.strategy.universe is not None:
            out["universe"] = sorted(self.strategy.universe)
        if self.error is not None:
            out["error"] = msgspec.to_builtins(self.error)
        try:
            out["detail"] = self.strategy.state()
        except Exception as exc:  # status must never take the daemon down
            out["detail"] = {"error": f"state() raised {type(exc).__name__}: {exc}"}
        return out
