"""Daemon commands: run, start, stop, status, positions, orders, pnl, pause, resume, flatten, reload.

Every command takes ``--config FILE`` (default: ./omnid.toml, then ~/.config/omnid/omnid.toml, then
/etc/omnid/omnid.toml) and finds the daemon's socket and pid file from it. Output is a human table
by default and JSON with ``--json``. Exit codes: 0 ok, 1 the daemon answered with an error (or
failed to start), 2 bad usage or config, 3 no daemon running.

The config, the admin client and the daemon are imported inside the commands that use them:
``omnid --help`` and ``--version`` load none of them (tests/commands/test_startup.py holds that).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import typer

from omnid.errors import ConfigError

if TYPE_CHECKING:
    from omnid.config import OmnidConfig
    from omnid.ops.protocol import AdminReply

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NO_DAEMON = 0, 1, 2, 3

ConfigOpt = typer.Option(
    None,
    "--config",
    "-c",
    help="Config file (default ./omnid.toml, ~/.config/omnid/omnid.toml, /etc/omnid/omnid.toml).",
)
JsonOpt = typer.Option(False, "--json", help="Print JSON for scripts instead of tables.")


def _load(config: Path | None) -> tuple[Path, OmnidConfig]:
    from omnid.config import load_config
    from omnid.ops.paths import find_config

    try:
        path = find_config(config)
        return path, load_config(path)
    except ConfigError as exc:
        typer.echo(f"omnid: config has {len(exc.problems)} problem(s):\n{exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None


def _ask(config: Path | None, cmd: str, strategy: str | None = None, timeout_s: float = 15.0) -> AdminReply:
    from omnid.ops.client import AdminProtocolError, DaemonNotRunning, request
    from omnid.ops.paths import daemon_paths

    _, cfg = _load(config)
    sock = Path(daemon_paths(cfg).socket)
    try:
        reply = request(sock, cmd, strategy=strategy, timeout_s=timeout_s)
    except DaemonNotRunning as exc:
        typer.echo(f"omnid: {exc.message}", err=True)
        raise typer.Exit(EXIT_NO_DAEMON) from None
    except AdminProtocolError as exc:
        typer.echo(f"omnid: {exc.message}", err=True)
        raise typer.Exit(EXIT_FAILED) from None
    if not reply.ok:
        err = reply.error
        typer.echo(f"omnid: {cmd} failed: {err.message if err else 'unknown error'}", err=True)
        raise typer.Exit(EXIT_FAILED)
    return reply


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def table(rows: list[list[Any]], header: list[str]) -> str:
    """A plain left-aligned text table."""
    cells = [[_cell(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join("  " + line for line in lines)


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.6g}" if abs(v) < 1e6 else f"{v:,.2f}"
    return str(v)


def _duration(s: float) -> str:
    s = int(s)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d}d " if d else "") + (f"{h}h " if d or h else "") + f"{m}m {s}s"


def render_positions(positions: list[dict[str, Any]]) -> str:
    if not positions:
        return "  (flat)"
    rows = [
        [
            p.get("instrument_id"),
            p.get("qty"),
            p.get("avg_price"),
            p.get("last_price"),
            p.get("unrealised_pnl"),
            p.get("realised_pnl"),
        ]
        for p in positions
    ]
    return table(rows, ["INSTRUMENT", "QTY", "AVG", "LAST", "UNREALISED", "REALISED"])


def render_orders(orders: list[dict[str, Any]]) -> str:
    if not orders:
        return "  (no open orders)"
    rows = [
        [
            o.get("client_order_id"),
            o.get("strategy_id"),
            o.get("instrument_id"),
            o.get("side"),
            o.get("qty"),
            o.get("order_type"),
            o.get("limit_price"),
            o.get("status"),
            o.get("filled_qty"),
        ]
        for o in orders
    ]
    return table(
        rows, ["ORDER", "STRATEGY", "INSTRUMENT", "SIDE", "QTY", "TYPE", "LIMIT", "STATUS", "FILLED"]
    )


def render_status(s: dict[str, Any]) -> str:
    out = [
        f"omnid {s.get('name')!r} v{s.get('version')}: pid {s.get('pid')}, "
        f"up {_duration(s.get('uptime_s', 0))}, "
        + ("ready" if s.get("ready") else "not ready")
        + (" (stopping)" if s.get("stopping") else ""),
        f"config: {s.get('config')}",
        f"trading: {s.get('trading', '-')}",
        "feeds:",
    ]
    feeds = s.get("feeds") or []
    # Trade gaps (trades missed across a reconnect or a restart): a column only once there were any.
    gaps = any(f.get("trade_gaps_lost") or f.get("trade_gaps_refetched") for f in feeds)
    out.append(
        table(
            [
                [f["name"], f["state"], f["rate"], f["last_age_s"], f["messages"], f.get("reconnects", 0)]
                + ([f"{f.get('trade_gaps_lost', 0)}/{f.get('trade_gaps_refetched', 0)}"] if gaps else [])
                for f in feeds
            ],
            ["FEED", "STATE", "MSG/S", "LAST TICK AGE (S)", "MESSAGES", "RECONNECTS"]
            + (["TRADE GAPS LOST/REFETCHED"] if gaps else []),
        )
        if feeds
        else "  (none)"
    )
    for f in feeds:
        lost = f.get("lost_trade_ranges") or []
        if lost:
            out.append(f"  {f['name']}: trades lost (not fetched): " + "; ".join(lost))
    if s.get("stale_trades"):
        out.append(f"  {s['stale_trades']} trades arrived older than [admin] stale_trade_s: features only")
    prices = s.get("prices") or {}
    if prices:
        out.append("prices:")
        out.append(table([[k, v] for k, v in prices.items()], ["INSTRUMENT", "LAST"]))
    strategies = s.get("strategies") or []
    out.append("strategies:")
    out.append(
        table(
            [[st.get("name"), st.get("kind"), st.get("state"), st.get("reason", "")] for st in strategies],
            ["STRATEGY", "KIND", "STATE", "WHY"],
        )
        if strategies
        else "  (none)"
    )
    out.append("positions:")
    out.append(render_positions(s.get("positions") or []))
    pnl = s.get("pnl") or {}
    if pnl:
        out.append("P&L: " + ", ".join(f"{k} {_cell(v)}" for k, v in pnl.items()))
    risk = s.get("risk")
    if risk:
        out.append(
            "risk: "
            + ", ".join(
                f"{k}={_cell(v)}"
                for k, v in risk.items()
                if k != "ts" and not isinstance(v, dict | list)  # ts: when it was read, not state
            )
        )
    venues = (s.get("restored") or {}).get("venues") or {}
    for venue, v in sorted(venues.items()):
        held = v.get("unmanaged_holdings") or {}
        others = ", ".join(f"{a} {_cell(q)}" for a, q in sorted(held.items()))
        out.append(
            f"reconciled with {venue} at start: {v.get('fills_booked', 0)} fills booked, "
            f"{v.get('positions_adjusted', 0)} positions set to the venue's"
            + (f", not omnid's: {others}" if held else "")
        )
    storage = s.get("storage") or {}
    out.append(
        "storage: " + (", ".join(f"{k}={_cell(v)}" for k, v in storage.items()) if storage else "(none)")
    )
    a = s.get("alerts") or {}
    out.append(
        f"alerts: queued {a.get('queued', 0)}, sent {a.get('sent', 0)}, failed {a.get('failed', 0)}, "
        f"dropped {a.get('dropped', 0)}; channels: {', '.join(a.get('channels') or []) or '(none)'}"
    )
    http = s.get("http") or {}
    admin = s.get("admin") or {}
    out.append(f"admin socket: {admin.get('socket')}; health: port {http.get('port') or '(off)'}")
    lag = s.get("loop_lag_ms") or {}
    if lag:
        out.append(f"event loop lag: {lag.get('last', 0):.1f} ms now, {lag.get('max', 0):.1f} ms max")
    return "\n".join(out)


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(config: Path | None = ConfigOpt) -> None:
        """Run the daemon in the foreground (what systemd runs)."""
        from omnid.ops.paths import find_config

        try:
            path = find_config(config)
        except ConfigError as exc:
            typer.echo(f"omnid: {exc}", err=True)
            raise typer.Exit(EXIT_USAGE) from None
        from omnid.daemon import run_daemon  # the daemon's imports are for `run` only

        raise typer.Exit(run_daemon(path))

    @app.command("start")
    def start(config: Path | None = ConfigOpt) -> None:
        """Start the daemon in the background; return once it is ready, or say why it failed."""
        from omnid.ops.client import AdminProtocolError, DaemonNotRunning, request
        from omnid.ops.paths import daemon_paths

        path, cfg = _load(config)
        paths = daemon_paths(cfg)
        sock = Path(paths.socket)
        try:
            reply = request(sock, "ping", timeout_s=2.0)
            typer.echo(f"omnid: already running on {sock} (ready={reply.data.get('ready')})", err=True)
            raise typer.Exit(EXIT_FAILED)
        except (DaemonNotRunning, AdminProtocolError):
            pass
        start_log = Path(paths.start_log)
        env = dict(os.environ)
        env.setdefault("OMNID__LOGGING__CONSOLE", "off")
        out = _open_start_log(start_log, cfg)
        with out:
            this_start = out.tell()  # a failed start shows its own lines, not an earlier run's
            out.write(f"--- omnid start {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n".encode())
            out.flush()
            proc = subprocess.Popen(
                [sys.executable, "-m", "omnid.cli", "run", "--config", str(path.resolve())],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
                env=env,
                close_fds=True,
            )
        deadline = time.monotonic() + cfg.admin.start_timeout_s
        while time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                tail = _read_from(start_log, this_start).splitlines()[-15:]
                typer.echo(f"omnid: the daemon exited with code {code} during start-up:", err=True)
                typer.echo("\n".join(tail), err=True)
                raise typer.Exit(EXIT_USAGE if code == EXIT_USAGE else EXIT_FAILED)
            try:
                reply = request(sock, "ping", timeout_s=2.0)
                if reply.ok and reply.data.get("ready"):
                    typer.echo(f"omnid started (pid {proc.pid}); socket {sock}")
                    return
            except (DaemonNotRunning, AdminProtocolError, OSError):
                pass
            time.sleep(0.1)
        typer.echo(
            f"omnid: not ready after {cfg.admin.start_timeout_s:g}s (pid {proc.pid} still running); "
            f"see {paths.log_file or start_log}",
            err=True,
        )
        raise typer.Exit(EXIT_FAILED)

    @app.command("stop")
    def stop(config: Path | None = ConfigOpt, json_out: bool = JsonOpt) -> None:
        """Stop the daemon gracefully and wait until it has exited."""
        from omnid.ops.paths import daemon_paths, read_pid

        _, cfg = _load(config)
        reply = _ask(config, "stop")
        pid = int(reply.data.get("pid", 0)) if isinstance(reply.data, dict) else 0
        deadline = time.monotonic() + cfg.admin.stop_timeout_s + 5.0
        pid_file = Path(daemon_paths(cfg).pid_file)
        while time.monotonic() < deadline:
            # The pid file goes last, after the flush: gone (or another pid) means this daemon is done.
            if not _alive(pid) or read_pid(pid_file) != pid:
                break
            time.sleep(0.1)
        else:
            typer.echo(f"omnid: pid {pid} still running after the stop timeout", err=True)
            raise typer.Exit(EXIT_FAILED)
        if json_out:
            _print_json({"stopped": True, "pid": pid})
        else:
            typer.echo(f"omnid stopped (pid {pid})")

    @app.command("status")
    def status(config: Path | None = ConfigOpt, json_out: bool = JsonOpt) -> None:
        """Uptime, feeds, strategies, positions and P&L, risk, storage backlog, alert queue."""
        data = _ask(config, "status").data
        _print_json(data) if json_out else typer.echo(render_status(data))

    @app.command("positions")
    def positions(config: Path | None = ConfigOpt, json_out: bool = JsonOpt) -> None:
        """Open positions."""
        data = _ask(config, "positions").data
        _print_json(data) if json_out else typer.echo(render_positions(data))

    @app.command("orders")
    def orders(config: Path | None = ConfigOpt, json_out: bool = JsonOpt) -> None:
        """Open orders."""
        data = _ask(config, "orders").data
        _print_json(data) if json_out else typer.echo(render_orders(data))

    @app.command("pnl")
    def pnl(config: Path | None = ConfigOpt, json_out: bool = JsonOpt) -> None:
        """Today's and total P&L."""
        data = _ask(config, "pnl").data
        _print_json(data) if json_out else typer.echo(
            table([[k, v] for k, v in data.items()], ["P&L", "VALUE"])
        )

    @app.command("pause")
    def pause(
        strategy: str | None = typer.Argument(None, help="One strategy (default: all)."),
        config: Path | None = ConfigOpt,
        json_out: bool = JsonOpt,
    ) -> None:
        """Pause one strategy or all (no new decisions; fills still arrive)."""
        data = _ask(config, "pause", strategy).data
        _print_json(data) if json_out else typer.echo(f"paused: {', '.join(data['paused']) or '(none)'}")

    @app.command("resume")
    def resume(
        strategy: str | None = typer.Argument(None, help="One strategy (default: all)."),
        config: Path | None = ConfigOpt,
        json_out: bool = JsonOpt,
    ) -> None:
        """Resume one strategy or all (resuming all also lifts a flatten's halt)."""
        data = _ask(config, "resume", strategy).data
        _print_json(data) if json_out else typer.echo(f"resumed: {', '.join(data['resumed']) or '(none)'}")

    @app.command("flatten")
    def flatten(config: Path | None = ConfigOpt, json_out: bool = JsonOpt) -> None:
        """Kill switch: cancel all orders, close all positions, halt new entries until resumed."""
        data = _ask(config, "flatten").data
        _print_json(data) if json_out else typer.echo(
            "flatten: " + ", ".join(f"{k} {_cell(v)}" for k, v in data.items())
        )

    @app.command("reload")
    def reload(config: Path | None = ConfigOpt, json_out: bool = JsonOpt) -> None:
        """Re-read the config; apply what can change live and list what needs a restart."""
        data = _ask(config, "reload").data
        if json_out:
            _print_json(data)
            return
        typer.echo(f"applied: {', '.join(data['applied']) or '(nothing)'}")
        for line in data["not_applied"]:
            typer.echo(f"not applied: {line}")


def _open_start_log(start_log: Path, cfg: OmnidConfig) -> BinaryIO:
    """start.log opened for appending, rotated first if it has reached ``[logging] max_bytes``.

    It takes the daemon's stdout/stderr (tracebacks, anything printed before logging is set up),
    so it rotates with the JSON log's limits: ``max_bytes``, ``backup_count`` files kept. It is
    rotated here, before the daemon opens it, never while one writes to it. A rotation that fails
    (permissions, a full disk) costs a warning, not the start: the daemon appends to the old file.
    """
    from omnid.ops.logging import rotate_by_size  # structlog: only `start` needs it

    try:
        rotate_by_size(start_log, cfg.logging.max_bytes, cfg.logging.backup_count)
    except OSError as exc:
        typer.echo(f"omnid: warning: could not rotate {start_log} ({exc}); appending to it", err=True)
    try:
        start_log.parent.mkdir(parents=True, exist_ok=True)
        return open(start_log, "ab")  # the caller closes it once the child has it
    except OSError as exc:
        typer.echo(f"omnid: cannot open {start_log} for the daemon's output: {exc}", err=True)
        raise typer.Exit(EXIT_FAILED) from None


def _read_from(path: Path, offset: int) -> str:
    """``path`` from byte ``offset`` on ("" if it cannot be read: the caller is already failing)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) is not running
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
