"""Our binary COPY encoder, round-tripped through the real PostgreSQL on 127.0.0.1:5432."""

from __future__ import annotations

import asyncio
import json
import math
from itertools import zip_longest
from typing import Any

import pytest
from omnid.errors import TransientError
from omnid.storage.catalog import Catalog, Column, Row, TableSpec
from omnid.storage.sinks.base import Batch, make_units
from omnid.storage.sinks.pg_process import PostgresProcessSink
from omnid.storage.sinks.pgcopy import HEADER, TRAILER, CopyEncoder
from omnid.storage.sinks.postgres import STEP, PostgresSink

from tests.storage.conftest import PG_DSN, trades
from tests.storage.tcpproxy import TcpProxy

pytestmark = pytest.mark.postgres

I64_MIN, I64_MAX = -(2**63), 2**63 - 1


def _spec(row: Any = None) -> TableSpec:
    cols = [Column("k", "text"), Column("n", "int"), Column("x", "real"), Column("note", "text"),
            Column("doc", "json")]
    return TableSpec("strategy", "enc_probe", cols, ("k",), row or (lambda r: r), ts_column="n")


GOOD: list[Row] = [
    ("ascii", 0, 1.5, "plain", '{"a": 1}'),
    ("nulls", None, None, None, None),
    ("Straße-日本-🚀", I64_MIN, -0.0, "Ünïcödé ✓ 𝄞", '{"ключ": "значение", "emoji": "🙂"}'),
    ("max", I64_MAX, 1.7976931348623157e308, "", "[]"),
    ("tiny", -1, 5e-324, "x" * 3000, '"s"'),
    ("inf", 1, math.inf, "t", "null"),
    ("-inf", 2, -math.inf, "t", "{}"),
    ("nan", 3, math.nan, "t", "{}"),
]
BAD: list[Any] = [
    ("overflow", I64_MAX + 1, 1.0, "t", "{}"),  # outside int64
    ("under", I64_MIN - 1, 1.0, "t", "{}"),
    (None, 1, 1.0, "t", "{}"),  # NULL in the key
    ("nul", 1, 1.0, "a\x00b", "{}"),  # PostgreSQL text cannot hold NUL
    ("type", "1", 1.0, "t", "{}"),  # text in a bigint column
    ("float-in-int", 1.5, 1.0, "t", "{}"),
    ("bytes", 1, 1.0, b"t", "{}"),  # not a str
    ("short", 1, 1.0),  # wrong arity
    ("surrogate", 1, 1.0, "\ud800", "{}"),  # cannot be UTF-8
]


async def stored(sink: PostgresSink | PostgresProcessSink, prefix: str) -> dict[str, tuple[Any, ...]]:
    rows = await sink.fetch(f'SELECT k, n, x, note, doc::text FROM "{prefix}strategy".enc_probe')
    return {r[0]: tuple(r[1:]) for r in rows}


def assert_good(got: dict[str, tuple[Any, ...]]) -> None:
    """Every GOOD row came back as written."""
    for k, n, x, note, doc in GOOD:
        g = got[k]
        assert g[0] == n and _same(g[1], x) and g[2] == note, k
        if doc is not None:
            assert json.loads(g[3]) == json.loads(doc), k
        else:
            assert g[3] is None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    return bool(a == b)


async def test_values_round_trip_and_bad_rows_are_left_out(pg_prefix: str,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """NULLs, non-ASCII text and JSON, int64 and float extremes, NaN and infinities come back
    as written; each row that cannot be stored is logged and left out, the others all stored."""
    spec = _spec()
    sink = PostgresSink(PG_DSN, schema_prefix=pg_prefix, catalog=Catalog())
    await sink.start([spec])
    mixed = [r for pair in zip_longest(GOOD, BAD) for r in pair if r is not None]
    await sink.write(Batch(spec, mixed, built=True))
    got = await stored(sink, pg_prefix)
    await sink.close()
    assert sink.encoder(spec).rejected == len(BAD)
    assert set(got) == {r[0] for r in GOOD}
    assert_good(got)
    assert sum("cannot store a row in strategy.enc_probe" in m for m in caplog.messages) == len(BAD)


async def test_an_item_without_a_row_is_left_out(pg_prefix: str) -> None:
    """An item whose row function fails is logged and skipped; its chunk's other items land."""

    def row(item: Any) -> Row:
        if item == "boom":
            raise ValueError("no row for this one")
        return (str(item), int(item), float(item), None, None)

    spec = _spec(row)
    sink = PostgresSink(PG_DSN, schema_prefix=pg_prefix, catalog=Catalog())
    await sink.start([spec])
    await sink.write(Batch(spec, [1, 2, "boom", 3]))
    got = await stored(sink, pg_prefix)
    await sink.close()
    assert set(got) == {"1", "2", "3"}


async def test_pieces_join_to_the_whole_stream() -> None:
    """However finely a slice cuts the stream, the pieces join to the same bytes: a header, one
    encoding per row, the trailer; with no slice (the writer process) a piece is PIECE_ROWS rows."""
    cat = Catalog()
    spec = cat.table("md.trades")
    items = trades(1000)
    whole = CopyEncoder(spec)
    out: list[bytes] = []
    whole.encode([spec.row(t) for t in items], out)
    expected = HEADER + b"".join(out) + TRAILER
    for slice_s, count in ((1e-9, -(-1000 // STEP) + 1), (10.0, 1), (0.0, 2)):  # 0: the writer process
        sink = PostgresSink(PG_DSN, catalog=cat, slice_s=slice_s)
        pieces = [p async for p in sink._pieces(Batch(spec, items))]
        assert b"".join(pieces) == expected
        assert len(pieces) == count, slice_s


@pytest.mark.parametrize("connections", [1, 2])
async def test_server_gone_mid_copy_is_transient_and_the_replay_stores_once(pg_prefix: str,
                                                                            connections: int) -> None:
    """The connections are cut while our COPY pieces stream: the write fails as transient, and
    the replay of the same units afterwards stores every row exactly once."""
    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.start()
    cat = Catalog()
    spec = cat.table("md.trades")
    sink = PostgresSink(f"postgresql://postgres@127.0.0.1:{proxy.port}/test", schema_prefix=pg_prefix,
                        catalog=cat, slice_s=0.00005, timeout_s=5.0, connections=connections)
    await sink.start(cat.tables())
    items = trades(100_000)
    units = make_units("cut:0", len(items))
    task = asyncio.create_task(sink.write(Batch(spec, items, units=units)))
    for _ in range(100_000):
        if sink._streams == connections:
            break
        await asyncio.sleep(0)
    for _ in range(20):  # some pieces out, most still to come
        await asyncio.sleep(0)
    assert sink._streams == connections and not task.done()
    await proxy.cut()
    with pytest.raises(TransientError):
        await task
    assert sink._streams == 0
    await proxy.restore()
    await sink.ping()
    rows = [spec.row(t) for t in items]
    await sink.write(Batch(spec, rows, built=True, replay=True, units=units))
    got = await sink.fetch(f'SELECT count(*), count(DISTINCT trade_id) FROM "{pg_prefix}md".trades')
    await sink.close()
    await proxy.close()
    assert tuple(got[0]) == (100_000, 100_000)


@pytest.mark.parametrize("writer", ["loop", "process"])
async def test_rows_with_a_bad_partition_time_on_a_new_day_cost_only_themselves(pg_prefix: str,
                                                                              writer: str) -> None:
    """A batch for a day without a partition yet, holding rows whose time cannot be read (too
    short, text, beyond int64, NULL): the partition is made from the good rows' days and only the
    bad rows are left out, with either writer."""
    cat = Catalog()
    spec = cat.table("md.trades")
    good = [spec.row(t) for t in trades(100)]
    bad: list[Any] = [("short",), (*good[0][:4], "x", 1, "b1"), (*good[0][:4], 2**70, 1, "b2"),
                      (*good[0][:4], None, 1, "b3")]
    rows = good[:50] + bad + good[50:]
    sink: PostgresSink | PostgresProcessSink
    if writer == "loop":
        sink = PostgresSink(PG_DSN, schema_prefix=pg_prefix, catalog=cat)
    else:
        sink = PostgresProcessSink(PG_DSN, schema_prefix=pg_prefix)
    await sink.start(cat.tables())
    try:
        await sink.write(Batch(spec, rows, built=True))
        got = await sink.fetch(f'SELECT count(*), count(DISTINCT trade_id) FROM "{pg_prefix}md".trades')
    finally:
        await sink.close()
    assert tuple(got[0]) == (100, 100)
    # logged by each COPY attempt that meets them (before and after the partition), counted once
    assert sink.rejected == len(bad)
