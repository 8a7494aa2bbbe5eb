"""A local stand-in for QuestDB's HTTP endpoints, enough to test omnid's QuestDB sink fed by the
official ``questdb`` Python client.

Protocol facts this peer follows, and where they come from:

- QuestDB docs, "InfluxDB Line Protocol Overview" (documentation/ingestion/ilp/overview.md):
  ILP over HTTP shares port 9000; every request is one transaction when it holds rows for one
  table (a request with a parse error stores nothing); tables and columns are created from the
  first row; a column whose type does not match the table is a non-recoverable error that the HTTP
  transport propagates to the client; retries of recoverable errors can resend a batch, and
  QuestDB's deduplication (``DEDUP UPSERT KEYS``) makes that exactly-once; ``GET /ping`` → 204.
- QuestDB docs, "InfluxDB line protocol" message format (docs/reference/api/influxdb.md, and the
  "Advanced settings" page): ``table[,sym=v...] [col=v,...] [timestamp]\\n``; in names and symbol
  values space, comma and equals are escaped with a backslash; strings are double-quoted with
  ``\\"`` and ``\\\\`` escapes; integers end in ``i``; booleans are ``t``/``f``/``true``/``false``;
  timestamp columns end in ``t`` (micros) or ``n`` (nanos); the designated timestamp is nanoseconds
  with ``precision=n``.
- The official client's sources (questdb/c-questdb-client, questdb-rs/src/ingress/sender/http.rs
  and http_common.rs): it POSTs ``/write?precision=n`` with ``text/plain; charset=utf-8``; it GETs
  ``/settings`` first and falls back to protocol version 1 on 404, else reads
  ``config["line.proto.support.versions"]``; it retries statuses 421, 500, 502, 503, 504, 507, 509,
  523, 524, 529 and 599 (and refused/reset connections) with backoff until ``retry_timeout``; a
  non-retried error with ``Content-Type: application/json`` is read as ``{"code", "message",
  "line", "errorId"}``. Success is ``204 No Content``.
- QuestDB REST API (``/exec?query=...``): a DDL statement answers ``{"ddl": "OK"}``; bad SQL
  answers 400 with ``{"query", "error", "position"}``.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

from aiohttp import web

_DDL = re.compile(
    r"CREATE TABLE IF NOT EXISTS '?(?P<name>[\w]+)'?\s*\((?P<cols>.*)\)\s*TIMESTAMP\((?P<ts>\w+)\)"
    r"(?P<rest>.*)$",
    re.S | re.I,
)
_DEDUP = re.compile(r"DEDUP UPSERT KEYS\s*\((?P<keys>[^)]*)\)", re.I)


class LineError(Exception):
    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


def _split_unescaped(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside backslash escapes and double-quoted strings."""
    out, cur, i, quoted = [], [], 0, False
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            cur.append(text[i : i + 2])
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        if c == sep and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    out.append("".join(cur))
    return out


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _field_value(raw: str, n: int) -> tuple[str, Any]:
    """(type, value) of one ILP field value."""
    if raw.startswith('"'):
        if len(raw) < 2 or not raw.endswith('"'):
            raise LineError(f"unterminated string field {raw!r}", n)
        return "STRING", raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if raw in ("t", "T", "true", "True", "TRUE"):
        return "BOOLEAN", True
    if raw in ("f", "F", "false", "False", "FALSE"):
        return "BOOLEAN", False
    try:
        if raw.endswith("i"):
            return "LONG", int(raw[:-1])
        if raw.endswith("t"):
            return "TIMESTAMP", int(raw[:-1]) * 1000
        if raw.endswith("n"):
            return "TIMESTAMP", int(raw[:-1])
        return "DOUBLE", float(raw)
    except ValueError:
        raise LineError(f"cannot parse field value {raw!r}", n) from None


def parse_lines(body: str) -> list[tuple[str, dict[str, str], dict[str, tuple[str, Any]], int | None]]:
    """Parse an ILP v1 text body into (table, symbols, fields, timestamp_ns) per line."""
    rows = []
    for n, line in enumerate(body.split("\n"), start=1):
        if not line.strip():
            continue
        parts = _split_unescaped(line, " ")
        if len(parts) not in (2, 3):
            raise LineError(f"malformed line (expected 2 or 3 space-separated parts, got {len(parts)})", n)
        head = _split_unescaped(parts[0], ",")
        table = _unescape(head[0])
        if not table:
            raise LineError("empty table name", n)
        symbols: dict[str, str] = {}
        for item in head[1:]:
            k, sep, v = item.partition("=")
            if not sep:
                raise LineError(f"symbol without value: {item!r}", n)
            symbols[_unescape(k)] = _unescape(v)
        fields: dict[str, tuple[str, Any]] = {}
        for item in _split_unescaped(parts[1], ","):
            k, sep, v = item.partition("=")
            if not sep or not k:
                raise LineError(f"field without value: {item!r}", n)
            fields[_unescape(k)] = _field_value(v, n)
        ts = None
        if len(parts) == 3:
            try:
                ts = int(parts[2])
            except ValueError:
                raise LineError(f"bad timestamp {parts[2]!r}", n) from None
        rows.append((table, symbols, fields, ts))
    return rows


class Table:
    def __init__(self, name: str, columns: dict[str, str], ts: str, dedup: list[str]) -> None:
        self.name = name
        self.columns = columns  # name → QuestDB type
        self.ts = ts
        self.dedup = dedup
        self.rows: dict[Any, dict[str, Any]] = {}
        self._n = itertools.count()


_COMPATIBLE = {
    "SYMBOL": {"SYMBOL"},
    "STRING": {"STRING", "VARCHAR", "SYMBOL"},
    "DOUBLE": {"DOUBLE", "FLOAT"},
    "LONG": {"LONG", "INT", "DOUBLE", "TIMESTAMP"},
    "BOOLEAN": {"BOOLEAN"},
    "TIMESTAMP": {"TIMESTAMP"},
}


class QuestDBPeer:
    """Run with ``await peer.start()``; rows land in ``peer.tables[name].rows``."""

    def __init__(self, *, settings: bool = True) -> None:
        self.settings = settings
        self.tables: dict[str, Table] = {}
        self.fail_next: list[int] = []  # statuses to answer the next /write requests with
        self.requests = 0
        self.ddl: list[str] = []
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._errors = itertools.count(1)

    async def start(self) -> None:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_post("/write", self._write)
        app.router.add_post("/api/v2/write", self._write)
        app.router.add_get("/settings", self._settings)
        app.router.add_get("/exec", self._exec)
        app.router.add_get("/ping", self._ping)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def rows(self, table: str) -> list[dict[str, Any]]:
        t = self.tables.get(table)
        return list(t.rows.values()) if t else []

    async def _ping(self, request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def _settings(self, request: web.Request) -> web.Response:
        if not self.settings:
            return web.Response(status=404)
        return web.json_response({"config": {"line.proto.support.versions": [1],
                                             "cairo.max.file.name.length": 127}})

    async def _exec(self, request: web.Request) -> web.Response:
        query = request.query.get("query", "")
        self.ddl.append(query)
        m = _DDL.match(query.strip())
        if not m:
            return web.json_response({"query": query, "error": "unexpected token", "position": 0},
                                     status=400)
        name = m.group("name")
        if name not in self.tables:
            cols = {}
            for part in m.group("cols").split(","):
                cname, ctype = part.split()[:2]
                cols[cname] = ctype.upper()
            d = _DEDUP.search(m.group("rest"))
            dedup = [k.strip() for k in d.group("keys").split(",")] if d else []
            self.tables[name] = Table(name, cols, m.group("ts"), dedup)
        return web.json_response({"ddl": "OK"})

    def _json(self, body: dict[str, Any], status: int) -> web.Response:
        # Exactly "application/json": the client reads the JSON error only with this content type.
        return web.Response(body=json.dumps(body).encode(), status=status,
                            headers={"Content-Type": "application/json"})

    def _error(self, message: str, line: int) -> web.Response:
        return self._json(
            {"code": "invalid", "message": message, "line": line, "errorId": f"peer-{next(self._errors)}"},
            400,
        )

    async def _write(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.fail_next:
            status = self.fail_next.pop(0)
            return self._json({"code": "internal error", "message": "peer told to fail",
                               "errorId": f"peer-{next(self._errors)}"}, status)
        if request.query.get("precision", "n") != "n":
            return self._error("peer only speaks precision=n", 0)
        body = (await request.read()).decode("utf-8")
        try:
            parsed = parse_lines(body)
        except LineError as exc:
            return self._error(f"error in line {exc.line}: {exc}", exc.line)
        staged: list[tuple[Table, Any, dict[str, Any]]] = []
        for n, (table, symbols, fields, ts) in enumerate(parsed, start=1):
            t = self.tables.get(table)
            if t is None:
                cols = {k: "SYMBOL" for k in symbols} | {k: v[0] for k, v in fields.items()}
                t = self.tables[table] = Table(table, cols | {"timestamp": "TIMESTAMP"}, "timestamp", [])
            row: dict[str, Any] = dict(symbols)
            for k, (typ, v) in fields.items():
                want = t.columns.get(k)
                if want is None:
                    t.columns[k] = typ
                elif want not in _COMPATIBLE[typ]:
                    return self._error(
                        f"cast error from protocol type: {typ} to column type: {want}, column: {k}", n)
                row[k] = v
            for k in symbols:
                if t.columns.get(k, "SYMBOL") not in ("SYMBOL", "STRING", "VARCHAR"):
                    return self._error(f"symbol {k} is not a symbol column", n)
            row[t.ts] = ts
            key = tuple(row.get(k) for k in t.dedup) if t.dedup else next(t._n)
            staged.append((t, key, row))
        for t, key, row in staged:  # one transaction: nothing is stored unless every line parsed
            t.rows[key] = row
        return web.Response(status=204)
