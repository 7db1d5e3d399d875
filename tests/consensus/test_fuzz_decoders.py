"""Bad input for the consensus layer's binary decoders: the write-ahead log reader
(``wal.decode_stream`` + ``replay``) and the peer link's hello frame.

(``codec.decode_message`` has its own fuzz tests in test_codec.py.) Each decoder must
either decode or raise its own error type (``CorruptLog``, ``TransportError``) — never
another exception, never a hang (the pytest timeout). For the WAL the property is
stronger: whatever it accepts re-encodes to exactly the accepted prefix.

Larger runs: ``PADDOCK_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest
tests/consensus/test_fuzz_decoders.py --hypothesis-show-statistics``.
"""

from __future__ import annotations

import contextlib
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paddock.consensus.transport import TransportError, decode_hello, encode_hello
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
)

EXAMPLES = int(os.environ.get("PADDOCK_FUZZ_EXAMPLES", "400"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

u64 = st.integers(0, 2**64 - 1)
small = st.integers(0, 50)

entries = st.builds(Entry, small, small, st.binary(max_size=40), st.sampled_from(list(EntryKind)))
hard_states = st.builds(HardState, small, small, small)
snapshots = st.builds(
    SnapshotRecord,
    st.builds(
        Snapshot,
        small,
        small,
        st.lists(st.integers(1, 9), max_size=4).map(tuple),
        st.binary(max_size=40),
    ),
    st.sampled_from(list(SnapshotMode)),
)
records = st.lists(st.one_of(entries, hard_states, snapshots), max_size=8)


def encode_record(rec: object) -> bytes:
    if isinstance(rec, Entry):
        return encode_entries([rec])
    if isinstance(rec, HardState):
        return encode_hard_state(rec)
    assert isinstance(rec, SnapshotRecord)
    return encode_snapshot(rec.snapshot, rec.mode)


def check_stream(raw: bytes) -> None:
    """The decoder's contract on arbitrary bytes."""
    try:
        result = decode_stream(raw)
    except CorruptLog as exc:
        assert 0 <= exc.offset < len(raw)
        return
    assert 0 <= result.valid_length <= len(raw)
    assert result.torn == (result.valid_length < len(raw))
    assert b"".join(encode_record(r) for r in result.records) == raw[: result.valid_length]
    state = LogState()
    try:
        for rec in result.records:
            state.apply(rec)
    except CorruptLog:
        return  # a gap in the indexes: reported, not crashed on
    state.result()


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes(raw: bytes) -> None:
    check_stream(raw)


@FUZZ
@given(records, st.data())
def test_mutated_logs(recs: list[object], data: st.DataObject) -> None:
    raw = bytearray(b"".join(encode_record(r) for r in recs))
    for _ in range(data.draw(st.integers(0, 4))):
        action = data.draw(st.sampled_from(["flip", "cut", "insert", "zero-tail"]))
        if not raw:
            break
        pos = data.draw(st.integers(0, len(raw) - 1))
        if action == "flip":
            raw[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif action == "cut":
            del raw[pos:]
        elif action == "insert":
            raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=16))
        else:
            raw[pos:] = bytes(len(raw) - pos)
    check_stream(bytes(raw))


@FUZZ
@given(records)
def test_valid_logs_decode_whole(recs: list[object]) -> None:
    raw = b"".join(encode_record(r) for r in recs)
    result = decode_stream(raw)
    assert not result.torn and result.valid_length == len(raw)
    assert [encode_record(r) for r in result.records] == [encode_record(r) for r in recs]


@FUZZ
@given(st.binary(max_size=80))
def test_hello_random_bytes(raw: bytes) -> None:
    try:
        sender, cid = decode_hello(raw)
    except TransportError:
        return
    assert encode_hello(sender, cid)[4:] == raw


@FUZZ
@given(st.integers(0, 2**32 - 1), st.text(max_size=20), st.data())
def test_hello_mutated(sender: int, cid: str, data: st.DataObject) -> None:
    body = bytearray(encode_hello(sender, cid)[4:])
    assert decode_hello(bytes(body)) == (sender, cid)
    pos = data.draw(st.integers(0, len(body) - 1))
    body[pos] = data.draw(st.integers(0, 255))
    with contextlib.suppress(TransportError):
        decode_hello(bytes(body))
