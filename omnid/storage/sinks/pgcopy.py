"""PostgreSQL binary ``COPY`` data, encoded here in pieces we size ourselves.

asyncpg's ``copy_records_to_table`` encodes rows into a 512 KB buffer and sends it in one go: on
the event loop that is a ~1 ms burst we cannot cut. So the PostgreSQL sink encodes the binary
format itself (PostgreSQL docs, ``COPY``, "Binary Format") and hands asyncpg ready bytes a slice
at a time through ``copy_to_table(source=<async iterable>)``.

The stream is: the 11-byte signature, an int32 flags word (0), an int32 header-extension length
(0); then per row an int16 field count and per field an int32 byte length (-1 for NULL) followed
by the value (big-endian ``float8``/``int8``, UTF-8 text, ``jsonb`` as version byte 1 + text);
then the int16 trailer -1.

Each table's column kinds get one encoder function, generated once, that packs a whole row with
one ``struct.Struct`` (its format depends only on the text lengths, so the structs are cached):
~0.4 µs a trade row, a row built with ``astuple`` included ~0.5 µs. A chunk that the fast function
refuses (a NULL, a value of the wrong type, text with a NUL byte, an int outside int64) is redone
row by row: NULLs are written as NULL where the column allows them, and a row that still cannot be
encoded is logged and left out, so one bad row never costs the others.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Sequence
from typing import Any

from omnid.storage.catalog import ColumnKind, Row, TableSpec

log = logging.getLogger("omnid.storage")

#: What starts every binary COPY stream: signature, flags, header-extension length.
HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
#: What ends it: a field count of -1.
TRAILER = struct.pack(">h", -1)

_NULL = struct.pack(">i", -1)
_LEN = struct.Struct(">i")
_F8 = struct.Struct(">id")
_I8 = struct.Struct(">iq")
_FIXED = {"real": "d", "int": "q"}
_VAR = ("text", "json")
#: Distinct text-length combinations kept (each one a compiled struct) before the cache restarts.
_CACHE_MAX = 4096


class BadValue(ValueError):
    """A value that cannot be stored in its column."""


def _text(v: Any) -> bytes:
    e = str.encode(v)  # str (or a str enum) only, as asyncpg's text codec
    if 0 in e:
        raise BadValue("text with a NUL byte (PostgreSQL text cannot hold one)")
    return e


def _field(kind: ColumnKind, v: Any, nullable: bool) -> bytes:
    """One field, length included: the careful path's encoder."""
    if v is None:
        if not nullable:
            raise BadValue("NULL in a key column")
        return _NULL
    if kind == "real":
        return _F8.pack(8, v)
    if kind == "int":
        return _I8.pack(8, v)
    e = _text(v)
    if kind == "json":
        e = b"\x01" + e
    return _LEN.pack(len(e)) + e


class CopyEncoder:
    """Encodes rows of one table's shape into binary COPY data."""

    def __init__(self, spec: TableSpec) -> None:
        self.spec = spec
        self.kinds: tuple[ColumnKind, ...] = tuple(c.kind for c in spec.columns)
        self.nullable = tuple(c.name not in spec.key for c in spec.columns)
        self._count = struct.pack(">h", len(self.kinds))
        self._structs: dict[tuple[int, ...], struct.Struct] = {}
        self._fast = self._compile()
        #: Rows left out because they could not be encoded.
        self.rejected = 0

    def _struct(self, lens: tuple[int, ...]) -> struct.Struct:
        """The struct for one combination of text lengths (in the order of the text columns)."""
        if len(self._structs) >= _CACHE_MAX:
            self._structs.clear()
        fmt = [">h"]
        it = iter(lens)
        for kind in self.kinds:
            fmt.append(f"i{next(it)}s" if kind in _VAR else "i" + _FIXED[kind])
        st = self._structs[lens] = struct.Struct("".join(fmt))
        return st

    def _compile(self) -> Callable[[Sequence[Row], list[bytes]], None]:
        """Generate ``encode(rows, out)`` for this column layout: one unpacking loop and one
        ``pack`` call per row, which a generic loop over the fields cannot match. The source is
        built from the column kinds alone (no names), so nothing from outside reaches it."""
        n = len(self.kinds)
        var = [i for i, k in enumerate(self.kinds) if k in _VAR]
        names = ", ".join(f"v{i}" for i in range(n)) + ("," if n == 1 else "")
        src = ["def encode(rows, out):",
               "    app = out.append",
               "    get = structs.get",
               f"    for {names} in rows:"]
        for i in var:
            pre = "J + " if self.kinds[i] == "json" else ""
            src.append(f"        e{i} = {pre}enc(v{i})")
            src.append(f"        if 0 in e{i}:")  # memchr: `b"\0" in` is 10x slower
            src.append("            raise BadValue('NUL byte')")
        src.append("        k = (" + "".join(f"len(e{i}), " for i in var) + ")")
        src.append("        st = get(k)")
        src.append("        if st is None:")
        src.append("            st = make(k)")
        args = [str(n)]
        j = 0
        for i in range(n):
            if i in var:
                args.append(f"k[{j}], e{i}")
                j += 1
            else:
                args.append(f"8, v{i}")
        src.append(f"        app(st.pack({', '.join(args)}))")
        ns: dict[str, Any] = {"structs": self._structs, "make": self._struct, "enc": str.encode,
                              "J": b"\x01", "BadValue": BadValue}
        exec("\n".join(src), ns)  # generated from column kinds only, see above
        fn: Callable[[Sequence[Row], list[bytes]], None] = ns["encode"]
        return fn

    def encode(self, rows: Sequence[Row], out: list[bytes]) -> None:
        """Append the COPY data of ``rows`` to ``out``, leaving out (and logging) any row that
        cannot be encoded."""
        mark = len(out)
        try:
            self._fast(rows, out)
        except Exception:  # any refusal: redo this chunk row by row
            del out[mark:]
            self._careful(rows, out)

    def _careful(self, rows: Sequence[Row], out: list[bytes]) -> None:
        for row in rows:
            try:
                self._fast((row,), out)
                continue
            except Exception:  # a NULL or a bad value: the per-field path decides
                pass
            try:
                if len(row) != len(self.kinds):
                    raise BadValue(f"{len(row)} values for {len(self.kinds)} columns")
                out.append(self._count + b"".join(
                    _field(k, v, nul) for k, v, nul in zip(self.kinds, row, self.nullable, strict=True)))
            except Exception as exc:  # leave this row out, keep the others
                self.rejected += 1
                log.error("cannot store a row in %s: %r", self.spec.full_name, exc)
