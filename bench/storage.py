"""Storage throughput and event-loop stalls through the real recorder → flusher → sink path.

For each sink, trade ticks are recorded as the hot path would (a few hundred at a time, then the
loop gets a turn) while a probe task asks to wake every 1 ms and records how late it was: the worst
lateness is the longest stall (wall clock). On a loaded 2-core machine much of that is the OS
running other processes (PostgreSQL's backends, the writer process, other users), so the probe
also reports the part of each stall the loop thread spent running (its CPU time, time.thread_time):
that is what our code is responsible for, and what the 2 ms target is about. The ``none`` row runs
the same feed with no sink: the machine's own stalls, printed next to every sink's. The clock runs
from the first record to the moment every row is committed. Runs are interleaved (run 1 of every
sink, then run 2, ...) so that a change in the machine's load hits every sink alike; figures are
medians over the runs, stalls also as the worst run.

Sinks: ``postgres`` (a writer process does the COPY), ``postgres-loop`` (the daemon's default:
the COPY on the loop, our own encoding in half-slice pieces; ``--pg-connections`` sets its
connections), ``sqlite``. ``--pin`` puts this process on the first CPUs and every PostgreSQL
process on the last one for the runs (what ``CPUAffinity=`` does in a deployment, see
systemd/omnid.service), so the wall figures can be quoted pinned and unpinned.
Also measured, for PostgreSQL (``--sink-alone``): the in-loop sink alone
writing one large batch of ticks fresh, as a replay through the batch ledger (units not stored yet:
ledger insert + COPY in one transaction), and as a replay of units all stored already (skipped).
``--index-cost`` times one connection's binary COPY of the ticks into a plain table under each
index the tick tables could carry (none, BRIN on ts_event, btree on (instrument_id, ts_event), the
old unique natural key), to choose which to keep.

    .venv/bin/python bench/storage.py                  # 1,000,000 ticks, 3 runs, every sink
    .venv/bin/python bench/storage.py --rows 200000 --runs 5 --sinks none,sqlite
    .venv/bin/python bench/storage.py --runs 5 --sinks none,postgres-loop --probe-ms 0 [--pin]
    OMNID_BENCH_PG=postgresql://... to point at another server (default 127.0.0.1:5432/test)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
from omnid.model import Side, Trade
from omnid.storage.catalog import Catalog
from omnid.storage.flusher import Flusher
from omnid.storage.lagprobe import LoopLagProbe
from omnid.storage.recorder import BatchRecorder
from omnid.storage.sinks.base import Batch, Sink, make_units
from omnid.storage.sinks.pg_process import PostgresProcessSink
from omnid.storage.sinks.postgres import PostgresSink
from omnid.storage.sinks.sqlite import SqliteSink

PG = os.environ.get("OMNID_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
T0 = 1_795_000_000_000_000_000
FEED = 400  # records per hot-path turn


def make_trades(n: int, offset: int = 0) -> list[Trade]:
    return [Trade("BTCUSDT.BINANCE", 100.0 + (i % 97) * 0.01, 0.001 * (1 + i % 13),
                  Side.BUY if i & 1 else Side.SELL, T0 + (offset + i) * 1000, T0 + (offset + i) * 1000 + 7,
                  str(offset + i)) for i in range(n)]


async def drop_schemas(prefix: str) -> None:
    conn = await asyncpg.connect(PG)
    try:
        for g in ("md", "derived", "strategy", "exec", "meta"):
            await conn.execute(f'DROP SCHEMA IF EXISTS "{prefix}{g}" CASCADE')
    finally:
        await conn.close()


class Run(NamedTuple):
    rate: float  # rows/s
    wall_max: float  # longest stall, wall clock, s
    wall_p999: float
    cpu_max: float  # longest stall spent running on the loop thread, s
    cpu_p999: float


def postgres_pids() -> list[int]:
    """Every PostgreSQL server process on this machine (postmaster, backends, helpers)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                comm = Path(f"/proc/{d}/comm").read_text().strip()
            except OSError:
                continue
            if comm.startswith(("postgres", "postmaster")):
                out.append(int(d))
    return out


class Pinning:
    """``--pin``: this process on the first CPUs, every PostgreSQL process on the last one (new
    backends inherit it from the postmaster), restored afterwards. What a deployment gets from
    ``CPUAffinity=`` in the two systemd units."""

    def __init__(self) -> None:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            raise SystemExit("--pin needs at least 2 CPUs")
        self.ours, self.theirs = set(cpus[:-1]), {cpus[-1]}
        self.saved: dict[int, set[int]] = {}
        self.own = os.sched_getaffinity(0)

    def __enter__(self) -> Pinning:
        os.sched_setaffinity(0, self.ours)
        for pid in postgres_pids():
            try:
                self.saved[pid] = os.sched_getaffinity(pid)
                os.sched_setaffinity(pid, self.theirs)
            except OSError as exc:  # not ours to move: say so rather than measure something else
                raise SystemExit(f"--pin: cannot move PostgreSQL process {pid}: {exc}") from exc
        return self

    def __exit__(self, *exc: object) -> None:
        for pid, cpus in self.saved.items():
            with contextlib.suppress(OSError):  # gone since
                os.sched_setaffinity(pid, cpus)
        for pid in set(postgres_pids()) - set(self.saved):  # backends born while pinned
            with contextlib.suppress(OSError):
                os.sched_setaffinity(pid, self.own | self.theirs)
        os.sched_setaffinity(0, self.own)

    def describe(self) -> str:
        return f"bench on CPU {sorted(self.ours)}, PostgreSQL on CPU {sorted(self.theirs)}"


async def through_flusher(
    kind: str, trades: list[Trade], tmp: Path, hold_s: float = 0.0, probe_s: float = 0.001,
    pg_connections: int | None = None,
) -> Run:
    """One run of ``trades`` through recorder, flusher and the ``kind`` sink (``none``: no sink,
    and the probe keeps watching the idle loop until ``hold_s`` has passed). ``pg_connections``:
    the in-loop PostgreSQL sink's connections (None: its default)."""
    cat = Catalog()
    prefix = f"bench{uuid.uuid4().hex[:8]}_"
    sinks: dict[str, Sink] = {}
    if kind == "postgres":
        sinks[kind] = PostgresProcessSink(PG, schema_prefix=prefix)
    elif kind == "postgres-loop":
        extra = {} if pg_connections is None else {"connections": pg_connections}
        sinks[kind] = PostgresSink(PG, schema_prefix=prefix, catalog=cat, **extra)
    elif kind == "sqlite":
        sinks[kind] = SqliteSink(tmp / f"{prefix}.sqlite")
    rec = BatchRecorder(cat, flush_rows=50_000, hard_limit=len(trades) + 1)
    fl = Flusher(rec, sinks, default_sink=kind, spool_dir=tmp / prefix, catalog=cat,
                 flush_ms=50, max_buffer_rows=len(trades) + 1, slice_us=500)
    await fl.start()
    await asyncio.sleep(0.05)
    gc.collect()  # not the previous run's garbage
    probe = LoopLagProbe(probe_s)
    probe.start()
    await asyncio.sleep(0.01)
    record = rec.record
    fresh = Trade.__copy__  # a new object per tick, as a feed's decoder makes: the flusher then
    t0 = time.perf_counter()  # holds the only reference, so freeing written batches is measured too
    for i in range(0, len(trades), FEED):
        for t in trades[i : i + FEED]:
            record(fresh(t))
        await asyncio.sleep(0)
    await fl.flush(timeout_s=600)
    elapsed = time.perf_counter() - t0
    if not sinks:  # the baseline: watch the loop as long as a sink's run lasts, feed done
        await asyncio.sleep(max(0.0, hold_s - elapsed))
    await probe.stop()
    written = fl.workers[kind].rows_written if sinks else len(trades)
    await fl.stop()
    if kind.startswith("postgres"):
        await drop_schemas(prefix)
    assert written == len(trades), (written, len(trades))
    return Run(len(trades) / elapsed, probe.max_lag_s, probe.percentile(0.999), probe.max_cpu_lag_s,
               probe.percentile(0.999, cpu=True))


async def pg_paths(trades: list[Trade]) -> tuple[float, float, float]:
    """(fresh COPY rows/s, ledger replay rows/s, all-skipped replay rows/s) for one big batch,
    sink alone."""
    cat = Catalog()
    prefix = f"bench{uuid.uuid4().hex[:8]}_"
    spec = cat.table("md.trades")
    sink = PostgresSink(PG, schema_prefix=prefix, catalog=cat)
    await sink.start(cat.tables())
    rows = [spec.row(t) for t in trades]
    await sink.write(Batch(spec, rows[:10], built=True))  # create the day partition first
    await sink.fetch(f'TRUNCATE "{prefix}md".trades')
    t0 = time.perf_counter()
    await sink.write(Batch(spec, trades))
    direct = len(rows) / (time.perf_counter() - t0)
    await sink.fetch(f'TRUNCATE "{prefix}md".trades')
    units = make_units(uuid.uuid4().hex, len(rows))
    t0 = time.perf_counter()
    await sink.write(Batch(spec, rows, built=True, replay=True, units=units))
    ledger = len(rows) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    await sink.write(Batch(spec, rows, built=True, replay=True, units=units))
    skipped = len(rows) / (time.perf_counter() - t0)
    await sink.close()
    await drop_schemas(prefix)
    return direct, ledger, skipped


INDEXES = {
    "none": "",
    "brin(ts_event)": 'CREATE INDEX ON {t} USING brin ("ts_event")',
    "btree(instrument_id, ts_event)": 'CREATE INDEX ON {t} ("instrument_id", "ts_event")',
    "unique(instrument_id, ts_event, trade_id)":
        'ALTER TABLE {t} ADD PRIMARY KEY ("instrument_id", "ts_event", "trade_id")',
}


async def index_cost(trades: list[Trade], runs: int) -> dict[str, float]:
    """Median rows/s of one binary COPY of ``trades`` into a fresh plain table under each index."""
    spec = Catalog().table("md.trades")
    rows = [spec.row(t) for t in trades]
    schema = f"bench{uuid.uuid4().hex[:8]}_idx"
    conn = await asyncpg.connect(PG)
    out: dict[str, list[float]] = {k: [] for k in INDEXES}
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        for _ in range(runs):
            for name, ddl in INDEXES.items():
                t = f'"{schema}"."t"'
                await conn.execute(f"DROP TABLE IF EXISTS {t}")
                await conn.execute(f'CREATE TABLE {t} ("instrument_id" text COLLATE "C" NOT NULL, '
                                   '"price" double precision, "size" double precision, "side" text, '
                                   '"ts_event" bigint NOT NULL, "ts_init" bigint, '
                                   '"trade_id" text COLLATE "C" NOT NULL)')
                if ddl:
                    await conn.execute(ddl.format(t=t))
                t0 = time.perf_counter()
                await conn.copy_records_to_table("t", schema_name=schema, columns=spec.column_names,
                                                 records=rows)
                out[name].append(len(rows) / (time.perf_counter() - t0))
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
    return {k: statistics.median(v) for k, v in out.items()}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sinks", default="none,postgres,postgres-loop,sqlite",
                    help="none = the same feed with the recorder and flusher but no sink (the "
                         "machine's own stalls, for comparison)")
    ap.add_argument("--probe-ms", type=float, default=1.0,
                    help="probe interval; 0 = wake every loop turn: precise stalls, but the loop "
                         "thread never idles, which lowers the other figures")
    ap.add_argument("--sink-alone", action="store_true",
                    help="also time the in-loop PostgreSQL sink alone on one big batch")
    ap.add_argument("--index-cost", action="store_true",
                    help="only time one COPY of the ticks into a plain table under each candidate index")
    ap.add_argument("--gc-freeze", action="store_true", help="gc.freeze() before measuring")
    ap.add_argument("--switch-interval-ms", type=float, default=0.0,
                    help="sys.setswitchinterval (default Python's 5 ms)")
    ap.add_argument("--pin", action="store_true",
                    help="pin this process to the first CPUs and every PostgreSQL process to the last "
                         "one for the runs (restored after): the CPUAffinity= deployment")
    ap.add_argument("--pg-connections", type=int, default=None,
                    help="connections of the in-loop PostgreSQL sink (default: the sink's own)")
    args = ap.parse_args()
    trades = make_trades(args.rows)
    if args.index_cost:
        print(f"one binary COPY of {args.rows:,} ticks on one connection, median of {args.runs} runs, "
              f"load average {os.getloadavg()[0]:.1f}")
        for name, rate in (await index_cost(trades, args.runs)).items():
            print(f"  {name:45s} {rate:>10,.0f} rows/s")
        return
    if args.gc_freeze:
        gc.freeze()
    if args.switch_interval_ms:
        sys.setswitchinterval(args.switch_interval_ms / 1000)
    print(f"{args.rows:,} trade ticks per run, {args.runs} runs, fed {FEED} per loop turn; "
          f"loop={type(asyncio.get_running_loop()).__module__}; gc.freeze={args.gc_freeze}; "
          f"switch interval {sys.getswitchinterval() * 1000:g} ms; probe every {args.probe_ms:g} ms; "
          f"load average {os.getloadavg()[0]:.1f}")
    kinds = args.sinks.split(",")
    if "none" not in kinds:
        kinds.insert(0, "none")  # the baseline every sink's stalls are shown against
    results: dict[str, list[Run]] = {k: [] for k in kinds}
    pin = Pinning() if args.pin else contextlib.nullcontext()
    if isinstance(pin, Pinning):
        print(f"pinned: {pin.describe()}")
    with tempfile.TemporaryDirectory() as d, pin:
        for _ in range(args.runs):
            for kind in kinds:
                rates = [r.rate for k, rs in results.items() if k != "none" for r in rs]
                hold = len(trades) / min(rates) if rates else 3.0  # as long as the slowest sink
                results[kind].append(await through_flusher(kind, trades, Path(d), hold,
                                                           args.probe_ms / 1000, args.pg_connections))

    def ms(x: float) -> str:
        return f"{x * 1000:5.2f}"

    base = results["none"]
    b_wall, b_cpu = statistics.median(r.wall_max for r in base), statistics.median(r.cpu_max for r in base)
    print("longest stall per run, median of runs (worst run); baseline = the same feed with no sink")
    print(f"{'sink':14s} {'rows/s':>10s}   {'wall ms':>15s} {'baseline':>8s}   "
          f"{'on-loop ms':>15s} {'baseline':>8s}   {'p99.9 wall/on-loop ms':>21s}")
    for kind in kinds:
        rs = results[kind]
        print(f"{kind:14s} {statistics.median(r.rate for r in rs):>10,.0f}   "
              f"{ms(statistics.median(r.wall_max for r in rs))} ({ms(max(r.wall_max for r in rs))}) "
              f"{ms(b_wall):>8s}   "
              f"{ms(statistics.median(r.cpu_max for r in rs))} ({ms(max(r.cpu_max for r in rs))}) "
              f"{ms(b_cpu):>8s}   "
              f"{ms(statistics.median(r.wall_p999 for r in rs))} / "
              f"{ms(statistics.median(r.cpu_p999 for r in rs))}")
        print(f"{'':14s} rows/s per run: {', '.join(f'{r.rate:,.0f}' for r in rs)}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    if "postgres" in args.sinks and args.sink_alone:
        res = [await pg_paths(trades) for _ in range(args.runs)]
        print(f"postgres sink alone, one {args.rows:,}-row batch: fresh COPY "
              f"{statistics.median(r[0] for r in res):,.0f} rows/s, replay through the ledger "
              f"{statistics.median(r[1] for r in res):,.0f} rows/s, replay already stored "
              f"{statistics.median(r[2] for r in res):,.0f} rows/s (medians)")


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
