"""The daemon: every part wired on one uvloop event loop.

Start-up is one path, first start or restart alike: load config → take the pid file → restore
state → reconcile with the brokers → warm up features → start feeds and background tasks →
enable trading (then ``READY=1``). A stop (SIGTERM, SIGINT, ``omnid stop``) runs the reverse:
halt new entries, cancel open orders (if configured), stop feeds, flush storage, drain alerts,
``STOPPING=1``, exit 0, all within ``admin.stop_timeout_s``. SIGHUP and ``omnid reload``
re-read the config file and apply what can change live (risk limits, strategy parameters, alert
rules, log level); every other change is reported as needing a restart.

The trading core is synchronous and reached through :class:`TradingCore`; :mod:`omnid.ops.engine_core`
adapts the Engine to it. Feeds call :meth:`Daemon.on_market_event` directly (no queue), so a tick
goes from the feed's generator to the strategies without a task switch.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import gc
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import msgspec
import structlog

from omnid import __version__
from omnid.calendar import zone
from omnid.clock import LiveClock
from omnid.config import OmnidConfig, load_config
from omnid.errors import ConfigError, FatalError, OmnidError, RejectedError
from omnid.model import Fill, MarketEvent, Order, Quote, Trade
from omnid.ops.admin import AdminServer, socket_alive
from omnid.ops.alerts import AlertManager, AlertWatcher, cancel_task
from omnid.ops.health import HealthServer, Readiness
from omnid.ops.logging import configure_logging, register_secret
from omnid.ops.notify import SdNotifier
from omnid.ops.paths import daemon_paths
from omnid.ops.protocol import AdminRequest, FeedStatus
from omnid.venues.sim.feed import SimMarketFeed

log = structlog.get_logger("omnid.daemon")

#: Sections a reload applies live; a change anywhere else needs a restart.
LIVE_SECTIONS = frozenset({"risk", "strategies", "alerts", "logging"})

_SUN_PATH_MAX = 107


class AlreadyRunning(FatalError):
    """Another daemon holds this data directory's pid file or socket."""


class Feed(Protocol):
    """A market-data task: the simulated market, Binance, ..."""

    name: str

    async def run(self) -> None: ...

    def stop(self) -> None: ...

    def status(self) -> FeedStatus: ...


class TradingCore(Protocol):
    """What the daemon needs from the synchronous trading core (the Engine, adapted)."""

    async def start(self) -> None:
        """Restore, reconcile and warm up; after this, ``enable_trading`` may be called."""
        ...

    def enable_trading(self) -> None: ...

    def on_event(self, event: MarketEvent) -> None: ...

    def status(self) -> dict[str, Any]:
        """strategies, risk state, trading state (plain data)."""
        ...

    def positions(self) -> list[dict[str, Any]]: ...

    def orders(self) -> list[dict[str, Any]]: ...

    def pnl(self) -> dict[str, Any]: ...

    def pause(self, strategy: str | None) -> list[str]:
        """Pause one strategy or all; return the names paused (RejectedError if unknown)."""
        ...

    def resume(self, strategy: str | None) -> list[str]: ...

    def flatten(self, reason: str) -> dict[str, Any]:
        """Kill switch: cancel all, close all, halt new entries until resumed."""
        ...

    def halt_entries(self, reason: str) -> None: ...

    def cancel_open_orders(self) -> int: ...

    def reload(self, cfg: OmnidConfig) -> tuple[list[str], list[str]]:
        """Apply what the core can take live from ``cfg``: (applied, not applied with why)."""
        ...

    def stop(self) -> None: ...

    def storage_status(self) -> dict[str, Any]: ...

    async def flush(self) -> None: ...


CoreFactory = Callable[["Daemon"], TradingCore]


# --------------------------------------------------------------------------------------------------
# Pid file


class PidFile:
    """A pid file held under an exclusive ``flock`` for the daemon's life.

    The lock, not the file's presence, says whether a daemon runs: a crash releases it, so a file
    left behind is recognised as stale (``stale_pid`` tells the caller, which reports a
    crash-restart) and taken over.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self.stale_pid: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = _read_pid(fd)
            os.close(fd)
            who = f"pid {other}" if other else "another process"
            raise AlreadyRunning(
                f"omnid is already running ({who}; pid file {self.path} is locked)", pid=other
            ) from None
        old = _read_pid(fd)
        if old and old != os.getpid():
            self.stale_pid = old
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


# --------------------------------------------------------------------------------------------------
# The daemon


class Daemon:
    """Owns the loop's tasks and answers the admin socket."""

    def __init__(
        self,
        cfg: OmnidConfig,
        config_file: Path,
        *,
        core_factory: CoreFactory | None = None,
        notifier: SdNotifier | None = None,
    ) -> None:
        self.cfg = cfg
        self.config_file = config_file
        self.paths = daemon_paths(cfg)
        self.clock = LiveClock()
        self.notifier = notifier or SdNotifier()
        self.alerts = AlertManager(cfg.alerts, instance=cfg.omnid.name)
        self.watcher = AlertWatcher(self.alerts, cfg.alerts.rules)
        self.core_factory = core_factory
        self.core: TradingCore | None = None
        self.feeds: list[Feed] = []
        self._sessions: list[Any] = []
        self.last_prices: dict[str, float] = {}
        self.admin = AdminServer(
            Path(self.paths.socket), self._handlers(), max_request_bytes=cfg.admin.max_request_bytes
        )
        self.health: HealthServer | None = None
        self.started_ns = time.time_ns()
        self.ready = False
        self.stopping = False
        self.stop_reason = ""
        self.crash_restart = False
        self._stop_event = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._reload_lock = asyncio.Lock()
        self.event_errors = 0
        self.loop_lag_ms = 0.0
        self.max_loop_lag_ms = 0.0

    # ---- hot path --------------------------------------------------------------------------------

    def on_market_event(self, event: MarketEvent) -> None:
        """A feed's event: into the core, then the price-alert rule. Never raises into the feed."""
        core = self.core
        if core is not None:
            try:
                core.on_event(event)
            except Exception:
                self.event_errors += 1
                if self.event_errors <= 5 or self.event_errors % 1000 == 0:
                    log.exception("core raised on a market event", errors=self.event_errors)
        if type(event) is Trade:
            self.last_prices[event.instrument_id] = event.price
            self.watcher.on_price(event.instrument_id, event.price)
        elif type(event) is Quote:
            mid = (event.bid + event.ask) * 0.5
            self.last_prices[event.instrument_id] = mid
            self.watcher.on_price(event.instrument_id, mid)

    def on_fill(self, fill: Fill) -> None:
        log.info(
            "fill",
            client_order_id=fill.client_order_id,
            instrument_id=fill.instrument_id,
            strategy_id=fill.strategy_id,
            side=fill.side.value,
            qty=fill.qty,
            price=fill.price,
            commission=fill.commission,
        )
        self.watcher.on_fill(fill)

    def on_order(self, order: Order) -> None:
        log.info(
            "order",
            client_order_id=order.client_order_id,
            instrument_id=order.instrument_id,
            strategy_id=order.strategy_id,
            side=order.side.value,
            qty=order.qty,
            type=order.order_type.value,
            status=order.status.value,
            reason=order.reason,
        )

    # ---- lifecycle -------------------------------------------------------------------------------

    async def run(self) -> int:
        """Start, serve until asked to stop, stop; the process exit code."""
        loop = asyncio.get_running_loop()
        for sig, fn in (
            (signal.SIGTERM, lambda: self.request_stop("SIGTERM")),
            (signal.SIGINT, lambda: self.request_stop("SIGINT")),
            (signal.SIGHUP, lambda: self._spawn(self._reload_from_signal(), "reload")),
        ):
            loop.add_signal_handler(sig, fn)
        try:
            await self._start()
        except Exception as exc:
            log.exception("start-up failed", error=str(exc))
            print(f"omnid: start-up failed: {exc}", file=sys.stderr)
            self.notifier.notify(f"STATUS=start-up failed: {exc}")
            await self._shutdown()
            return 2 if isinstance(exc, ConfigError) else 1
        await self._stop_event.wait()
        try:
            await asyncio.wait_for(self._shutdown(), self.cfg.admin.stop_timeout_s)
        except TimeoutError:
            log.error("graceful stop timed out; exiting anyway", timeout_s=self.cfg.admin.stop_timeout_s)
            return 1
        return 0

    async def _start(self) -> None:
        cfg = self.cfg
        log.info("starting", version=__version__, config=str(self.config_file), pid=os.getpid())
        self.notifier.status("starting: binding the admin socket")
        await self._bind_admin()
        self._tasks.append(asyncio.create_task(self.alerts.run(), name="alerts"))
        if self.notifier.watchdog_interval_s:
            self._tasks.append(asyncio.create_task(self.notifier.watchdog_loop(), name="watchdog"))

        self.notifier.status("starting: restoring state and reconciling")
        if self.core_factory is not None:
            self.core = self.core_factory(self)
            await self.core.start()
        else:
            log.warning("no trading core configured: market data only")

        if cfg.sim_market.enabled:
            sim_insts = [i for i in cfg.instrument_models() if i.venue == cfg.sim_market.venue]
            if sim_insts:
                self.feeds.append(SimMarketFeed(cfg.sim_market, sim_insts, self.clock, self.on_market_event))
        if cfg.binance.enabled:
            self.feeds.append(self._binance_feed())
        for feed in self.feeds:
            self._tasks.append(asyncio.create_task(feed.run(), name=f"feed:{feed.name}"))

        if cfg.http.enabled:
            self.health = HealthServer(cfg.http, Readiness(self.readiness), self._alive)
            await self.health.start()
        self._tasks.append(asyncio.create_task(self._monitor(), name="monitor"))

        if self.core is not None:
            self.core.enable_trading()
        # What start-up built (modules, config, instruments, the restored ledger, warmed features)
        # lives as long as the process. A full collection walks all of it: ~35 ms on the loop for
        # a daemon's ~70k start-up objects, measured. Collect once now, then freeze them out of
        # the collector's sight, so later full passes walk only what trading has made since.
        gc.collect()
        gc.freeze()
        self.ready = True
        msg = self._status_line()
        self.notifier.ready(msg)
        log.info("ready: trading enabled", socket=self.paths.socket, http_port=self.http_port)
        if self.crash_restart:
            self.watcher.on_lifecycle("restart", f"omnid {cfg.omnid.name} restarted after a crash")
        else:
            self.watcher.on_lifecycle("start", f"omnid {cfg.omnid.name} started")

    def _binance_feed(self) -> Feed:
        """Binance spot market data (orders go to the Binance broker when ``[binance] trading``)."""
        import aiohttp

        from omnid.venues.binance.service import build_feed

        session = aiohttp.ClientSession()
        self._sessions.append(session)
        return build_feed(self.cfg.binance, self.on_market_event, session=session,
                          data_dir=Path(self.paths.data_dir), on_trade_gap=self.watcher.on_trade_gap)

    async def _bind_admin(self) -> None:
        sock = Path(self.paths.socket)
        if len(str(sock)) > _SUN_PATH_MAX:
            raise ConfigError(
                str(self.config_file),
                [("admin.socket", f"path is {len(str(sock))} bytes; Unix sockets allow {_SUN_PATH_MAX}")],
            )
        if sock.exists() or sock.is_symlink():
            if socket_alive(sock):
                raise AlreadyRunning(f"another omnid already answers on {sock}", socket=str(sock))
            log.warning("removing a stale admin socket", socket=str(sock))
            sock.unlink()
        await self.admin.start()

    def request_stop(self, reason: str) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.stop_reason = reason
        log.info("stop requested", reason=reason)
        self._stop_event.set()

    async def _shutdown(self) -> None:
        """Stop entries, cancel orders, stop feeds, flush, drain alerts, close sockets."""
        self.ready = False
        self.notifier.stopping(f"stopping ({self.stop_reason or 'error'})")
        core = self.core
        if core is not None:
            try:
                core.halt_entries("daemon stopping")
                if self.cfg.admin.cancel_orders_on_stop:
                    n = core.cancel_open_orders()
                    log.info("cancelled open orders on stop", count=n)
            except Exception:
                log.exception("halting the core on stop failed")
        for feed in self.feeds:
            feed.stop()
        if core is not None:
            try:
                core.stop()
                await core.flush()
            except Exception:
                log.exception("flushing on stop failed")
        if self.stop_reason:
            self.watcher.on_lifecycle("stop", f"omnid {self.cfg.omnid.name} stopping ({self.stop_reason})")
        await self.alerts.drain(min(3.0, self.cfg.admin.stop_timeout_s / 3))
        for t in self._tasks:
            await cancel_task(t)
        for session in self._sessions:
            with contextlib.suppress(Exception):
                await session.close()
        await self.admin.close()
        if self.health is not None:
            await self.health.close()
        self.notifier.close()
        log.info("stopped", reason=self.stop_reason)

    async def _monitor(self) -> None:
        """Once a second: feed-silence and daily-P&L alert rules, and a systemd STATUS= line."""
        n = 0
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + 1.0
            await asyncio.sleep(1.0)
            # How late the loop woke us: a busy or blocked loop shows here (and in /healthz).
            self.loop_lag_ms = max((loop.time() - due) * 1000.0, 0.0)
            self.max_loop_lag_ms = max(self.max_loop_lag_ms, self.loop_lag_ms)
            n += 1
            try:
                self.watcher.check_feeds({f.name: f.status().last_age_s for f in self.feeds})
                self.watcher.check_trade_gaps()
                if self.core is not None:
                    pnl = self.core.pnl()
                    # The P&L day is the portfolio's: local to [omnid] timezone.
                    day = dt.datetime.now(zone(self.cfg.omnid.timezone)).date().isoformat()
                    self.watcher.check_pnl(day, float(pnl.get("daily", 0.0)))
                if n % 10 == 0:
                    self.notifier.status(self._status_line())
            except Exception:
                log.exception("monitor tick failed")

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.append(task)

    # ---- reload ----------------------------------------------------------------------------------

    async def _reload_from_signal(self) -> None:
        """SIGHUP: the same reload as ``omnid reload``; its outcome goes to the log only."""
        try:
            await self.reload()
        except OmnidError as exc:
            log.error("reload via SIGHUP failed", error=exc.message)
        except Exception:
            log.exception("reload via SIGHUP failed")

    async def reload(self) -> dict[str, Any]:
        """Re-read the config file; apply live sections; report what needs a restart."""
        async with self._reload_lock:
            self.notifier.reloading()
            try:
                new = load_config(self.config_file)
            except ConfigError as exc:
                log.error("reload refused: config invalid", problems=exc.problems)
                self.notifier.notify("READY=1", "STATUS=reload refused: config invalid; running on")
                raise RejectedError(f"config invalid, nothing changed:\n{exc}") from None
            old = self.cfg
            changed = [
                f.name
                for f in msgspec.structs.fields(OmnidConfig)
                if f.name != "config_path" and getattr(old, f.name) != getattr(new, f.name)
            ]
            needs_restart = sorted(c for c in changed if c not in LIVE_SECTIONS)
            applied: list[str] = []
            not_applied: list[str] = [f"{c}: needs a restart" for c in needs_restart]
            if "alerts" in changed:
                self.alerts.reconfigure(new.alerts)
                self.watcher.set_rules(new.alerts.rules)
                register_secret(new.alerts.telegram.bot_token)
                applied.append("alerts")
            if "logging" in changed:
                configure_logging(new.logging, _log_file(new))
                applied.append("logging")
            if self.core is not None and ({"risk", "strategies"} & set(changed)):
                core_applied, core_not = self.core.reload(new)
                applied.extend(core_applied)
                not_applied.extend(core_not)
            self.cfg = msgspec.structs.replace(
                old, **{k: getattr(new, k) for k in changed if k in LIVE_SECTIONS}
            )
            self.notifier.status(self._status_line())
            log.info("config reloaded", applied=applied, not_applied=not_applied)
            # systemd's reload protocol: READY=1 again ends RELOADING=1.
            self.notifier.notify("READY=1")
            return {"changed": changed, "applied": applied, "not_applied": not_applied}

    # ---- status ----------------------------------------------------------------------------------

    @property
    def http_port(self) -> int | None:
        return self.health.port if self.health is not None else None

    def feed_statuses(self) -> list[FeedStatus]:
        return [f.status() for f in self.feeds]

    def _alive(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "uptime_s": round((time.time_ns() - self.started_ns) / 1e9, 1),
            "loop_lag_ms": round(self.loop_lag_ms, 2),
        }

    def readiness(self) -> tuple[bool, list[str], dict[str, Any]]:
        reasons: list[str] = []
        if not self.ready:
            reasons.append("trading not enabled")
        feeds = self.feed_statuses()
        for f in feeds:
            if f.state != "connected":
                reasons.append(f"feed {f.name} is {f.state}")
            elif f.last_age_s is not None and f.last_age_s > self.cfg.http.max_feed_silence_s:
                reasons.append(f"feed {f.name} silent for {f.last_age_s:.0f}s")
        storage = self.core.storage_status() if self.core is not None else {}
        backlog = int(storage.get("backlog", 0))
        if backlog > self.cfg.http.max_storage_backlog:
            reasons.append(f"storage backlog {backlog} > {self.cfg.http.max_storage_backlog}")
        if storage.get("error"):
            reasons.append(f"storage: {storage['error']}")
        detail = {"feeds": msgspec.to_builtins(feeds), "storage": storage}
        return not reasons, reasons, detail

    def _status_line(self) -> str:
        parts = [f"{'ready' if self.ready else 'starting'}"]
        for f in self.feeds:
            st = f.status()
            parts.append(f"{f.name} {st.state} {st.rate:.0f} msg/s")
        if self.core is not None:
            try:
                pnl = self.core.pnl()
                parts.append(f"P&L today {float(pnl.get('daily', 0.0)):.2f}")
            except Exception as exc:
                parts.append(f"pnl unavailable: {exc}")
        return "; ".join(parts)

    def status(self) -> dict[str, Any]:
        core = self.core.status() if self.core is not None else {"trading": "no trading core"}
        return {
            "name": self.cfg.omnid.name,
            "version": __version__,
            "pid": os.getpid(),
            "config": str(self.config_file),
            "uptime_s": round((time.time_ns() - self.started_ns) / 1e9, 1),
            "ready": self.ready,
            "stopping": self.stopping,
            "feeds": msgspec.to_builtins(self.feed_statuses()),
            "prices": {k: round(v, 8) for k, v in sorted(self.last_prices.items())},
            **core,
            "positions": self.core.positions() if self.core is not None else [],
            "pnl": self.core.pnl() if self.core is not None else {},
            "storage": self.core.storage_status() if self.core is not None else {},
            "alerts": msgspec.to_builtins(self.alerts.status()),
            "admin": {
                "socket": self.paths.socket,
                "clients": self.admin.clients,
                "requests": self.admin.requests,
                "errors": self.admin.errors,
            },
            "http": {"port": self.http_port},
            "event_errors": self.event_errors,
            "loop_lag_ms": {"last": round(self.loop_lag_ms, 2), "max": round(self.max_loop_lag_ms, 2)},
            "gc": {"frozen": gc.get_freeze_count(),
                   "collections": [g["collections"] for g in gc.get_stats()]},
        }

    # ---- admin commands --------------------------------------------------------------------------

    def _handlers(self) -> dict[str, Any]:
        return {
            "ping": self._cmd_ping,
            "status": self._cmd_status,
            "positions": self._cmd_positions,
            "orders": self._cmd_orders,
            "pnl": self._cmd_pnl,
            "pause": self._cmd_pause,
            "resume": self._cmd_resume,
            "flatten": self._cmd_flatten,
            "reload": self._cmd_reload,
            "stop": self._cmd_stop,
        }

    def _need_core(self) -> TradingCore:
        if self.core is None:
            raise RejectedError("this daemon runs no trading core (market data only)")
        if self.stopping:
            raise RejectedError("the daemon is stopping")
        return self.core

    async def _cmd_ping(self, _req: AdminRequest) -> Any:
        return {"pong": True, "ready": self.ready}

    async def _cmd_status(self, _req: AdminRequest) -> Any:
        return self.status()

    async def _cmd_positions(self, _req: AdminRequest) -> Any:
        return self.core.positions() if self.core is not None else []

    async def _cmd_orders(self, _req: AdminRequest) -> Any:
        return self.core.orders() if self.core is not None else []

    async def _cmd_pnl(self, _req: AdminRequest) -> Any:
        return self.core.pnl() if self.core is not None else {}

    async def _cmd_pause(self, req: AdminRequest) -> Any:
        names = self._need_core().pause(req.strategy)
        log.info("paused", strategies=names, by="admin")
        return {"paused": names}

    async def _cmd_resume(self, req: AdminRequest) -> Any:
        names = self._need_core().resume(req.strategy)
        log.info("resumed", strategies=names, by="admin")
        return {"resumed": names}

    async def _cmd_flatten(self, _req: AdminRequest) -> Any:
        out = self._need_core().flatten("flatten requested over the admin socket")
        log.warning("flatten: cancel all, close all, entries halted", **out)
        self.watcher.on_halt("flatten requested over the admin socket")
        return out

    async def _cmd_reload(self, _req: AdminRequest) -> Any:
        return await self.reload()

    async def _cmd_stop(self, _req: AdminRequest) -> Any:
        asyncio.get_running_loop().call_later(0.05, self.request_stop, "omnid stop")
        return {"stopping": True, "pid": os.getpid()}


def _log_file(cfg: OmnidConfig) -> Path | None:
    p = daemon_paths(cfg).log_file
    return Path(p) if p else None


def run_daemon(config_file: Path, *, core_factory: CoreFactory | None = None) -> int:
    """``omnid run``: load the config, take the pid file, run the loop; the exit code.

    2 for a bad config, 1 for a daemon already running or a failed start, 0 after a clean stop.
    """
    try:
        cfg = load_config(config_file)
    except ConfigError as exc:
        print(f"omnid: config has {len(exc.problems)} problem(s):\n{exc}", file=sys.stderr)
        return 2
    paths = daemon_paths(cfg)
    Path(paths.data_dir).mkdir(parents=True, exist_ok=True)
    configure_logging(cfg.logging, _log_file(cfg))
    register_secret(cfg.alerts.telegram.bot_token)
    pid = PidFile(Path(paths.pid_file))
    try:
        pid.acquire()
    except AlreadyRunning as exc:
        log.error("refusing to start", error=exc.message, socket=paths.socket)
        print(f"omnid: refusing to start: {exc.message} (socket {paths.socket})", file=sys.stderr)
        return 1
    if pid.stale_pid is not None:
        log.warning("stale pid file: the previous daemon did not stop cleanly", stale_pid=pid.stale_pid)
    factory = core_factory if core_factory is not None else default_core_factory()
    daemon = Daemon(cfg, config_file, core_factory=factory)
    daemon.crash_restart = pid.stale_pid is not None
    try:
        return _run_loop(daemon)
    except OmnidError as exc:
        log.error("daemon failed", error=exc.message, **exc.context)
        print(f"omnid: {exc.message}", file=sys.stderr)
        return 1
    finally:
        pid.release()


def _run_loop(daemon: Daemon) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; plain asyncio still works
        return asyncio.run(daemon.run())
    return uvloop.run(daemon.run())


def default_core_factory() -> CoreFactory:
    """The Engine with storage and the journal (:mod:`omnid.ops.engine_core`)."""
    from omnid.ops.engine_core import engine_core_factory

    return engine_core_factory
