"""Split parts as views, and the recorder's buffers leaving the young GC generations: what keeps
the loop-side PostgreSQL writer from making young collections walk whole batches (issue 5)."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from omnid.storage.catalog import Catalog
from omnid.storage.flusher import Flusher
from omnid.storage.recorder import BatchRecorder
from omnid.storage.sinks.base import Batch, Span, iter_rows, make_units
from omnid.storage.sinks.sqlite import SqliteSink

from tests.storage.conftest import trades


def test_span_reads_like_the_slice_it_stands_for() -> None:
    src = list(range(100))
    s = Span(src, 10, 40)
    assert len(s) == 30
    assert list(s) == src[10:40]
    assert s[0] == 10 and s[-1] == 39 and s[5:9] == [15, 16, 17, 18] and s[-3:] == [37, 38, 39]
    assert s[::10] == [10, 20, 30]
    with pytest.raises(IndexError):
        s[30]
    inner = Span(s, 5, 10)  # a view of a view points at the list, not at the view
    assert inner.src is src and list(inner) == src[15:20]


@pytest.mark.parametrize("units", [False, True])
def test_split_views_cut_like_copies(units: bool) -> None:
    spec = Catalog().table("md.trades")
    items = trades(10_500)
    batch = Batch(spec, items, units=make_units("r:0", len(items)) if units else None)
    copies, views = batch.split(3), batch.split(3, copy=False)
    assert [len(p) for p in views] == [len(p) for p in copies]
    assert sum(len(p) for p in views) == len(items)
    for c, v in zip(copies, views, strict=True):
        assert isinstance(v.items, Span) and v.items.src is items
        assert list(v.items) == list(c.items) and v.units == c.units
        if units:  # a unit is never cut across two parts
            assert v.units is not None and v.units[-1][1] == len(v)


async def test_rows_from_a_view_match_rows_from_a_copy() -> None:
    spec = Catalog().table("md.trades")
    items = trades(3000)
    part = Batch(spec, items, units=None).split(2, copy=False)[1]
    got = [r async for chunk in iter_rows(part, 0.0005) for r in chunk]
    assert got == [spec.row(t) for t in items[1500:]]


async def test_dispatch_moves_fresh_buffers_out_of_the_young_generation(tmp_path: Path) -> None:
    cat = Catalog()
    rec = BatchRecorder(cat, flush_rows=10_000)
    fl = Flusher(rec, {"sqlite": SqliteSink(tmp_path / "db.sqlite")}, spool_dir=tmp_path / "spool",
                 catalog=cat, flush_ms=10_000)
    await fl.start()
    try:
        for t in trades(10):
            rec.record(t)
        fl.dispatch()
        fresh = list(rec._lists.values())
        assert fresh and all(not buf for buf in fresh)
        young = {id(o) for o in gc.get_objects(0)}
        assert not any(id(buf) in young for buf in fresh)
        await fl.flush(timeout_s=10)
    finally:
        await fl.stop()
