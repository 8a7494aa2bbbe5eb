"""The real daemon as a subprocess on the embedded default (omnid.toml.example, data_dir in tmp).

Covers: start → ready → status --json → pause/resume a strategy → flatten → stop (exit code,
state flushed); sd_notify datagrams (READY, WATCHDOG, STOPPING); a second daemon refused; a stale
pid file and socket after a crash; reload; CLI exit codes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from omnid.ops.admin import AdminProtocolError, DaemonNotRunning, request
from omnid.ops.protocol import AdminReply

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "omnid.toml.example"
OMNID = [sys.executable, "-m", "omnid.cli"]

pytestmark = pytest.mark.integration


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNID__", "NOTIFY_SOCKET", "WATCHDOG_"))}
    env.update(
        OMNID__OMNID__DATA_DIR=str(data_dir),
        OMNID__HTTP__PORT="0",
        OMNID__LOGGING__CONSOLE="json",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def cli(env: dict[str, str], *args: str, config: Path = EXAMPLE, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*OMNID, *args, "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def status(env: dict[str, str], config: Path = EXAMPLE) -> dict[str, Any]:
    """Status straight over the admin socket (the CLI's own --json output is tested separately)."""
    reply = ask(env, "status")
    assert reply.ok, reply.error
    data: dict[str, Any] = reply.data
    return data


def ask(env: dict[str, str], cmd: str, strategy: str | None = None) -> AdminReply:
    return request(Path(env["OMNID__OMNID__DATA_DIR"]) / "omnid.sock", cmd, strategy=strategy, timeout_s=10)


def wait_for(pred: Any, timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def log_events(data_dir: Path) -> list[dict[str, Any]]:
    f = data_dir / "logs" / "omnid.log"
    if not f.exists():
        return []
    out = []
    for line in f.read_text().splitlines():
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


class Foreground:
    """``omnid run`` as a child process."""

    def __init__(self, env: dict[str, str], config: Path = EXAMPLE, *, new_session: bool = False) -> None:
        self.proc = subprocess.Popen(
            [*OMNID, "run", "--config", str(config)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            start_new_session=new_session,  # a process group of its own, as a terminal gives it
        )

    def wait_ready(self, env: dict[str, str], config: Path = EXAMPLE) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}: {self.proc.stderr.read()}")  # type: ignore[union-attr]
            try:
                s = status(env, config)
            except DaemonNotRunning:
                return None
            return s if s["ready"] else None

        return wait_for(ready, 30, "readiness")  # type: ignore[no-any-return]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "var"
    return d


@pytest.fixture
def fg(data_dir: Path) -> Iterator[Foreground]:
    procs: list[Foreground] = []

    def make(env: dict[str, str] | None = None, config: Path = EXAMPLE) -> Foreground:
        p = Foreground(env or _env(data_dir), config)
        procs.append(p)
        return p

    yield make  # type: ignore[misc]
    for p in procs:
        p.stop(signal.SIGKILL)


def test_cli_exit_codes_without_daemon(data_dir: Path, tmp_path: Path) -> None:
    env = _env(data_dir)
    r = cli(env, "status")
    assert r.returncode == 3 and "no omnid daemon is running" in r.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[omnid]\nnmae = 1\n")
    r = cli(env, "status", config=bad)
    assert r.returncode == 2 and "nmae" in r.stderr
    r = cli(env, "stop", config=tmp_path / "missing.toml")
    assert r.returncode == 2 and "file not found" in r.stderr


def test_notify_datagrams_ready_watchdog_stopping(data_dir: Path, tmp_path: Path, fg: Any) -> None:
    sock_path = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(sock_path)
    listener.settimeout(30)
    env = _env(data_dir, NOTIFY_SOCKET=sock_path, WATCHDOG_USEC="400000")
    d = fg(env)
    got: list[str] = []
    try:
        while not any("READY=1" in m for m in got):
            got.append(listener.recv(4096).decode())
        t_ready = time.monotonic()
        while time.monotonic() - t_ready < 1.0:
            got.append(listener.recv(4096).decode())
        assert d.stop(signal.SIGTERM) == 0
        listener.settimeout(2)
        while True:
            try:
                got.append(listener.recv(4096).decode())
            except TimeoutError:
                break
    finally:
        listener.close()
    ready = next(m for m in got if "READY=1" in m)
    assert "STATUS=ready" in ready
    assert sum(m == "WATCHDOG=1" for m in got) >= 3
    assert any(m.startswith("STATUS=starting") for m in got)
    assert any("STOPPING=1" in m for m in got)
    assert got.index(ready) < max(i for i, m in enumerate(got) if "STOPPING=1" in m)


def test_second_daemon_refused_and_stale_pid_handled(data_dir: Path, fg: Any) -> None:
    env = _env(data_dir)
    # A crash leaves a pid file naming a dead process and a socket file nobody listens on.
    data_dir.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    (data_dir / "omnid.pid").write_text(f"{dead.pid}\n")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(data_dir / "omnid.sock"))
    stale.close()

    first = fg(env)
    s = first.wait_ready(env)
    assert s["pid"] == first.proc.pid
    events = log_events(data_dir)
    assert any(e["event"].startswith("stale pid file") and e["stale_pid"] == dead.pid for e in events)
    assert any(e["event"] == "removing a stale admin socket" for e in events)
    assert any(e["event"] == "alert" and e["kind"] == "daemon_restart" for e in events)

    second = subprocess.run([*OMNID, "run", "--config", str(EXAMPLE)], env=env, capture_output=True,
                            text=True, timeout=30, cwd=ROOT)
    assert second.returncode == 1
    assert f"already running (pid {first.proc.pid}" in second.stderr
    assert str(data_dir / "omnid.sock") in second.stderr
    r = cli(env, "start")
    assert r.returncode == 1 and "already running" in r.stderr
    assert status(env)["pid"] == first.proc.pid  # the first one is undisturbed
    assert first.stop() == 0
    assert not (data_dir / "omnid.pid").exists() and not (data_dir / "omnid.sock").exists()


def test_malformed_admin_requests_do_not_disturb_the_daemon(data_dir: Path, fg: Any) -> None:
    env = _env(data_dir)
    d = fg(env)
    d.wait_ready(env)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(data_dir / "omnid.sock"))
        s.settimeout(10)
        f = s.makefile("rwb")
        for line in (b"{oops\n", b'{"cmd":"nope"}\n', b'{"cmd":"status","x":1}\n', b"\xff\xfe\n"):
            f.write(line)
            f.flush()
            rep = json.loads(f.readline())
            assert rep["v"] == 1 and rep["ok"] is False
        f.write(b'{"cmd":"status"}\n')
        f.flush()
        assert json.loads(f.readline())["ok"] is True
    s = status(env)
    assert s["ready"] is True
    # Start-up's objects were frozen out of the collector (a full pass over them held the loop
    # ~35 ms), and status says so.
    assert s["gc"]["frozen"] > 10_000 and len(s["gc"]["collections"]) == 3
    assert d.stop() == 0


def test_reload_applies_live_sections_and_reports_the_rest(data_dir: Path, tmp_path: Path, fg: Any) -> None:
    config = tmp_path / "omnid.toml"
    text = EXAMPLE.read_text()
    config.write_text(text)
    env = _env(data_dir)
    d = fg(env, config)
    d.wait_ready(env, config)
    assert "max_open_positions = 0\n" in text and "fast = 10\n" in text
    config.write_text(
        text.replace("feed_silent_s = 60.0", "feed_silent_s = 5.0")
        .replace("seed = 7", "seed = 8")
        .replace("max_open_positions = 0\n", "max_open_positions = 3\n")
        .replace("fast = 10\n", "fast = 12\n")
    )
    r = cli(env, "reload", "--json", config=config)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert {"alerts", "risk.max_open_positions", "strategies[spy_trend]"} <= set(out["applied"])
    assert out["not_applied"] == ["sim_market: needs a restart"]
    config.write_text(text.replace('level = "info"', 'level = "loud"'))
    r = cli(env, "reload", config=config)  # the CLI checks the file first: a usage error
    assert r.returncode == 2 and "logging.level" in r.stderr
    d.proc.send_signal(signal.SIGHUP)  # the daemon's own reload path refuses it and runs on
    wait_for(lambda: any(e["event"] == "reload refused: config invalid" for e in log_events(data_dir)),
             10, "SIGHUP reload refused")
    config.write_text(text)
    assert status(env, config)["ready"] is True
    assert d.stop() == 0


#: A quick strategy added to the embedded default so paper fills happen within seconds.
FAST_STRATEGY = """
[[strategies]]
name = "fastcross"
kind = "sma_cross"
instruments = ["BTCUSDT.SIM"]
params = { fast = 3, slow = 8, mode = "long_short", qty = 0.001 }
"""


PG_DSN = os.environ.get("OMNID_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.mark.parametrize("sink", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_ctrl_c_at_the_terminal_stops_cleanly_without_losing_the_writer(data_dir: Path, sink: str) -> None:
    # A terminal's Ctrl-C sends SIGINT to the whole foreground process group: the daemon and any
    # child it started. A writer child (SQLite's; PostgreSQL's with writer = "process") must not
    # die with it before the final flush (it did: "sink sqlite is down ... the writer process
    # died", then a spool and a replay).
    prefix = f"c{os.getpid()}_"
    extra = {} if sink == "sqlite" else {
        "OMNID__STORAGE__DEFAULT_SINK": "postgres",
        "OMNID__STORAGE__POSTGRES__DSN": PG_DSN,
        "OMNID__STORAGE__POSTGRES__SCHEMA_PREFIX": prefix,
        "OMNID__STORAGE__POSTGRES__WRITER": "process",
    }
    env = _env(data_dir, **extra)
    p = Foreground(env, new_session=True)
    try:
        p.wait_ready(env)
        wait_for(lambda: status(env)["storage"]["written"].get(sink, 0) > 0, 30, f"rows in {sink}")
        os.killpg(p.proc.pid, signal.SIGINT)
        assert p.proc.wait(30) == 0
    finally:
        if p.proc.poll() is None:
            os.killpg(p.proc.pid, signal.SIGKILL)
            p.proc.wait()
        if sink == "postgres":
            schemas = ", ".join(f'"{prefix}{g}"' for g in ("md", "derived", "strategy", "exec", "meta"))
            subprocess.run(["psql", PG_DSN, "-qc", f"DROP SCHEMA IF EXISTS {schemas} CASCADE"],
                           capture_output=True, check=False, timeout=60)
    events = log_events(data_dir)
    assert not [e for e in events if "is down" in str(e.get("event"))], "the writer died on Ctrl-C"
    flushed = [e for e in events if e["event"] == "storage flushed"]
    assert flushed and flushed[-1]["backlog"] == 0 and flushed[-1]["dropped"] == 0
    assert flushed[-1]["written"][sink] == flushed[-1]["recorded"]


def _sqlite_count(path: Path, table: str) -> int:
    import sqlite3

    with sqlite3.connect(path) as db:
        n: int = db.execute(f"select count(*) from {table}").fetchone()[0]
    return n


def test_lifecycle_start_status_pause_resume_flatten_stop(data_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "omnid.toml"
    config.write_text(EXAMPLE.read_text() + FAST_STRATEGY)
    env = _env(data_dir, OMNID__SIM_MARKET__RATE_HZ="40")  # more ticks: crosses come sooner
    try:
        r = cli(env, "start", config=config)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "omnid started" in r.stdout

        def traded() -> dict[str, Any] | None:
            s = status(env, config)
            return s if s["counts"]["orders"] >= 2 and s["storage"]["written"].get("sqlite", 0) > 0 else None

        s = wait_for(traded, 60, "paper orders")
        assert s["ready"] is True and s["trading"] == "enabled"
        [feed] = s["feeds"]
        assert feed["state"] == "connected" and feed["rate"] > 0 and feed["last_age_s"] < 5
        assert set(s["prices"]) >= {"BTCUSDT.SIM", "ETHUSDT.SIM"}
        names = {st["name"]: st for st in s["strategies"]}
        assert names["fastcross"]["state"] == "running"
        assert s["alerts"]["dropped"] == 0 and "backlog" in s["storage"]

        human = cli(env, "status", config=config)
        assert human.returncode == 0 and "fastcross" in human.stdout and "sim" in human.stdout
        r = cli(env, "status", "--json", config=config)
        assert r.returncode == 0 and json.loads(r.stdout)["pid"] == s["pid"]

        r = cli(env, "pause", "fastcross", config=config)
        assert r.returncode == 0 and "paused: fastcross" in r.stdout
        paused = {st["name"]: st["state"] for st in status(env, config)["strategies"]}
        assert paused["fastcross"] == "paused"
        r = cli(env, "pause", "nosuch", config=config)
        assert r.returncode == 1 and "no strategy named 'nosuch'" in r.stderr
        r = cli(env, "resume", "fastcross", config=config)
        assert r.returncode == 0 and "resumed: fastcross" in r.stdout
        assert {st["name"]: st["state"] for st in status(env, config)["strategies"]}["fastcross"] == "running"

        r = cli(env, "flatten", "--json", config=config)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["halted"] is True
        flat = wait_for(
            lambda: (st := status(env, config))["trading"].startswith("halted")
            and all(abs(p["qty"]) < 1e-12 for p in st["positions"])
            and st,
            30,
            "flat after flatten",
        )
        assert flat["risk"]["halted"] is True
        r = cli(env, "positions", "--json", config=config)
        assert r.returncode == 0 and isinstance(json.loads(r.stdout), list)
        for cmd in ("orders", "pnl"):
            assert ask(env, cmd).ok
        assert ask(env, "resume").ok  # resuming all lifts the flatten's halt
        lifted = status(env, config)
        assert lifted["trading"] == "enabled" and lifted["risk"]["halted"] is False
        before = status(env, config)
        orders_seen = before["counts"]["orders"]

        r = cli(env, "stop", config=config)
        assert r.returncode == 0, r.stderr
        assert "omnid stopped" in r.stdout
        assert not (data_dir / "omnid.pid").exists() and not (data_dir / "omnid.sock").exists()
        with pytest.raises(DaemonNotRunning):
            ask(env, "status")

        # State flushed: every order reached SQLite and the journal; the journal restores on restart.
        db = data_dir / "omnid.sqlite"
        assert _sqlite_count(db, "exec_orders") >= orders_seen
        assert _sqlite_count(db, "exec_fills") >= 1
        assert _sqlite_count(db, "md_trades") > 0
        events = log_events(data_dir)
        assert any(e["event"] == "storage flushed" and e["backlog"] == 0 for e in events)
        assert any(e["event"] == "fill" and e["strategy_id"] == "fastcross" for e in events)
        assert any(e["event"] == "stopped" for e in events)

        r = cli(env, "start", config=config)
        assert r.returncode == 0, r.stderr
        again = status(env, config)
        restored = again["restored"]
        assert restored["orders"] >= orders_seen and restored["fills"] >= 1
        assert again["warmed_up_trades"] > 0  # features warmed from the trades stored last run
        assert cli(env, "stop", config=config).returncode == 0
    finally:
        pid = data_dir / "omnid.pid"
        if pid.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid.read_text().strip()), signal.SIGKILL)


async def test_daemon_on_binance_peer_feed_and_reconnect(tmp_path: Path) -> None:
    """With [binance] enabled the daemon runs the Binance feed (against the local peer): ticks reach
    status, a dropped stream is reconnected and counted, /readyz follows the feed."""
    import asyncio

    import aiohttp

    from tests.peers.binance_peer import BinancePeer

    peer = BinancePeer()
    await peer.start()
    data_dir = tmp_path / "var"
    config = tmp_path / "omnid.toml"
    config.write_text(
        f"""
[[instruments]]
symbol = "BTCUSDT"
venue = "BINANCE"
tick_size = 0.01
lot_size = 0.00001

[sim_market]
enabled = false

[binance]
enabled = true
rest_url = "{peer.rest_url}"
ws_url = "{peer.ws_url}"
ws_api_url = "{peer.ws_api_url}"
symbols = ["BTCUSDT"]
streams = ["trade", "bookTicker"]
reconnect_initial_s = 0.05
reconnect_max_s = 0.2
"""
    )
    env = _env(data_dir)
    proc = await asyncio.create_subprocess_exec(
        *OMNID, "run", "--config", str(config), env=env, cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )

    async def poll(pred: Any, what: str, timeout: float = 30) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            assert proc.returncode is None, "daemon exited"
            try:
                s = await asyncio.to_thread(status, env)
                if pred(s):
                    return s
            except DaemonNotRunning:
                pass
            await asyncio.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}")

    try:
        s = await poll(lambda s: s["ready"] and s["feeds"][0]["state"] == "connected", "binance connected")
        assert s["feeds"][0]["name"] == "binance"
        await peer.trade("BTCUSDT", "50000.10", "0.002")
        await peer.book_ticker("BTCUSDT", "49999.99", "1.5", "50000.01", "2.25")
        s = await poll(lambda s: s["prices"].get("BTCUSDT.BINANCE") == 50000.0, "binance prices")
        assert s["feeds"][0]["messages"] >= 2
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{s['http']['port']}/readyz") as r:
            assert r.status == 200, await r.text()
        await peer.drop_streams()
        s = await poll(lambda s: s["feeds"][0]["reconnects"] >= 1 and s["feeds"][0]["state"] == "connected",
                       "reconnect")
        await peer.trade("BTCUSDT", "50010.00", "0.001")
        await poll(lambda s: s["prices"].get("BTCUSDT.BINANCE") == 50010.0, "ticks after reconnect")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await peer.stop()


def test_start_reports_why_the_daemon_failed(data_dir: Path) -> None:
    """`omnid start` returns 1 with the daemon's own reason when start-up fails after the spawn."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = _env(data_dir, OMNID__HTTP__PORT=str(port))
        r = cli(env, "start")
    assert r.returncode == 1
    assert "exited with code 1 during start-up" in r.stderr
    assert "start-up failed" in r.stderr and str(port) in r.stderr
    assert not (data_dir / "omnid.pid").exists() and not (data_dir / "omnid.sock").exists()


def test_pid_file_lock_stale_detection_and_release(tmp_path: Path) -> None:
    from omnid.daemon import AlreadyRunning, PidFile

    path = tmp_path / "d" / "omnid.pid"
    path.parent.mkdir()
    path.write_text("999999\n")  # left by a crashed daemon: unlocked
    first = PidFile(path)
    first.acquire()
    assert first.stale_pid == 999999 and path.read_text() == f"{os.getpid()}\n"
    with pytest.raises(AlreadyRunning, match=f"already running \\(pid {os.getpid()}"):
        PidFile(path).acquire()
    first.release()
    assert not path.exists()
    again = PidFile(path)
    again.acquire()
    assert again.stale_pid is None
    again.release()


async def test_daemon_alerts_reach_telegram_and_secrets_stay_out_of_logs(tmp_path: Path) -> None:
    """The daemon's start, fill and stop alerts arrive at a Telegram-Bot-API-shaped peer; the bot
    token (a secret) appears in neither the log file nor status."""
    import asyncio

    from tests.peers.telegram_peer import TelegramPeer

    peer = TelegramPeer(token="777001:SECRET-abcdefghijklmnop")
    await peer.start()
    data_dir = tmp_path / "var"
    config = tmp_path / "omnid.toml"
    config.write_text(EXAMPLE.read_text() + FAST_STRATEGY)
    env = _env(
        data_dir,
        OMNID__ALERTS__TELEGRAM__ENABLED="true",
        OMNID__ALERTS__TELEGRAM__BOT_TOKEN=peer.token,
        OMNID__ALERTS__TELEGRAM__CHAT_ID=f'"{peer.chat_id}"',
        OMNID__ALERTS__TELEGRAM__API_URL=peer.url,
    )
    proc = await asyncio.create_subprocess_exec(
        *OMNID, "run", "--config", str(config), env=env, cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    texts = lambda: [str(m["text"]) for m in peer.messages]  # noqa: E731

    async def until(pred: Any, what: str, timeout: float = 60) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not pred():
            assert proc.returncode is None, "daemon exited"
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {texts()}")
            await asyncio.sleep(0.2)

    try:
        await until(lambda: any("started" in t for t in texts()), "start alert")
        await until(lambda: any(t.startswith("[omnid] fill ") and "fastcross" in t for t in texts()), "fill alert")
        s = await asyncio.to_thread(status, env)
        assert s["alerts"]["channels"] == ["telegram"] and s["alerts"]["sent"] >= 2
        assert peer.token not in json.dumps(s)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
        assert any("stopping (SIGTERM)" in t for t in texts())
        assert all(str(m["chat_id"]) == peer.chat_id for m in peer.messages)
        log_text = (data_dir / "logs" / "omnid.log").read_text()
        assert peer.token not in log_text and "fastcross" in log_text
        # Each alert's fate is recorded too (the start and fill alerts at least, before storage
        # stopped), without the token.
        db = data_dir / "omnid.sqlite"
        assert _sqlite_count(db, "exec_alerts") >= 2
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT outcome, text FROM exec_alerts").fetchall()
        assert any(o == "sent" and "fastcross" in t for o, t in rows), rows
        assert peer.token not in json.dumps(rows)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await peer.close()


def test_kill_9_then_restart_restores_and_reports_a_crash(data_dir: Path, tmp_path: Path) -> None:
    """Restart after SIGKILL runs the same start-up path: the stale pid file and socket are taken
    over, the journal restores every order, and a crash-restart alert is raised."""
    config = tmp_path / "omnid.toml"
    config.write_text(EXAMPLE.read_text() + FAST_STRATEGY)
    env = _env(data_dir, OMNID__SIM_MARKET__RATE_HZ="40")
    try:
        assert cli(env, "start", config=config).returncode == 0
        s = wait_for(lambda: (st := status(env, config))["counts"]["orders"] >= 2 and st, 60, "orders")
        pid = s["pid"]
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not Path(f"/proc/{pid}").exists() or
                 Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z", 10, "the kill")
        assert (data_dir / "omnid.pid").exists() and (data_dir / "omnid.sock").exists()  # left behind
        with pytest.raises((DaemonNotRunning, AdminProtocolError)):  # gone: nothing answers now
            ask(env, "status")

        r = cli(env, "start", config=config)
        assert r.returncode == 0, r.stderr
        again = status(env, config)
        assert again["pid"] != pid
        assert again["restored"]["orders"] >= 2 and again["restored"]["last_seq"] >= 2
        events = log_events(data_dir)
        assert any(e["event"].startswith("stale pid file") and e["stale_pid"] == pid for e in events)
        assert any(e["event"] == "alert" and e["kind"] == "daemon_restart" for e in events)
        assert cli(env, "stop", config=config).returncode == 0
    finally:
        pid_file = data_dir / "omnid.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
