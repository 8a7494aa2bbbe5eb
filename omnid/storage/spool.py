"""The spool: an append-only local file where batches wait while their sink is down or slow.

One file per sink. Each frame holds one chunk of built rows for one table (``[table, rows, unit]``
as msgpack, ``unit`` the batch unit's durable id for batch-keyed tables, else empty; frames of the
older two-field form still read), appended in the order batches arrived; :meth:`Spool.entries`
replays them in that order.
Replays go through the sinks' idempotent path, so replaying a frame twice (a crash mid-drain) is
harmless; the file is truncated once it has been drained completely.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from omnid.errors import StorageError
from omnid.storage.framing import HEADER, MAX_FRAME, frame

#: Rows per frame: keeps one encode short enough to run on the loop thread.
FRAME_ROWS = 1000

_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder(tuple[str, list[tuple[Any, ...]], str])
_dec_old = msgspec.msgpack.Decoder(tuple[str, list[tuple[Any, ...]]])


def _decode(payload: bytes) -> tuple[str, list[tuple[Any, ...]], str]:
    try:
        return _dec.decode(payload)
    except msgspec.ValidationError:  # a frame written before frames carried unit ids
        table, rows = _dec_old.decode(payload)
        return table, rows, ""


class Spool:
    """Append-only frames of ``(table, rows)``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.rows_spooled = 0

    def append(self, table: str, rows: list[tuple[Any, ...]], unit: str = "") -> None:
        """Write ``rows`` (in frames of :data:`FRAME_ROWS`) to the end of the file. A batch unit
        (``unit`` its id) is always one frame, however many rows: it must replay whole."""
        if unit:
            os.write(self._fd, frame(_enc.encode((table, rows, unit))))
            self.rows_spooled += len(rows)
            return
        for i in range(0, len(rows), FRAME_ROWS):
            chunk = rows[i : i + FRAME_ROWS]
            os.write(self._fd, frame(_enc.encode((table, chunk, ""))))
            self.rows_spooled += len(chunk)

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def frames(self) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
        """``(table, rows)`` of every stored frame in order (see :meth:`entries`)."""
        for table, rows, _ in self.entries():
            yield table, rows

    def entries(self) -> Iterator[tuple[str, list[tuple[Any, ...]], str]]:
        """``(table, rows, unit id)`` of every stored frame in order, read as a stream (the spool
        may be larger than memory).

        A torn last frame (a crash mid-append) is dropped; damage with data after it raises."""
        with self.path.open("rb") as f:
            offset = 0
            while True:
                head = f.read(HEADER.size)
                if len(head) < HEADER.size:
                    return
                length, crc = HEADER.unpack(head)
                payload = f.read(length) if length <= MAX_FRAME else b""
                if len(payload) < length:
                    return
                if zlib.crc32(payload) != crc:
                    if f.read(1) == b"":
                        return
                    raise StorageError(
                        f"spool {self.path}: CRC mismatch at byte {offset}; move the file aside to "
                        "continue (its rows are not in the store)",
                        path=str(self.path), offset=offset,
                    )
                offset += HEADER.size + length
                yield _decode(payload)

    def clear(self) -> None:
        """Drop everything (after a complete drain)."""
        os.ftruncate(self._fd, 0)

    def close(self) -> None:
        os.close(self._fd)
