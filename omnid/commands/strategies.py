"""``omnid strategies kinds``: the strategy kinds this build knows, and each one's parameters.

What a ``[[strategies]]`` table may say: the kind names, and for each kind every parameter with its
type and default (anything else in ``params`` is a config error).
"""

from __future__ import annotations

import json
import math
import sys
import typing
from typing import Any

import typer


def kind_info(kind: str) -> dict[str, Any]:
    """A kind's summary line and its parameters (name, type, default) as plain data."""
    import msgspec

    from omnid.strategies.registry import STRATEGY_KINDS

    cls = STRATEGY_KINDS[kind]
    module = sys.modules.get(cls.__module__)
    doc = ((module.__doc__ if module is not None else None) or cls.__doc__ or "").strip()
    summary = doc.splitlines()[0] if doc else ""
    summary = summary.removeprefix(f"``{kind}``: ")
    params = []
    for f in msgspec.structs.fields(cls.params_type):
        default = f.default if f.default is not msgspec.NODEFAULT else None
        if isinstance(default, float) and not math.isfinite(default):
            default = str(default)  # JSON has no infinities: "-inf" as TOML spells it
        params.append({"name": f.encode_name, "type": _type_name(f.type), "default": default})
    return {"kind": kind, "summary": summary, "instruments": cls.n_instruments, "params": params}


def _type_name(t: Any) -> str:
    if typing.get_origin(t) is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(t))
    return getattr(t, "__name__", str(t))


def register(app: typer.Typer) -> None:
    strategies_app = typer.Typer(help="The strategy kinds and their parameters.", no_args_is_help=True)
    app.add_typer(strategies_app, name="strategies")

    @strategies_app.command("kinds")
    def kinds(
        kind: str = typer.Argument("", help="One kind (default: all)."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """List strategy kinds with every parameter, its type and its default."""
        # The registry imports every built-in strategy: only this command needs them.
        from omnid.strategies.registry import STRATEGY_KINDS, known_kinds

        names = known_kinds()
        if kind:
            if kind not in STRATEGY_KINDS:
                typer.echo(f"unknown kind {kind!r} (known: {', '.join(names)})", err=True)
                raise typer.Exit(2)
            names = [kind]
        infos = [kind_info(k) for k in names]
        if as_json:
            typer.echo(json.dumps(infos))
            return
        for info in infos:
            n = info["instruments"]
            typer.echo(f"{info['kind']}: {info['summary']}")
            typer.echo(f"  instruments: {'any number' if n is None else f'exactly {n}'}")
            for p in info["params"]:
                typer.echo(f"  {p['name']:26s} {p['type']:36s} default {p['default']!r}")
