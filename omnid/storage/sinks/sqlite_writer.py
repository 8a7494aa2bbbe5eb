"""The SQLite writer process: ``python -m omnid.storage.sinks.sqlite_writer DB SYNCHRONOUS``.

SQLite work done on a thread of the daemon holds the GIL for long stretches (the ``sqlite3``
module binds every row's parameters under it), which measurably stalled the event loop for tens of
milliseconds. So the SQLite sink talks to this separate process instead, over its stdin/stdout.

Each message either way is a frame (see :mod:`omnid.storage.framing`) holding msgpack:

- request ``["ddl", [sql, ...]]``: run statements; ``["insert", sql, rows]``: one transaction of
  ``executemany``; ``["ping"]``.
- reply ``["ok", n]`` (rows changed) or ``["error", kind, message]`` with ``kind`` one of
  ``"no_table"``, ``"busy"`` (database locked: retry later) or ``"bad"`` (the data or SQL).
"""

from __future__ import annotations

import sqlite3
import sys
import zlib
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from omnid.storage.framing import HEADER, frame

_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder()


def _read(stream: BinaryIO) -> Any:
    head = stream.read(HEADER.size)
    if len(head) < HEADER.size:
        return None
    length, crc = HEADER.unpack(head)
    payload = stream.read(length)
    if len(payload) < length or zlib.crc32(payload) != crc:
        return None
    return _dec.decode(payload)


def open_db(path: Path, synchronous: str) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def handle(conn: sqlite3.Connection, msg: list[Any]) -> list[Any]:
    op = msg[0]
    try:
        if op == "ping":
            return ["ok", 0]
        if op == "ddl":
            conn.execute("BEGIN")
            for stmt in msg[1]:
                conn.execute(stmt)
            conn.execute("COMMIT")
            return ["ok", 0]
        if op == "insert":
            conn.execute("BEGIN")
            cur = conn.executemany(msg[1], msg[2])
            conn.execute("COMMIT")
            return ["ok", cur.rowcount]
        return ["error", "bad", f"unknown request {op!r}"]
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        text = str(exc)
        busy = "locked" in text or "busy" in text
        kind = "no_table" if "no such table" in text else "busy" if busy else "bad"
        return ["error", kind, text]
    except (ValueError, TypeError, OverflowError) as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        return ["error", "bad", str(exc)]


def main(argv: list[str]) -> int:
    conn = open_db(Path(argv[1]), argv[2] if len(argv) > 2 else "normal")
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        msg = _read(stdin)
        if msg is None:  # the daemon closed the pipe (or went away): finish
            conn.close()
            return 0
        stdout.write(frame(_enc.encode(handle(conn, msg))))
        stdout.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
