"""The Raft log's on-disk record format: a pure codec plus replay, no I/O.

The real storage shell (``storage.py``) writes these bytes to segment files; the
deterministic simulator (``paddock.sim.disk``) keeps them in memory. Both recover
with the same two calls, ``decode_stream`` then ``replay``, so the simulator
exercises exactly the recovery logic that runs in production.

Record framing (all integers little-endian)::

    [u32 length][u32 crc][u8 type][payload: length bytes]

``length`` counts the payload only (the 9-byte header is not included);
``crc`` is ``zlib.crc32(type byte + payload)``. Payloads:

* ``HARD_STATE`` (1): ``u64 term, u64 vote, u64 commit``
* ``ENTRY`` (2): ``u64 term, u64 index, u8 kind`` then the entry data
* ``SNAPSHOT`` (3): ``u64 index, u64 term, u8 mode, u32 n`` then ``n`` x
  ``u64`` member ids, then the snapshot data

Torn tail versus corruption (the rule ``decode_stream`` applies): records are
decoded from offset 0 until the first *bad* one (header cut short, length
running past the end, checksum mismatch, unknown type, malformed payload).
Everything before it is valid. The bytes from the bad record to the end are a
*torn tail* (safe to cut off: they are the remains of a final write that never
completed) when either

1. they are all zero bytes (a preallocated or zero-filled region), or
2. no valid record starts anywhere after the bad record's first byte
   (every byte offset is tried: a checksummed record whose header, length and
   payload are all consistent cannot appear by accident).

Otherwise (damage followed by a valid record) the damage is in the middle of
the log, where a crash cannot put it: ``CorruptLog`` is raised rather than
silently dropping the durable records after it. Consequence, as in etcd: a
flipped bit inside the *last* record cannot be told apart from a torn write,
so that record is dropped. A writer that fsyncs before acknowledging only
loses that one record's acknowledgement if the disk rots it after the fact.
Also note a deliberate conservatism: if a crash persisted a later page of an
unsynced write but not an earlier one (a hole followed by intact records), the
log is reported corrupt instead of guessed at; ext4 in its default
``data=ordered`` mode does not produce such holes for appends.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from paddock.consensus.types import Entry, EntryKind, HardState, Snapshot

__all__ = [
    "HEADER_SIZE",
    "CorruptLog",
    "DecodeResult",
    "LogState",
    "Record",
    "RecordType",
    "Recovered",
    "SnapshotMode",
    "SnapshotRecord",
    "decode_stream",
    "encode_entries",
    "encode_hard_state",
    "encode_snapshot",
    "replay",
]


class RecordType(IntEnum):
    HARD_STATE = 1
    ENTRY = 2
    SNAPSHOT = 3


class SnapshotMode(IntEnum):
    """What a SNAPSHOT record does to the entries already in the log.

    ``AUTO`` is the plain Raft rule, decided at replay time: entries after the
    snapshot survive iff the log holds an entry at ``snapshot.index`` with
    ``snapshot.term``. ``KEEP_SUFFIX``/``DROP_ALL`` record that decision as made
    by the writer. The storage shell always writes an explicit mode because it
    replays a *compacted* stream (older segments deleted) on top of a newer
    snapshot, where the entry at ``snapshot.index`` may no longer be visible.
    """

    AUTO = 0
    KEEP_SUFFIX = 1
    DROP_ALL = 2


HEADER = struct.Struct("<IIB")
HEADER_SIZE = HEADER.size  # 9
_HARD_STATE = struct.Struct("<QQQ")
_ENTRY = struct.Struct("<QQB")
_SNAPSHOT = struct.Struct("<QQBI")
_LEN_CRC = struct.Struct("<II")
#: Type byte followed by the entry's fixed fields, the part the crc covers first.
_ENTRY_TYPED = struct.Struct("<BQQB")
_HS_TYPED = struct.Struct("<BQQQ")
_ENTRY_TYPE_BYTE = bytes([RecordType.ENTRY])
_KNOWN_TYPE_BYTE = re.compile(b"[\x01-\x03]")


@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    snapshot: Snapshot
    mode: SnapshotMode = SnapshotMode.AUTO


Record = HardState | Entry | SnapshotRecord


class CorruptLog(Exception):
    """Damage that is not a torn final write; recovery must stop, not guess.

    ``offset`` is the byte offset of the bad record in the stream (``-1`` when
    the problem is semantic, e.g. a gap in entry indexes); ``path`` names the
    file when the storage shell knows it.
    """

    def __init__(self, offset: int, reason: str, path: str | None = None) -> None:
        self.offset = offset
        self.reason = reason
        self.path = path
        where = f"{path}: " if path else ""
        at = f"offset {offset}: " if offset >= 0 else ""
        super().__init__(f"corrupt log: {where}{at}{reason}")

    def with_path(self, path: str) -> CorruptLog:
        return CorruptLog(self.offset, self.reason, path)


# -- encoding ------------------------------------------------------------------


def encode_hard_state(hs: HardState) -> bytes:
    body = _HS_TYPED.pack(RecordType.HARD_STATE, hs.term, hs.vote, hs.commit)
    return _LEN_CRC.pack(len(body) - 1, zlib.crc32(body)) + body


def encode_entries(entries: Iterable[Entry]) -> bytes:
    """All entries' records, concatenated (hot path: one pack + one crc each,
    the data is never copied except by the final join)."""
    parts: list[bytes] = []
    append = parts.append
    pack_typed = _ENTRY_TYPED.pack
    pack_len_crc = _LEN_CRC.pack
    crc32 = zlib.crc32
    fixed = _ENTRY.size
    typ = RecordType.ENTRY
    for e in entries:
        typed = pack_typed(typ, e.term, e.index, e.kind)
        data = e.data
        append(pack_len_crc(fixed + len(data), crc32(data, crc32(typed))))
        append(typed)
        append(data)
    return b"".join(parts)


def encode_snapshot(snap: Snapshot, mode: SnapshotMode = SnapshotMode.AUTO) -> bytes:
    members = struct.pack(f"<{len(snap.members)}Q", *snap.members)
    body = b"".join(
        (
            bytes([RecordType.SNAPSHOT]),
            _SNAPSHOT.pack(snap.index, snap.term, mode, len(snap.members)),
            members,
            snap.data,
        )
    )
    return _LEN_CRC.pack(len(body) - 1, zlib.crc32(body)) + body


# -- decoding ------------------------------------------------------------------


@dataclass(slots=True)
class DecodeResult:
    records: list[Record] = field(default_factory=list)
    #: Bytes of whole valid records from the start of the stream.
    valid_length: int = 0
    #: True when bytes after ``valid_length`` are a torn final write.
    torn: bool = False
    #: Why the record at ``valid_length`` was rejected (empty when not torn).
    tail_reason: str = ""


class _Bad(Exception):
    """A record that fails to decode at a given offset (internal)."""


def _decode_payload(typ: int, payload: memoryview) -> Record:
    n = len(payload)
    if typ == RecordType.ENTRY:
        if n < _ENTRY.size:
            raise _Bad(f"entry payload of {n} bytes is shorter than {_ENTRY.size}")
        term, index, kind = _ENTRY.unpack_from(payload)
        try:
            ekind = EntryKind(kind)
        except ValueError:
            raise _Bad(f"unknown entry kind {kind}") from None
        return Entry(term, index, payload[_ENTRY.size :].tobytes(), ekind)
    if typ == RecordType.HARD_STATE:
        if n != _HARD_STATE.size:
            raise _Bad(f"hard state payload of {n} bytes, expected {_HARD_STATE.size}")
        return HardState(*_HARD_STATE.unpack_from(payload))
    if typ == RecordType.SNAPSHOT:
        if n < _SNAPSHOT.size:
            raise _Bad(f"snapshot payload of {n} bytes is shorter than {_SNAPSHOT.size}")
        index, term, mode, count = _SNAPSHOT.unpack_from(payload)
        end = _SNAPSHOT.size + 8 * count
        if end > n:
            raise _Bad(f"snapshot lists {count} members but the payload has {n} bytes")
        try:
            smode = SnapshotMode(mode)
        except ValueError:
            raise _Bad(f"unknown snapshot mode {mode}") from None
        members = struct.unpack_from(f"<{count}Q", payload, _SNAPSHOT.size)
        snap = Snapshot(index, term, tuple(members), payload[end:].tobytes())
        return SnapshotRecord(snap, smode)
    raise _Bad(f"unknown record type {typ}")


def _decode_at(mv: memoryview, off: int) -> tuple[Record, int]:
    """Decode the record at ``off``; return it and the offset after it."""
    left = len(mv) - off
    if left < HEADER_SIZE:
        raise _Bad(f"record header cut short ({left} of {HEADER_SIZE} bytes)")
    length, crc, typ = HEADER.unpack_from(mv, off)
    end = off + HEADER_SIZE + length
    if end > len(mv):
        raise _Bad(f"record length {length} runs past the end ({left - HEADER_SIZE} bytes left)")
    if zlib.crc32(mv[off + 8 : end]) != crc:
        raise _Bad("checksum mismatch")
    return _decode_payload(typ, mv[off + HEADER_SIZE : end]), end


def _valid_record_after(mv: memoryview, bad: int) -> int:
    """Offset of the first valid record starting after ``bad``, or -1."""
    tail = mv[bad + 1 :].tobytes()
    size = len(mv)
    for m in _KNOWN_TYPE_BYTE.finditer(tail, 8):
        q = bad + 1 + m.start() - 8
        if q + HEADER_SIZE > size:
            break
        (length,) = struct.unpack_from("<I", mv, q)
        if q + HEADER_SIZE + length > size:
            continue
        try:
            _decode_at(mv, q)
        except _Bad:
            continue
        return q
    return -1


def decode_stream(buf: bytes | bytearray | memoryview) -> DecodeResult:
    """Decode every whole record; classify what follows (see module docstring).

    Raises ``CorruptLog`` when a bad record is followed by a valid one.
    """
    mv = memoryview(buf).cast("B") if not isinstance(buf, bytes) else memoryview(buf)
    size = len(mv)
    records: list[Record] = []
    append = records.append
    off = 0
    unpack_header = HEADER.unpack_from
    crc32 = zlib.crc32
    entry_size = _ENTRY.size
    unpack_entry = _ENTRY.unpack_from
    entry_type = RecordType.ENTRY
    normal = EntryKind.NORMAL
    while off < size:
        # Fast path for well-formed ENTRY records; anything unusual goes to _decode_at.
        if off + HEADER_SIZE <= size:
            length, crc, typ = unpack_header(mv, off)
            end = off + HEADER_SIZE + length
            if (
                typ == entry_type
                and end <= size
                and length >= entry_size
                and crc32(mv[off + 8 : end]) == crc
            ):
                term, index, kind = unpack_entry(mv, off + HEADER_SIZE)
                if kind == normal or kind == EntryKind.NOOP:
                    data = mv[off + HEADER_SIZE + entry_size : end].tobytes()
                    append(Entry(term, index, data, normal if kind == normal else EntryKind.NOOP))
                    off = end
                    continue
        try:
            rec, end = _decode_at(mv, off)
        except _Bad as bad:
            reason = str(bad)
            if mv[off:] == bytes(size - off):
                return DecodeResult(records, off, True, f"{reason} (zero-filled tail)")
            follower = _valid_record_after(mv, off)
            if follower >= 0:
                raise CorruptLog(
                    off,
                    f"{reason}, but a valid record follows at offset {follower} "
                    f"({size - off} bytes after the last good record)",
                ) from None
            return DecodeResult(records, off, True, reason)
        append(rec)
        off = end
    return DecodeResult(records, off, False, "")


# -- replay ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recovered:
    hard_state: HardState
    snapshot: Snapshot | None
    #: Entries after the snapshot (or from index 1), contiguous.
    entries: list[Entry]


class LogState:
    """The log as Raft storage sees it, rebuilt record by record.

    Semantics (the same ones the storage shell promises its caller):

    * ``HardState``: the last one wins.
    * ``Entry`` at index ``i``: replaces every stored entry from ``i`` onward
      (a follower truncating a conflicting suffix writes from the conflict
      index). An entry at or below the snapshot index is covered by the
      snapshot, so it is not stored, but it still truncates everything after
      the snapshot: that is exactly what replaying the full, uncompacted
      history would leave above the snapshot. An entry past ``last + 1`` is a
      gap and raises ``CorruptLog``.
    * ``SnapshotRecord`` newer than the current snapshot: becomes the snapshot;
      entries after its index survive iff its mode says so (``AUTO``: iff the
      log holds its index with its term), entries at or below it are dropped.
      An older one never rolls the snapshot back; with ``DROP_ALL`` it still
      drops the entries after the current snapshot (they were written before
      it in the full history and it discarded them).
    """

    __slots__ = ("entries", "hard_state", "snapshot")

    def __init__(
        self,
        hard_state: HardState | None = None,
        snapshot: Snapshot | None = None,
        entries: Sequence[Entry] = (),
    ) -> None:
        self.hard_state = hard_state if hard_state is not None else HardState()
        self.snapshot = snapshot
        self.entries: list[Entry] = []
        for e in entries:
            self.apply(e)

    @property
    def base(self) -> int:
        """Index the entries list follows (snapshot index, or 0)."""
        return self.snapshot.index if self.snapshot is not None else 0

    @property
    def last_index(self) -> int:
        return self.base + len(self.entries)

    def apply(self, rec: Record) -> None:
        if isinstance(rec, Entry):
            self.apply_entry(rec)
        elif isinstance(rec, HardState):
            self.hard_state = rec
        else:
            self.apply_snapshot(rec.snapshot, rec.mode)

    def apply_entry(self, e: Entry) -> None:
        base = self.snapshot.index if self.snapshot is not None else 0
        pos = e.index - base - 1
        entries = self.entries
        if pos == len(entries):
            entries.append(e)
        elif pos < 0:
            entries.clear()
        elif pos < len(entries):
            del entries[pos:]
            entries.append(e)
        else:
            raise CorruptLog(
                -1,
                f"entry {e.index} (term {e.term}) leaves a gap after last index "
                f"{base + len(entries)}",
            )

    def apply_snapshot(self, snap: Snapshot, mode: SnapshotMode = SnapshotMode.AUTO) -> None:
        base = self.base
        if snap.index <= base:
            if mode == SnapshotMode.DROP_ALL:
                self.entries.clear()
            return
        pos = snap.index - base - 1
        if mode == SnapshotMode.AUTO:
            keep = pos < len(self.entries) and self.entries[pos].term == snap.term
        else:
            keep = mode == SnapshotMode.KEEP_SUFFIX
        self.entries = self.entries[pos + 1 :] if keep else []
        self.snapshot = snap

    def result(self) -> Recovered:
        return Recovered(self.hard_state, self.snapshot, list(self.entries))


def replay(records: Iterable[Record], initial: LogState | None = None) -> Recovered:
    """Apply ``records`` in order on top of ``initial`` (an empty log by default).

    ``initial`` is modified in place when given.
    """
    state = initial if initial is not None else LogState()
    apply_entry = state.apply_entry
    for rec in records:
        if type(rec) is Entry:
            apply_entry(rec)
        else:
            state.apply(rec)
    return state.result()
