"""Binary wire encoding of consensus ``Message`` values (pure, no I/O).

Why hand-rolled ``struct`` rather than pickle/JSON/msgpack: this sits on the hot
path of replication (every APPEND carries up to hundreds of entries), peers must
not be able to run code by sending bytes (pickle), and a fixed little-endian
layout is both fast in CPython and easy to validate exhaustively.

Layout (all integers little-endian, version 1)::

    header   u8 version, u8 type, u8 reject, u8 flags (bit0: snapshot present),
             u32 src, u32 dst,
             u64 term, u64 index, u64 log_term, u64 commit, u64 hint, u64 context,
             u32 entry count
    entry*   u64 term, u64 index, u8 kind, u32 data length, data
    snapshot (if flag) u64 index, u64 term, u32 member count, u64 data length,
             u32 member*, data

Anything malformed (truncated, trailing bytes, unknown type or kind, absurd
counts) raises ``CodecError`` and nothing else, so a shell can close the
offending connection and carry on.
"""

from __future__ import annotations

import struct

from paddock.consensus.types import Entry, EntryKind, Message, MsgType, Snapshot

VERSION = 1

_HEADER = struct.Struct("<BBBBIIQQQQQQI")
_ENTRY = struct.Struct("<QQBI")
_SNAPSHOT = struct.Struct("<QQIQ")

HEADER_SIZE = _HEADER.size
ENTRY_OVERHEAD = _ENTRY.size

_FLAG_SNAPSHOT = 1

# Lookups by plain int are several times faster than calling the enum class.
_MSG_TYPES: dict[int, MsgType] = {int(t): t for t in MsgType}
_ENTRY_KINDS: dict[int, EntryKind] = {int(k): k for k in EntryKind}


class CodecError(ValueError):
    """The bytes are not a valid encoded message."""


def encode_message(msg: Message) -> bytes:
    """Encode ``msg``; the result decodes to an equal ``Message``."""
    entries = msg.entries
    snap = msg.snapshot
    try:
        head = _HEADER.pack(
            VERSION,
            msg.type,
            1 if msg.reject else 0,
            _FLAG_SNAPSHOT if snap is not None else 0,
            msg.src,
            msg.dst,
            msg.term,
            msg.index,
            msg.log_term,
            msg.commit,
            msg.hint,
            msg.context,
            len(entries),
        )
        if not entries and snap is None:
            return head
        parts = [head]
        if entries:
            pack = _ENTRY.pack
            append = parts.append
            for e in entries:
                data = e.data
                append(pack(e.term, e.index, e.kind, len(data)))
                append(data)
        if snap is not None:
            members = snap.members
            parts.append(_SNAPSHOT.pack(snap.index, snap.term, len(members), len(snap.data)))
            if members:
                parts.append(struct.pack(f"<{len(members)}I", *members))
            parts.append(snap.data)
    except struct.error as exc:
        raise CodecError(f"cannot encode message: {exc}") from exc
    return b"".join(parts)


def decode_message(buf: bytes | bytearray | memoryview) -> Message:
    """Decode one message occupying all of ``buf``; raise ``CodecError`` if malformed."""
    if not isinstance(buf, bytes):
        buf = bytes(buf)
    size = len(buf)
    if size < HEADER_SIZE:
        raise CodecError(f"message too short: {size} bytes, header needs {HEADER_SIZE}")
    (
        version,
        mtype,
        reject,
        flags,
        src,
        dst,
        term,
        index,
        log_term,
        commit,
        hint,
        context,
        n_entries,
    ) = _HEADER.unpack_from(buf, 0)
    if version != VERSION:
        raise CodecError(f"unsupported message version {version}")
    msg_type = _MSG_TYPES.get(mtype)
    if msg_type is None:
        raise CodecError(f"unknown message type {mtype}")
    if reject > 1 or flags & ~_FLAG_SNAPSHOT:
        raise CodecError(f"bad reject/flags byte ({reject}, {flags})")
    pos = HEADER_SIZE
    if n_entries * ENTRY_OVERHEAD > size - pos:
        raise CodecError(f"entry count {n_entries} exceeds message size {size}")
    entries: list[Entry] = []
    if n_entries:
        unpack_from = _ENTRY.unpack_from
        kinds = _ENTRY_KINDS
        overhead = ENTRY_OVERHEAD
        append = entries.append
        try:
            for _ in range(n_entries):
                e_term, e_index, e_kind, length = unpack_from(buf, pos)
                pos += overhead
                end = pos + length
                if end > size:
                    raise CodecError("entry data runs past the end of the message")
                kind = kinds.get(e_kind)
                if kind is None:
                    raise CodecError(f"unknown entry kind {e_kind}")
                append(Entry(e_term, e_index, buf[pos:end], kind))
                pos = end
        except struct.error as exc:
            raise CodecError(f"truncated entry: {exc}") from exc
    snapshot: Snapshot | None = None
    if flags & _FLAG_SNAPSHOT:
        if size - pos < _SNAPSHOT.size:
            raise CodecError("truncated snapshot header")
        s_index, s_term, n_members, data_len = _SNAPSHOT.unpack_from(buf, pos)
        pos += _SNAPSHOT.size
        if n_members * 4 + data_len > size - pos:
            raise CodecError("snapshot runs past the end of the message")
        members = struct.unpack_from(f"<{n_members}I", buf, pos) if n_members else ()
        pos += n_members * 4
        snapshot = Snapshot(s_index, s_term, tuple(members), buf[pos : pos + data_len])
        pos += data_len
    if pos != size:
        raise CodecError(f"{size - pos} trailing bytes after message")
    return Message(
        msg_type,
        src,
        dst,
        term,
        index,
        log_term,
        commit,
        bool(reject),
        hint,
        entries,
        snapshot,
        context,
    )
