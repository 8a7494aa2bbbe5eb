"""Per-instrument trade paths, generated for the shape they serve.

:meth:`omnid.engine.Engine.trade_path` is the backtester's per-tick entry: the engine's trade
steps for one instrument (paper broker, mark, tick features, managed exits, strategy hooks). Its
feature updates and strategy hooks live in lists, and a loop over a one- or two-element list costs
more than the call it makes. So the path is written out as source for the lists as they are when
it is built (``c0(px)``, ``t0(ts, px, size)``, ``h0(trade)``, ...) and compiled once, the way
``dataclasses`` writes ``__init__``.

Lists can change later: a strategy paused or disabled gets the engine a new handler list, and a
feature added after start appends to the feed. The generated path therefore checks, per tick, that
it still has the same handler list (identity), the same feed and the same feed version; if not, it
runs the general loops, which read the lists as they are. Behaviour is the same either way; only
the speed differs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from omnid.model import Trade

_TEMPLATE = '''
def on_trade(trade):
    px = trade.price
SIZE_LOAD    if MALFORMED_OR st.builders:
        general(trade)
        return
    if PAPER_WORKING:
        engine._busy = 1
        paper(trade)
        engine._busy = 0
        if engine._queue:
            drain()
    elif engine._busy:
        engine._busy = 0
        if engine._queue:
            drain()
    mark(iid, px)
    last[iid] = px
    if st.tick_feed is FEED and VERSION_OK:
{features}
    else:
        size = trade.size
        feed = st.tick_feed
        if feed is not None:
            for f in feed.close:
                f(px)
            if feed.others:
                for g in feed.pv:
                    g(px, size)
                for g in feed.cv:
                    g(px, size)
                for h in feed.hlc:
                    h(px, px, px)
                if feed.tpv:
                    ts = trade.ts_event
                    for t in feed.tpv:
                        t(ts, px, size)
    if iid in managed:
        exit_intent = exit_price(iid, px, trade.ts_event)
        if exit_intent is not None:
            process([exit_intent])
    handlers = route.handlers
    if handlers is HANDLERS:
{hooks}
    else:
        for runner, fn in handlers:
            try:
                out = fn(trade)
            except Exception as exc:
                failed(runner, "on_trade", exc)
                continue
            if out:
                accept(runner, "on_trade", out)
'''

_HOOK = '''        try:
            out = h{i}(trade)
        except Exception as exc:
            failed(r{i}, "on_trade", exc)
        else:
            if out:
                accept(r{i}, "on_trade", out)
'''


def compile_trade_path(
    *,
    engine: Any,
    iid: str,
    st: Any,
    route: Any,
    general: Callable[[Trade], None],
    bound: dict[str, Any],
    checked: bool = False,
) -> Callable[[Trade], None]:
    """The trade path for ``iid``, written out for its current feed and handlers.

    ``bound`` holds the engine's parts the path calls (paper, working, mark, last, managed,
    exit_price, drain, process, accept, failed); ``st`` is the feature engine's state for the
    instrument, ``route`` the engine's handler route for it. ``checked``: the caller has checked
    every trade it will pass (price in (0, 1e308), size in [0, 1e308)), so the per-tick test that
    sends a malformed print to the general path is left out.
    """
    env: dict[str, Any] = dict(bound)
    env.update(engine=engine, iid=iid, st=st, route=route, general=general)
    feed = st.tick_feed
    env["FEED"] = feed
    lines: list[str] = []
    if feed is None:
        version_ok = "True"
        lines.append("        pass")
    else:
        env["VERSION"] = feed.version
        version_ok = "FEED.version == VERSION"
        for i, f in enumerate(feed.close):
            env[f"c{i}"] = f
            lines.append(f"        c{i}(px)")
        for i, g in enumerate(feed.pv):
            env[f"p{i}"] = g
            lines.append(f"        p{i}(px, size)")
        for i, g in enumerate(feed.cv):
            env[f"v{i}"] = g
            lines.append(f"        v{i}(px, size)")
        for i, h in enumerate(feed.hlc):
            env[f"x{i}"] = h
            lines.append(f"        x{i}(px, px, px)")
        if feed.tpv:
            lines.append("        ts = trade.ts_event")
        for i, t in enumerate(feed.tpv):
            env[f"t{i}"] = t
            lines.append(f"        t{i}(ts, px, size)")
        if not lines:
            lines.append("        pass")
    handlers = route.handlers
    env["HANDLERS"] = handlers
    hooks: list[str] = []
    for i, (runner, fn) in enumerate(handlers):
        env[f"r{i}"] = runner
        env[f"h{i}"] = fn
        hooks.append(_HOOK.format(i=i))
    # The broker is bound for good: without one the paper branch compiles away.
    paper_working = "iid in working" if env.get("paper") is not None else "False"
    malformed_or = "" if checked else "not (0.0 < px < 1e308 and 0.0 <= size < 1e308) or "
    # The size is read up front only for the malformed-print test or a feature that takes it.
    sized = not checked or (feed is not None and bool(feed.pv or feed.cv or feed.tpv))
    size_load = "    size = trade.size\n" if sized else ""
    source = (
        _TEMPLATE.replace("VERSION_OK", version_ok)
        .replace("PAPER_WORKING", paper_working)
        .replace("MALFORMED_OR ", malformed_or)
        .replace("SIZE_LOAD", size_load)
    ).format(
        features="\n".join(lines), hooks="".join(hooks) or "        pass\n"
    )
    code = compile(source, f"<omnid trade path {iid}>", "exec")
    exec(code, env)  # our own template, filled with names only, never with data
    fn = env["on_trade"]
    if not callable(fn):  # pragma: no cover - the template always defines it
        raise TypeError("trade path template defined no on_trade")
    return cast("Callable[[Trade], None]", fn)
