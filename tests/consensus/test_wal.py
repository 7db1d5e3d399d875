"""The pure WAL codec and replay: framing, torn-vs-corrupt rule, log semantics."""

from __future__ import annotations

import random
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paddock.consensus import wal
from paddock.consensus.types import Entry, EntryKind, HardState, Snapshot
from paddock.consensus.wal import (
    CorruptLog,
    LogState,
    SnapshotMode,
    SnapshotRecord,
    decode_stream,
    encode_entries,
    encode_hard_state,
    encode_snapshot,
    replay,
)


def sample_stream() -> tuple[bytes, list[int], list[wal.Record]]:
    """A stream of every record kind, with each record's start offset."""
    recs: list[wal.Record] = [
        HardState(1, 2, 0),
        Entry(1, 1, b"alpha"),
        Entry(1, 2, b"", EntryKind.NOOP),
        SnapshotRecord(Snapshot(2, 1, (1, 2, 3), b"snapshot-data"), SnapshotMode.KEEP_SUFFIX),
        Entry(2, 3, bytes(range(256))),
        HardState(2, 0, 3),
    ]
    parts, offsets, off = [], [], 0
    for r in recs:
        if isinstance(r, Entry):
            b = encode_entries([r])
        elif isinstance(r, HardState):
            b = encode_hard_state(r)
        else:
            b = encode_snapshot(r.snapshot, r.mode)
        offsets.append(off)
        off += len(b)
        parts.append(b)
    return b"".join(parts), offsets, recs


def test_round_trip_every_record_kind() -> None:
    buf, _, recs = sample_stream()
    result = decode_stream(buf)
    assert result.records == recs
    assert result.valid_length == len(buf)
    assert not result.torn


def test_framing_is_little_endian_length_crc_type_payload() -> None:
    rec = encode_hard_state(HardState(7, 3, 5))
    length, crc, typ = struct.unpack_from("<IIB", rec)
    assert typ == wal.RecordType.HARD_STATE
    assert length == 24 == len(rec) - wal.HEADER_SIZE
    assert crc == zlib.crc32(rec[8:])
    assert struct.unpack_from("<QQQ", rec, 9) == (7, 3, 5)


def test_encode_entries_concatenates_single_records() -> None:
    es = [Entry(3, i, bytes([i]) * i, EntryKind(i % 2)) for i in range(1, 50)]
    assert encode_entries(es) == b"".join(encode_entries([e]) for e in es)
    assert decode_stream(encode_entries(es)).records == es


def test_decode_accepts_memoryview_and_bytearray() -> None:
    buf, _, recs = sample_stream()
    assert decode_stream(memoryview(buf)).records == recs
    assert decode_stream(bytearray(buf)).records == recs
    assert decode_stream(b"") == wal.DecodeResult([], 0, False, "")


def test_every_prefix_is_a_torn_tail_never_an_error() -> None:
    buf, offsets, recs = sample_stream()
    bounds = [*offsets, len(buf)]
    for cut in range(len(buf) + 1):
        result = decode_stream(buf[:cut])
        whole = max(i for i, b in enumerate(bounds) if b <= cut)
        assert result.valid_length == bounds[whole]
        assert result.records == recs[:whole]
        assert result.torn == (cut != bounds[whole])


def test_zero_filled_tail_is_torn() -> None:
    buf, _, recs = sample_stream()
    result = decode_stream(buf + bytes(4096))
    assert result.torn and result.valid_length == len(buf) and result.records == recs
    assert "zero-filled" in result.tail_reason


def test_garbage_tail_is_torn() -> None:
    buf, _, recs = sample_stream()
    rng = random.Random(1)
    for n in (1, 8, 9, 100, 5000):
        garbage = bytes(rng.getrandbits(8) for _ in range(n))
        result = decode_stream(buf + garbage)
        assert result.torn and result.records == recs


def test_every_bit_flip_is_corruption_or_a_torn_last_record() -> None:
    """Exhaustive: no flipped bit anywhere is ever accepted as data. Damage
    before the last record raises CorruptLog naming its offset; damage in the
    last record makes it a torn tail (indistinguishable from a torn write)."""
    buf, offsets, recs = sample_stream()
    last = offsets[-1]
    for pos in range(len(buf)):
        for bit in range(8):
            bad = bytearray(buf)
            bad[pos] ^= 1 << bit
            owner = max(o for o in offsets if o <= pos)
            if pos >= last:
                result = decode_stream(bad)
                assert result.torn and result.valid_length == last
                assert result.records == recs[:-1]
            else:
                with pytest.raises(CorruptLog) as info:
                    decode_stream(bad)
                assert info.value.offset == owner
                assert "valid record follows" in str(info.value)


def test_corrupt_log_message_names_offset_and_path() -> None:
    exc = CorruptLog(123, "checksum mismatch").with_path("/x/seg.wal")
    assert str(exc) == "corrupt log: /x/seg.wal: offset 123: checksum mismatch"
    assert exc.offset == 123 and exc.path == "/x/seg.wal"


def test_length_pointing_past_eof_with_valid_records_after_is_corruption() -> None:
    a = encode_entries([Entry(1, 1, b"a" * 20)])
    b = encode_entries([Entry(1, 2, b"b")])
    bad = bytearray(a + b)
    struct.pack_into("<I", bad, 0, 10_000)
    with pytest.raises(CorruptLog, match="runs past the end"):
        decode_stream(bad)
    # the same header damage with nothing valid after it: a torn write
    assert decode_stream(bytes(bad[: len(a)])).torn


def test_unknown_type_and_bad_payload_are_reported() -> None:
    def frame(typ: int, payload: bytes) -> bytes:
        body = bytes([typ]) + payload
        return struct.pack("<II", len(payload), zlib.crc32(body)) + body

    good = encode_hard_state(HardState(1, 0, 0))
    for rec, why in (
        (frame(9, b"xx"), "unknown record type 9"),
        (frame(1, b"short"), "hard state payload"),
        (frame(2, b"\0" * 16 + b"\x07"), "unknown entry kind 7"),
        (frame(3, struct.pack("<QQBI", 1, 1, 0, 5)), "lists 5 members"),
        (frame(3, struct.pack("<QQBI", 1, 1, 9, 0)), "unknown snapshot mode 9"),
    ):
        with pytest.raises(CorruptLog, match=why):
            decode_stream(rec + good)
        assert decode_stream(good + rec).torn


# -- replay semantics -------------------------------------------------------------


def E(term: int, index: int) -> Entry:
    return Entry(term, index, f"{term}/{index}".encode())


def test_replay_overwrites_suffix_and_last_hard_state_wins() -> None:
    recs: list[wal.Record] = [
        HardState(1, 1, 0),
        *[E(1, i) for i in range(1, 6)],
        HardState(2, 0, 2),
        E(2, 3),
        E(2, 4),
    ]
    out = replay(recs)
    assert out.hard_state == HardState(2, 0, 2)
    assert out.snapshot is None
    assert out.entries == [E(1, 1), E(1, 2), E(2, 3), E(2, 4)]


def test_replay_gap_is_corrupt() -> None:
    with pytest.raises(CorruptLog, match="gap"):
        replay([E(1, 1), E(1, 3)])
    with pytest.raises(CorruptLog, match="gap"):
        replay([E(1, 2)])


def test_snapshot_auto_keeps_matching_suffix_else_drops_all() -> None:
    log = [E(1, i) for i in range(1, 8)]
    keep = replay([*log, SnapshotRecord(Snapshot(4, 1))])
    assert keep.snapshot == Snapshot(4, 1) and keep.entries == log[4:]
    drop = replay([*log, SnapshotRecord(Snapshot(4, 2))])
    assert drop.snapshot == Snapshot(4, 2) and drop.entries == []
    beyond = replay([*log, SnapshotRecord(Snapshot(20, 3))])
    assert beyond.snapshot == Snapshot(20, 3) and beyond.entries == []
    after = replay([*log, SnapshotRecord(Snapshot(20, 3)), E(3, 21)])
    assert after.entries == [E(3, 21)]


def test_snapshot_explicit_modes() -> None:
    log = [E(1, i) for i in range(1, 8)]
    kept = replay([*log, SnapshotRecord(Snapshot(4, 9), SnapshotMode.KEEP_SUFFIX)])
    assert kept.entries == log[4:]
    dropped = replay([*log, SnapshotRecord(Snapshot(4, 1), SnapshotMode.DROP_ALL)])
    assert dropped.entries == []


def test_older_snapshot_never_rolls_back() -> None:
    state = LogState(snapshot=Snapshot(10, 2))
    out = replay([E(2, 11), E(2, 12), SnapshotRecord(Snapshot(5, 1))], state)
    assert out.snapshot == Snapshot(10, 2) and [e.index for e in out.entries] == [11, 12]
    state = LogState(snapshot=Snapshot(10, 2))
    out = replay([E(2, 11), SnapshotRecord(Snapshot(5, 1), SnapshotMode.DROP_ALL)], state)
    assert out.snapshot == Snapshot(10, 2) and out.entries == []


def test_entry_below_snapshot_truncates_everything_after_it() -> None:
    state = LogState(snapshot=Snapshot(10, 2))
    out = replay([E(2, 11), E(2, 12), E(3, 9)], state)
    assert out.entries == []
    out = replay([E(3, 11)], state)
    assert out.entries == [E(3, 11)]


# -- property: a compacted stream replayed on a later snapshot equals the full history


@st.composite
def raft_histories(draw: st.DrawFn) -> tuple[list[wal.Record], list[tuple[int, int, int]]]:
    """Records a Raft node could persist, plus (position, commit, term-at-commit)
    checkpoints where an application snapshot could be taken.

    Respects Raft's storage invariants: entries at or below the commit index are
    never rewritten, an installed snapshot is above the commit index, terms only
    grow. Snapshot modes are decided as the storage shell decides them.
    """
    rnd = random.Random(draw(st.integers(0, 2**32)))
    steps = draw(st.integers(1, 60))
    log: dict[int, int] = {}  # index -> term (full, uncompacted view)
    snap_index = snap_term = 0
    commit = 0
    term = 1
    recs: list[wal.Record] = []
    points: list[tuple[int, int, int]] = []
    last = 0
    for _ in range(steps):
        op = rnd.random()
        if op < 0.55:
            lo = max(commit, snap_index) + 1
            start = rnd.randint(lo, last + 1) if last + 1 >= lo else last + 1
            if rnd.random() < 0.3:
                term += 1
            n = rnd.choice((1, 1, 2, 3, 6))
            for i in range(start, start + n):
                recs.append(Entry(term, i, f"{term}:{i}".encode()))
            for i in [i for i in log if i >= start]:
                del log[i]
            for i in range(start, start + n):
                log[i] = term
            last = start + n - 1
        elif op < 0.75:
            commit = (
                max(commit, last) if rnd.random() < 0.4 else rnd.randint(commit, max(commit, last))
            )
            recs.append(HardState(term, 0, commit))
        elif op < 0.85:
            term += 1
            t = rnd.randint(max(commit, snap_index) + 1, last + 3)
            st_term = log.get(t, term) if rnd.random() < 0.5 else term
            keep = log.get(t) == st_term
            mode = SnapshotMode.KEEP_SUFFIX if keep else SnapshotMode.DROP_ALL
            recs.append(SnapshotRecord(Snapshot(t, st_term, (1,), b"s"), mode))
            for i in [i for i in log if i <= t or not keep]:
                del log[i]
            snap_index, snap_term = t, st_term
            last = max(i for i in log) if log else t
            commit = max(commit, t)
        else:
            # an application snapshot could be taken here at any index <= commit
            # that is still in the log (or is the snapshot itself)
            cands = [i for i in log if snap_index < i <= commit]
            if cands:
                s = max(cands) if rnd.random() < 0.5 else rnd.choice(cands)
                points.append((len(recs), s, log[s]))
            elif commit == snap_index and snap_index:
                points.append((len(recs), snap_index, snap_term))
    return recs, points


@settings(max_examples=1000, deadline=None)
@given(raft_histories(), st.data())
def test_compacted_replay_matches_full_history(history, data) -> None:
    recs, points = history
    full = replay(recs)
    for pos, s, s_term in points:
        # Records that only touch indexes <= s before the snapshot was taken may be
        # deleted (a prefix, like whole segments); replay the rest on snapshot s.
        cut = 0
        for i, r in enumerate(recs[:pos]):
            idx = (
                r.index
                if isinstance(r, Entry)
                else r.snapshot.index
                if isinstance(r, SnapshotRecord)
                else 0
            )
            if idx > s:
                break
            cut = i + 1
        cut = data.draw(st.integers(0, cut))
        got = replay(recs[cut:], LogState(snapshot=Snapshot(s, s_term, (1,), b"app")))
        if full.snapshot is not None and full.snapshot.index >= s:
            assert got.snapshot is not None and got.snapshot.index == full.snapshot.index
            assert got.entries == full.entries
        else:
            assert got.entries == [e for e in full.entries if e.index > s]
        if cut == 0 or any(isinstance(r, HardState) for r in recs[cut:]):
            assert got.hard_state == full.hard_state
