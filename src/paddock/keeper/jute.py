"""Jute binary encoding primitives: the bytes ZooKeeper clients and servers exchange.

Jute (``org.apache.jute.BinaryOutputArchive``) writes big-endian fixed-width
integers, a one-byte boolean, and length-prefixed byte buffers / UTF-8 strings
/ vectors where a length of -1 means null.

Every read here is bounds-checked against an explicit ``end`` offset, so a
declared length can never make us read past the frame we were handed or
allocate more than that frame holds; any violation raises
:class:`ProtocolError`, the single exception type the codec lets escape for
bad input.  Readers work on ``bytes`` with offsets rather than on slices so
the hot path copies only the fields it returns.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = [
    "BOOL",
    "INT",
    "INT_INT",
    "LONG",
    "NULL_BUFFER",
    "JuteReader",
    "ProtocolError",
    "pack_bool",
    "pack_buffer",
    "pack_int",
    "pack_long",
    "pack_ustring",
    "pack_ustring_vector",
]

T = TypeVar("T")

INT = struct.Struct(">i")
LONG = struct.Struct(">q")
BOOL = struct.Struct(">?")
INT_INT = struct.Struct(">ii")

_unpack_int = INT.unpack_from
_unpack_long = LONG.unpack_from
_pack_int = INT.pack
_NULL = _pack_int(-1)
_TRUE = b"\x01"
_FALSE = b"\x00"


class _NullBuffer(bytes):
    """Type of :data:`NULL_BUFFER`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NULL_BUFFER"


NULL_BUFFER: bytes = _NullBuffer()
"""An empty ``bytes`` that remembers it arrived as a null buffer (length -1).

Request payloads (create/setData data, passwords, tokens) decode a null
buffer as this object rather than None, so servers handle plain ``bytes``;
it equals ``b""`` but every encoder here writes it back as null.  A data
tree that keeps the object it was given therefore answers getData with a
null buffer exactly as ZooKeeper does for a node created with null data (the
Java CLI's ``create /path`` without data).  Copies and persisted forms
become an ordinary ``b""``.
"""


class ProtocolError(Exception):
    """Input that is not valid ZooKeeper wire protocol.

    ``reason`` says what was wrong.  When the request header could be read
    before the body turned out malformed, ``xid`` and ``opcode`` are set and
    ``fatal`` is False: the frame was consumed, framing is intact, and a server
    may answer ``MarshallingError`` (as Java ZooKeeper does) or simply close.
    A ``fatal`` error (bad length prefix, bad handshake) leaves the byte
    stream unusable; the connection must be closed.
    """

    def __init__(
        self,
        reason: str,
        *,
        xid: int | None = None,
        opcode: int | None = None,
        fatal: bool = True,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.xid = xid
        self.opcode = opcode
        self.fatal = fatal

    def __repr__(self) -> str:
        return (
            f"ProtocolError({self.reason!r}, xid={self.xid!r}, "
            f"opcode={self.opcode!r}, fatal={self.fatal!r})"
        )


def _truncated(what: str) -> ProtocolError:
    return ProtocolError(f"truncated record: not enough bytes for {what}")


class JuteReader:
    """Sequential reader over ``buf[pos:end]`` with bounds checks on every field.

    Attributes are public so hot-path record decoders can read ``buf``/``pos``
    directly with precompiled structs instead of paying a method call per field.
    """

    __slots__ = ("buf", "end", "pos")

    def __init__(self, buf: bytes, pos: int = 0, end: int | None = None) -> None:
        self.buf = buf
        self.pos = pos
        self.end = len(buf) if end is None else end

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def read_int(self) -> int:
        p = self.pos
        if p + 4 > self.end:
            raise _truncated("int")
        self.pos = p + 4
        return int(_unpack_int(self.buf, p)[0])

    def read_long(self) -> int:
        p = self.pos
        if p + 8 > self.end:
            raise _truncated("long")
        self.pos = p + 8
        return int(_unpack_long(self.buf, p)[0])

    def read_bool(self) -> bool:
        """Any non-zero byte is true (``DataInput.readBoolean``)."""
        p = self.pos
        if p >= self.end:
            raise _truncated("boolean")
        self.pos = p + 1
        return self.buf[p] != 0

    def _read_length(self, what: str) -> int:
        p = self.pos
        if p + 4 > self.end:
            raise _truncated(f"{what} length")
        n = int(_unpack_int(self.buf, p)[0])
        p += 4
        self.pos = p
        if n < -1:
            raise ProtocolError(f"negative {what} length {n}")
        if n > self.end - p:
            raise ProtocolError(f"{what} length {n} exceeds the {self.end - p} bytes left")
        return n

    def read_buffer(self) -> bytes | None:
        n = self._read_length("buffer")
        if n < 0:
            return None
        p = self.pos
        self.pos = p + n
        return self.buf[p : p + n]

    def read_data(self) -> bytes:
        """A buffer where null is read as :data:`NULL_BUFFER` (request payloads)."""
        n = self._read_length("buffer")
        if n <= 0:
            return NULL_BUFFER if n < 0 else b""
        p = self.pos
        self.pos = p + n
        return self.buf[p : p + n]

    def read_ustring(self) -> str | None:
        """UTF-8 string; undecodable bytes become U+FFFD, as Java's ``new String`` does."""
        n = self._read_length("ustring")
        if n < 0:
            return None
        p = self.pos
        self.pos = p + n
        return self.buf[p : p + n].decode("utf-8", "replace")

    def read_path(self) -> str:
        """A ustring where null is read as "" (which path validation then rejects)."""
        n = self._read_length("ustring")
        if n <= 0:
            return ""
        p = self.pos
        self.pos = p + n
        return self.buf[p : p + n].decode("utf-8", "replace")

    def read_count(self, min_item_size: int) -> int:
        """A vector's element count; -1 (null) is returned as -1.

        Refuses a count that could not fit in the bytes left, so a forged count
        costs nothing before it is rejected.
        """
        p = self.pos
        if p + 4 > self.end:
            raise _truncated("vector count")
        n = int(_unpack_int(self.buf, p)[0])
        p += 4
        self.pos = p
        if n < -1:
            raise ProtocolError(f"negative vector count {n}")
        if n > 0 and n * min_item_size > self.end - p:
            raise ProtocolError(f"vector count {n} cannot fit in the {self.end - p} bytes left")
        return n

    def read_ustring_vector(self) -> list[str]:
        """A vector<ustring>; a null vector is read as [] and null items as ""."""
        n = self.read_count(4)
        out: list[str] = []
        append = out.append
        buf = self.buf
        end = self.end
        p = self.pos
        for _ in range(n):
            if p + 4 > end:
                self.pos = p
                raise _truncated("ustring length")
            m = int(_unpack_int(buf, p)[0])
            p += 4
            if m <= 0:
                if m < -1:
                    raise ProtocolError(f"negative ustring length {m}")
                append("")
                continue
            if m > end - p:
                raise ProtocolError(f"ustring length {m} exceeds the {end - p} bytes left")
            append(buf[p : p + m].decode("utf-8", "replace"))
            p += m
        self.pos = p
        return out

    def read_vector(self, read_item: Callable[[JuteReader], T], min_item_size: int) -> list[T]:
        """A vector of records; a null vector is read as []."""
        n = self.read_count(min_item_size)
        return [read_item(self) for _ in range(n)]


def pack_int(value: int) -> bytes:
    return _pack_int(value)


def pack_long(value: int) -> bytes:
    return LONG.pack(value)


def pack_bool(value: bool) -> bytes:
    return _TRUE if value else _FALSE


def pack_buffer(value: bytes | None) -> bytes:
    if value is None or value is NULL_BUFFER:
        return _NULL
    return _pack_int(len(value)) + bytes(value)


def pack_ustring(value: str | None) -> bytes:
    """UTF-8 with a length prefix; lone surrogates become '?' like Java's encoder."""
    if value is None:
        return _NULL
    raw = value.encode("utf-8", "replace")
    return _pack_int(len(raw)) + raw


def pack_ustring_vector(values: Sequence[str] | None) -> bytes:
    if values is None:
        return _NULL
    parts = [_pack_int(len(values))]
    for v in values:
        raw = v.encode("utf-8", "replace")
        parts.append(_pack_int(len(raw)))
        parts.append(raw)
    return b"".join(parts)
