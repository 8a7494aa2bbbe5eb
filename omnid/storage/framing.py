"""Length + CRC framing for append-only files (the journal and the spool).

A frame is ``<u32 length><u32 crc32(payload)><payload>``, little-endian. Reading stops at the first
frame that is short or fails its CRC: if it is the file's last frame, it is a torn write (the
process died mid-append) and the file is truncated back to the last good frame; if good data
follows, the file is corrupt and a human must look.
"""

from __future__ import annotations

import struct
import zlib

HEADER = struct.Struct("<II")
MAX_FRAME = 64 * 1024 * 1024


def frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


class Scan:
    """What reading a framed file found."""

    __slots__ = ("bad_offset", "good_end", "payloads", "problem", "torn")

    def __init__(self) -> None:
        self.payloads: list[bytes] = []
        self.good_end = 0
        self.torn = False
        self.problem = ""
        self.bad_offset = -1


def scan(data: bytes | memoryview) -> Scan:
    """Split ``data`` into payloads; say whether it ends torn or holds corruption in the middle."""
    out = Scan()
    view = memoryview(data)
    n = len(view)
    pos = 0
    while pos < n:
        if n - pos < HEADER.size:
            out.torn, out.problem, out.bad_offset = True, "short header at end", pos
            break
        length, crc = HEADER.unpack_from(view, pos)
        end = pos + HEADER.size + length
        if length > MAX_FRAME:
            out.problem, out.bad_offset = f"frame length {length} is not plausible", pos
            out.torn = end >= n
            break
        if end > n:
            out.torn, out.problem, out.bad_offset = True, "frame runs past end of file", pos
            break
        payload = bytes(view[pos + HEADER.size : end])
        if zlib.crc32(payload) != crc:
            out.problem, out.bad_offset = "CRC mismatch", pos
            out.torn = end == n
            break
        out.payloads.append(payload)
        pos = end
    out.good_end = pos if out.bad_offset < 0 else out.bad_offset
    return out
